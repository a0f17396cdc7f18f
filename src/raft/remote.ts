/**
 * Per-follower replication progress as the leader tracks it (engine.md §1.8), plus the
 * improvement over Dragonboat: a bounded in-flight window in messages AND bytes for the
 * replicate state, so a slow follower cannot make the leader queue unbounded data.
 */
export const RemoteState = { Retry: 0, Wait: 1, Replicate: 2, Snapshot: 3 } as const;
export type RemoteState = (typeof RemoteState)[keyof typeof RemoteState];

const STATE_NAMES = ["Retry", "Wait", "Replicate", "Snapshot"];

export class Remote {
  match = 0;
  next = 1;
  state: RemoteState = RemoteState.Retry;
  /** Index of the snapshot being delivered (Snapshot state), 0 otherwise. */
  snapshotIndex = 0;
  /** Responded since the last CheckQuorum round. */
  active = false;
  /**
   * This heartbeat round (see heartbeatRedundant): the last index of the first Replicate sent
   * to the follower in it (-1: none sent yet), and whether the follower accepted one of them.
   */
  private roundFirstSent = -1;
  private roundAcked = false;
  /** In-flight Replicate messages: last index and entry bytes, oldest first. */
  private inflightLast: number[] = [];
  private inflightBytes: number[] = [];
  inflightSizeBytes = 0;

  constructor(
    readonly maxInflightMsgs: number,
    readonly maxInflightBytes: number,
  ) {}

  toString(): string {
    return `match=${this.match} next=${this.next} state=${STATE_NAMES[this.state]} inflight=${this.inflightCount()}`;
  }

  inflightCount(): number {
    return this.inflightLast.length;
  }

  /** Replicate state's window is full in messages or bytes. */
  inflightFull(): boolean {
    return (
      this.inflightLast.length >= this.maxInflightMsgs || this.inflightSizeBytes >= this.maxInflightBytes
    );
  }

  isPaused(): boolean {
    switch (this.state) {
      case RemoteState.Wait:
      case RemoteState.Snapshot:
        return true;
      case RemoteState.Replicate:
        return this.inflightFull();
      default:
        return false;
    }
  }

  reset(next: number): void {
    this.match = 0;
    this.next = next;
    this.state = RemoteState.Retry;
    this.snapshotIndex = 0;
    this.active = false;
    this.roundFirstSent = -1;
    this.roundAcked = false;
    this.clearInflight();
  }

  /** A Replicate ending at lastIndex left for the follower (for heartbeatRedundant). */
  replicateSent(lastIndex: number): void {
    if (this.roundFirstSent < 0) this.roundFirstSent = lastIndex;
  }

  /** The follower accepted a Replicate up to index (for heartbeatRedundant). */
  replicateAccepted(index: number): void {
    if (this.roundFirstSent >= 0 && index >= this.roundFirstSent) this.roundAcked = true;
  }

  /**
   * Ends this follower's heartbeat round. True when a plain heartbeat would tell it nothing
   * the Replicate stream did not: it is pipelining (Replicate state), a Replicate left for it
   * in this round (it reset the follower's election timer and carried the commit index of its
   * sending), and the follower accepted one sent in this round, not an older one (it is alive
   * for CheckQuorum, its window moves, no probe is needed). docs/architecture.md, "The commit
   * index travels lazily".
   */
  heartbeatRedundant(): boolean {
    const redundant = this.state === RemoteState.Replicate && this.roundAcked;
    this.roundFirstSent = -1;
    this.roundAcked = false;
    return redundant;
  }

  private clearInflight(): void {
    this.inflightLast = [];
    this.inflightBytes = [];
    this.inflightSizeBytes = 0;
  }

  becomeRetry(): void {
    if (this.state === RemoteState.Snapshot) {
      this.next = Math.max(this.match + 1, this.snapshotIndex + 1);
    } else {
      this.next = this.match + 1;
    }
    this.snapshotIndex = 0;
    this.state = RemoteState.Retry;
    this.clearInflight();
  }

  becomeWait(): void {
    this.becomeRetry();
    this.state = RemoteState.Wait;
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.state = RemoteState.Replicate;
    this.clearInflight();
  }

  becomeSnapshot(index: number): void {
    this.snapshotIndex = index;
    this.state = RemoteState.Snapshot;
    this.clearInflight();
  }

  /** A Replicate ending at lastIndex carrying sizeBytes of entries was sent. */
  sent(lastIndex: number, entryCount: number, sizeBytes: number): void {
    if (this.state === RemoteState.Replicate) {
      if (entryCount === 0) return;
      if (this.inflightFull()) throw new Error(`sent to a remote whose window is full: ${this}`);
      this.next = lastIndex + 1;
      this.inflightLast.push(lastIndex);
      this.inflightBytes.push(sizeBytes);
      this.inflightSizeBytes += sizeBytes;
    } else if (this.state === RemoteState.Retry) {
      this.state = RemoteState.Wait;
    } else {
      throw new Error(`sent to a paused remote: ${this}`);
    }
  }

  /** Acknowledged up to index: frees the window; true when match advanced. */
  tryUpdate(index: number): boolean {
    this.freeInflightTo(index);
    if (this.next < index + 1) this.next = index + 1;
    if (index > this.match) {
      this.match = index;
      if (this.state === RemoteState.Wait) this.state = RemoteState.Retry;
      return true;
    }
    return false;
  }

  private freeInflightTo(index: number): void {
    let n = 0;
    while (n < this.inflightLast.length && this.inflightLast[n]! <= index) {
      this.inflightSizeBytes -= this.inflightBytes[n]!;
      n++;
    }
    if (n > 0) {
      this.inflightLast.splice(0, n);
      this.inflightBytes.splice(0, n);
    }
  }

  /** A heartbeat answered: a lost Replicate must not stall a full window forever. */
  freeFirstInflight(): void {
    if (this.inflightLast.length === 0) return;
    this.inflightSizeBytes -= this.inflightBytes[0]!;
    this.inflightLast.shift();
    this.inflightBytes.shift();
  }

  /** After a successful tryUpdate: a probe that landed starts pipelining. */
  respondedTo(): void {
    if (this.state === RemoteState.Retry) {
      this.becomeReplicate();
    } else if (this.state === RemoteState.Snapshot && this.match >= this.snapshotIndex) {
      this.becomeRetry();
    }
  }

  /**
   * The follower rejected a Replicate at `rejected`; `hint` is the highest index it may
   * match. Returns false for a stale rejection (nothing changes).
   */
  decreaseTo(rejected: number, hint: number): boolean {
    if (this.state === RemoteState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
      this.state = RemoteState.Retry;
      this.clearInflight();
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
    if (this.state === RemoteState.Wait) this.state = RemoteState.Retry;
    return true;
  }

  /** The transport could not reach the follower: stop pipelining, probe again. */
  unreachable(): void {
    if (this.state === RemoteState.Replicate) this.becomeRetry();
  }
}
