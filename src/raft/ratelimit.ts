/** A follower report older than this many limiter ticks is discarded. */
export const RATE_LIMIT_REPORT_TTL_TICKS = 3;
/** The limited state flips at most once per this many limiter ticks (hysteresis in time). */
export const RATE_LIMIT_FLIP_INTERVAL_TICKS = 10;
/** Once limited, stays limited until the largest log drops below this share of the limit. */
export const RATE_LIMIT_RESUME_RATIO = 0.7;
/** Follower reports kept at most (one per replica; a shard has far fewer members). */
export const MAX_RATE_LIMIT_REPORTS = 1024;

/**
 * Limits the bytes of unapplied in-memory log (engine.md §1.16). The leader is limited when
 * its own log or a fresh follower report exceeds maxSizeBytes; followers report every
 * election timeout. One limiter tick = one election timeout.
 */
export class RateLimiter {
  private tickCount = 0;
  private limited = false;
  private flipTick = Number.NEGATIVE_INFINITY;
  private followers = new Map<number, { sizeBytes: number; tick: number }>();

  constructor(
    readonly maxSizeBytes: number,
    private readonly ownSizeFn: () => number,
  ) {}

  /** Bytes of this replica's unapplied in-memory log. */
  get ownSizeBytes(): number {
    return this.ownSizeFn();
  }

  enabled(): boolean {
    return this.maxSizeBytes > 0;
  }

  tick(): void {
    this.tickCount++;
    for (const [id, r] of this.followers) {
      if (this.tickCount - r.tick > RATE_LIMIT_REPORT_TTL_TICKS) this.followers.delete(id);
    }
  }

  setFollowerState(replicaId: number, sizeBytes: number): void {
    if (!this.followers.has(replicaId) && this.followers.size >= MAX_RATE_LIMIT_REPORTS) return;
    this.followers.set(replicaId, { sizeBytes, tick: this.tickCount });
  }

  resetFollowerState(): void {
    this.followers.clear();
  }

  followerReportCount(): number {
    return this.followers.size;
  }

  /** Whether own log alone exceeds the limit (what a follower reports). */
  overLimit(): boolean {
    return this.enabled() && this.ownSizeBytes > this.maxSizeBytes;
  }

  /** The limited state as last computed (no side effect; safe for status()). */
  isLimited(): boolean {
    return this.limited;
  }

  /** Computes (and may flip) the limited state. */
  rateLimited(): boolean {
    if (!this.enabled()) return false;
    let maxBytes = this.ownSizeBytes;
    for (const r of this.followers.values()) if (r.sizeBytes > maxBytes) maxBytes = r.sizeBytes;
    const canFlip = this.tickCount - this.flipTick >= RATE_LIMIT_FLIP_INTERVAL_TICKS;
    if (!this.limited && maxBytes > this.maxSizeBytes && canFlip) {
      this.limited = true;
      this.flipTick = this.tickCount;
    } else if (this.limited && maxBytes < this.maxSizeBytes * RATE_LIMIT_RESUME_RATIO && canFlip) {
      this.limited = false;
      this.flipTick = this.tickCount;
    }
    return this.limited;
  }
}
