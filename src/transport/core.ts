import type { Message } from "../raft/types.ts";
import { decodeBatch, messageSizeBoundBytes } from "./codec.ts";
import { LogOnce } from "./logonce.ts";
import type { ResolvedOptions } from "./options.ts";
import type { TransportHandler, TransportStats } from "./types.ts";

/** Messages queued for one target NodeHost, bounded in count and (encoded upper-bound) bytes. */
export class SendQueue {
  private messages: Message[] = [];
  private sizes: number[] = [];
  private bytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  get length(): number {
    return this.messages.length;
  }
  get sizeBytes(): number {
    return this.bytes;
  }

  /** False (and nothing queued) when adding would pass either bound. */
  push(m: Message, sizeBytes: number): boolean {
    if (this.messages.length >= this.maxMessages || this.bytes + sizeBytes > this.maxBytes) return false;
    this.messages.push(m);
    this.sizes.push(sizeBytes);
    this.bytes += sizeBytes;
    return true;
  }

  /** Removes the longest prefix whose sizes sum to ≤ budgetBytes (at least one message). */
  take(budgetBytes: number): Message[] {
    let n = 0;
    let total = 0;
    while (n < this.messages.length && (n === 0 || total + this.sizes[n]! <= budgetBytes)) {
      total += this.sizes[n]!;
      n++;
    }
    if (n === this.messages.length) {
      const all = this.messages;
      this.messages = [];
      this.sizes = [];
      this.bytes = 0;
      return all;
    }
    this.bytes -= total;
    this.sizes.splice(0, n);
    return this.messages.splice(0, n);
  }

  /** Empties the queue, returning what it held. */
  drain(): Message[] {
    const all = this.messages;
    this.messages = [];
    this.sizes = [];
    this.bytes = 0;
    return all;
  }
}

/** Most distinct (shard, replica) unreachable reports pending delivery; beyond it they merge away. */
export const UNREACHABLE_PENDING_MAX = 65536;

/**
 * The behaviour every transport shares: the handler, counters, logging once per source,
 * deferred unreachable reports (delivered on a microtask, never inside send()), and the
 * receive path from a verified frame payload to the handler.
 */
export class TransportCore {
  handler: TransportHandler | null = null;
  readonly stats: TransportStats;
  readonly logOnce: LogOnce;
  private readonly unreachable = new Map<string, [number, number]>();
  private unreachableScheduled = false;

  constructor(
    readonly o: ResolvedOptions,
    stats: TransportStats,
  ) {
    this.stats = stats;
    this.logOnce = new LogOnce(o.log);
  }

  sizeOf(m: Message): number {
    return messageSizeBoundBytes(m);
  }

  /** Reports (shard, replica) unreachable to the engine soon (deduplicated). */
  reportUnreachable(shardId: number, replicaId: number): void {
    if (this.unreachable.size < UNREACHABLE_PENDING_MAX) {
      this.unreachable.set(`${shardId}:${replicaId}`, [shardId, replicaId]);
    }
    if (this.unreachableScheduled) return;
    this.unreachableScheduled = true;
    queueMicrotask(() => this.deliverUnreachable());
  }

  /** Drops messages, counting them and reporting each target replica unreachable. */
  dropUnreachable(messages: Message[]): void {
    this.stats.messagesDroppedUnreachable += messages.length;
    for (const m of messages) this.reportUnreachable(m.shardId, m.to);
  }

  private deliverUnreachable(): void {
    this.unreachableScheduled = false;
    const pairs = [...this.unreachable.values()];
    this.unreachable.clear();
    const h = this.handler;
    if (h === null) return;
    for (const [shardId, replicaId] of pairs)
      this.guard("onUnreachable", () => h.onUnreachable(shardId, replicaId));
  }

  /** Runs a handler callback; a throw is a handler bug, logged once and never propagated. */
  guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.logOnce.emit(`handler-throw:${what}`, {
        event: "handler-threw",
        callback: what,
        error: String(e),
      });
    }
  }

  /** Delivers one verified frame payload (a MessageBatch) received on a connection from peer. */
  receiveBatch(payload: Uint8Array, peer: string): void {
    this.stats.bytesReceived += payload.byteLength;
    const d = decodeBatch(payload, this.o.deploymentId);
    switch (d.kind) {
      case "malformed":
        this.stats.batchesMalformed++;
        this.logOnce.emit(`malformed:${peer}`, { event: "batch-malformed", peer, reason: d.reason });
        return;
      case "deployment":
        this.stats.batchesDroppedDeployment++;
        this.logOnce.emit(`deployment:${d.sourceAddress}`, {
          event: "batch-dropped-deployment",
          source: d.sourceAddress,
          deploymentId: d.deploymentId,
          expected: this.o.deploymentId,
        });
        return;
      case "format":
        this.stats.batchesDroppedFormat++;
        this.logOnce.emit(`format:${d.sourceAddress}`, {
          event: "batch-dropped-format",
          source: d.sourceAddress,
          formatVersion: d.formatVersion,
        });
        return;
    }
    this.stats.batchesReceived++;
    if (d.invalidCount > 0) {
      this.stats.messagesInvalid += d.invalidCount;
      this.logOnce.emit(`invalid:${d.sourceAddress}`, {
        event: "messages-invalid",
        source: d.sourceAddress,
        reason: d.invalidReason,
      });
    }
    if (d.messages.length === 0) return;
    this.stats.messagesReceived += d.messages.length;
    const h = this.handler;
    if (h !== null) this.guard("onMessages", () => h.onMessages(d.messages, d.sourceAddress));
  }
}
