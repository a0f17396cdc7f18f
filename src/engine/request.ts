import type { ReadCtx } from "../raft/update.ts";
import { LongboatError } from "./errors.ts";

/**
 * What became of a request (engine.md §6.2). For a proposal, `dropped` means it never reached
 * the log (not applied: safe to retry), while `timeout` and `terminated` (the replica stopped
 * after handing it to Raft) leave its outcome unknown: it may still commit. `rejected`: applied
 * as a refusal (a session or config-change rule), `aborted`: a snapshot that failed.
 */
export type RequestResult =
  | { code: "completed"; value: number; data: Uint8Array; index: number }
  | { code: "timeout" | "rejected" | "dropped" | "terminated" | "aborted"; detail: string };

export type RequestCode = RequestResult["code"];

/** A request in flight; `result` settles exactly once. */
export class RequestState {
  readonly result: Promise<RequestResult>;
  private settleFn!: (r: RequestResult) => void;
  private settled = false;

  constructor(
    readonly key: number,
    readonly deadlineTick: number,
  ) {
    this.result = new Promise((resolve) => {
      this.settleFn = resolve;
    });
  }

  get done(): boolean {
    return this.settled;
  }

  complete(value: number, data: Uint8Array, index: number): void {
    this.settle({ code: "completed", value, data, index });
  }

  fail(code: Exclude<RequestCode, "completed">, detail: string): void {
    this.settle({ code, detail });
  }

  settle(result: RequestResult): void {
    if (this.settled) return;
    this.settled = true;
    this.settleFn(result);
  }
}

/** The error a synchronous API throws for a result other than completed. */
export function resultError(result: Exclude<RequestResult, { code: "completed" }>): LongboatError {
  switch (result.code) {
    case "timeout":
      return new LongboatError("timeout", result.detail);
    case "rejected":
      return new LongboatError("rejected", result.detail);
    case "dropped":
      return new LongboatError("shardNotReady", result.detail);
    case "terminated":
      return new LongboatError("shardClosed", result.detail);
    case "aborted":
      return new LongboatError("aborted", result.detail);
  }
}

/** Awaits a request and returns its completed result, or throws the matching LongboatError. */
export async function awaitCompleted(
  state: RequestState,
): Promise<Extract<RequestResult, { code: "completed" }>> {
  const result = await state.result;
  if (result.code !== "completed") throw resultError(result);
  return result;
}

/** Proposals waiting to be applied, keyed by request key. Bounded. */
export class PendingProposals {
  private readonly byKey = new Map<number, RequestState>();

  constructor(readonly maxCount: number) {}

  get size(): number {
    return this.byKey.size;
  }

  hasRoom(): boolean {
    return this.byKey.size < this.maxCount;
  }

  add(state: RequestState): void {
    if (this.byKey.has(state.key)) throw new Error(`request key ${state.key} is already pending`);
    this.byKey.set(state.key, state);
  }

  take(key: number): RequestState | undefined {
    const state = this.byKey.get(key);
    if (state) this.byKey.delete(key);
    return state;
  }

  expire(nowTick: number): void {
    for (const [key, state] of this.byKey) {
      if (state.deadlineTick > nowTick) continue;
      this.byKey.delete(key);
      state.fail("timeout", `no result within the deadline (tick ${state.deadlineTick})`);
    }
  }

  failAll(code: "terminated" | "dropped", detail: string): void {
    for (const state of this.byKey.values()) state.fail(code, detail);
    this.byKey.clear();
  }
}

/** A read waiting for its ReadIndex round and for the state machine to catch up. */
export interface ReadRequest {
  state: RequestState;
  /** null: only wait for the read index (no state machine lookup). */
  query: Uint8Array | null;
}

interface ReadBatch {
  ctx: ReadCtx;
  /** 0 until the leader confirmed the read index. */
  index: number;
  requests: ReadRequest[];
}

