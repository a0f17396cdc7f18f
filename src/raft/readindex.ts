import type { ReadCtx } from "./update.ts";

/** Pending read-index requests held by a leader at most; more are dropped. */
export const MAX_PENDING_READ_INDEXES = 4096;

interface PendingRead {
  ctx: ReadCtx;
  index: number;
  from: number;
  confirmed: Set<number>;
}

export interface ReleasedRead {
  ctx: ReadCtx;
  index: number;
  from: number;
}

function key(ctx: ReadCtx): string {
  return `${ctx.low}:${ctx.high}`;
}

/**
 * The leader's ReadIndex queue (thesis §6.4): each read records the commit index at
 * arrival; a quorum of heartbeat responses echoing its ctx confirms leadership, and that
 * read releases together with every read queued before it (they were confirmed by the
 * same or a later round), all at the confirmed read's index.
 */
export class ReadIndexQueue {
  private queue: PendingRead[] = [];
  private byKey = new Map<string, PendingRead>();
  /** The voters whose echoes released the last read (the leader not included). */
  private lastQuorum: number[] = [];

  get size(): number {
    return this.queue.length;
  }

  has(ctx: ReadCtx): boolean {
    return this.byKey.has(key(ctx));
  }

  /** Returns false when the queue is full (the read is dropped). Duplicate ctx is ignored. */
  add(index: number, ctx: ReadCtx, from: number): boolean {
    if (this.byKey.has(key(ctx))) return true;
    if (this.queue.length >= MAX_PENDING_READ_INDEXES) return false;
    const last = this.queue[this.queue.length - 1];
    if (last !== undefined && index < last.index) {
      throw new Error(`read index went backwards: ${index} after ${last.index}`);
    }
    const r = { ctx, index, from, confirmed: new Set<number>() };
    this.queue.push(r);
    this.byKey.set(key(ctx), r);
    return true;
  }

  /** Newest pending ctx (piggybacked on regular heartbeats), or null. */
  newest(): ReadCtx | null {
    return this.queue[this.queue.length - 1]?.ctx ?? null;
  }

  /**
   * A voter echoed ctx. When the confirmations plus the leader reach quorum, releases that
   * read and every earlier one, all at its index.
   */
  confirm(ctx: ReadCtx, from: number, quorum: number): ReleasedRead[] {
    const r = this.byKey.get(key(ctx));
    if (r === undefined) return [];
    r.confirmed.add(from);
    if (r.confirmed.size + 1 < quorum) return [];
    this.lastQuorum = [...r.confirmed];
    const pos = this.queue.indexOf(r);
    const released = this.queue.splice(0, pos + 1);
    for (const x of released) this.byKey.delete(key(x.ctx));
    return released.map((x) => ({ ctx: x.ctx, index: r.index, from: x.from }));
  }

  /**
   * The voters whose echoes released the last read in this term (the leader not included):
   * they answered first, so the next read's heartbeats go to them alone (Raft.sendReadHeartbeats).
   */
  lastConfirmers(): readonly number[] {
    return this.lastQuorum;
  }

  reset(): void {
    this.queue = [];
    this.byKey.clear();
    this.lastQuorum = [];
  }
}