function ctxKey(ctx: ReadCtx): string {
  return `${ctx.low}:${ctx.high}`;
}

/**
 * Linearizable reads: queued reads of one engine cycle share one ReadIndex context; a batch
 * completes once the applied index reaches the confirmed read index.
 */
export class PendingReads {
  private queue: ReadRequest[] = [];
  private readonly batches = new Map<string, ReadBatch>();
  /** Reads queued or in a batch (not yet answered or failed). */
  private pending = 0;

  /**
   * @param maxQueued reads queued within one engine cycle (one ReadIndex round)
   * @param maxPending reads waiting in all, queued or awaiting confirmation and apply
   */
  constructor(
    readonly maxQueued: number,
    readonly maxPending: number,
  ) {}

  get queuedCount(): number {
    return this.queue.length;
  }

  /** Reads queued or awaiting confirmation and apply. */
  get pendingCount(): number {
    return this.pending;
  }

  enqueue(request: ReadRequest): boolean {
    if (this.queue.length >= this.maxQueued || this.pending >= this.maxPending) return false;
    this.queue.push(request);
    this.pending++;
    return true;
  }

  /** Moves every queued read into a batch under ctx; false when nothing was queued. */
  startBatch(ctx: ReadCtx): boolean {
    if (this.queue.length === 0) return false;
    this.batches.set(ctxKey(ctx), { ctx, index: 0, requests: this.queue });
    this.queue = [];
    return true;
  }

  ready(ctx: ReadCtx, index: number): void {
    const batch = this.batches.get(ctxKey(ctx));
    if (batch) batch.index = index;
  }

  /** Fails the reads of a batch the core refused; returns how many there were. */
  dropped(ctx: ReadCtx, detail: string): number {
    const key = ctxKey(ctx);
    const batch = this.batches.get(key);
    if (!batch) return 0;
    this.batches.delete(key);
    this.fail(batch.requests, "dropped", detail);
    return batch.requests.length;
  }

  /** Reads whose index is confirmed and applied; the caller answers them. */
  takeReadable(appliedIndex: number): ReadRequest[] {
    const out: ReadRequest[] = [];
    for (const [key, batch] of this.batches) {
      if (batch.index === 0 || batch.index > appliedIndex) continue;
      this.batches.delete(key);
      for (const r of batch.requests) out.push(r);
    }
    this.pending -= out.length;
    return out;
  }

  expire(nowTick: number): void {
    // Called on every tick of every replica stepped: nothing to do (the common case) costs
    // nothing, not a closure and two new arrays per call.
    if (this.pending === 0) return;
    const keep = (r: ReadRequest) => {
      if (r.state.deadlineTick > nowTick) return true;
      r.state.fail("timeout", `read not confirmed within the deadline (tick ${r.state.deadlineTick})`);
      this.pending--;
      return false;
    };
    this.queue = this.queue.filter(keep);
    for (const [key, batch] of this.batches) {
      batch.requests = batch.requests.filter(keep);
      if (batch.requests.length === 0) this.batches.delete(key);
    }
  }

  /** Fails every read that has not been confirmed yet (leader change, stop). */
  /** Fails every read still waiting for its confirmation round; returns how many. */
  failUnconfirmed(code: "dropped" | "terminated", detail: string): number {
    let count = 0;
    for (const [key, batch] of this.batches) {
      if (batch.index !== 0) continue;
      this.batches.delete(key);
      this.fail(batch.requests, code, detail);
      count += batch.requests.length;
    }
    return count;
  }

  failAll(code: "terminated", detail: string): void {
    for (const batch of this.batches.values()) this.fail(batch.requests, code, detail);
    this.batches.clear();
    this.fail(this.queue, code, detail);
    this.queue = [];
  }

  private fail(requests: ReadRequest[], code: "dropped" | "terminated", detail: string): void {
    for (const r of requests) r.state.fail(code, detail);
    this.pending -= requests.length;
  }
}
