import type { TimerHandle } from "../env.ts";
import type { Rng } from "../raft/storage.ts";
import { EMPTY_STATE, type Entry, entrySizeBytes, type SnapshotMeta, type State } from "../raft/types.ts";
import { copyBootstrap, copySnapshotMeta } from "./codec.ts";
import { LogDBClosedError, LogDBIOError } from "./errors.ts";
import { checkIdentity } from "./identity.ts";
import {
  checkBatch,
  checkKey,
  EMPTY_RANGE,
  logStateOf,
  planCompact,
  planImport,
  planUpdate,
  type ReplicaRange,
  resolveLimits,
  type UpdatePlan,
} from "./plan.ts";
import {
  type BootstrapRecord,
  type ImportedReplica,
  LOGDB_FORMAT_VERSION,
  type LogDB,
  type LogDBLimits,
  type LogUsage,
  type NodeHostIdentity,
  type ReplicaKey,
  type ReplicaLogState,
  type ReplicaUpdate,
  type SaveDone,
  type Tombstone,
} from "./types.ts";

export interface MemoryLogDBOptions extends LogDBLimits {
  /** Identity of the simulated data directory (checked again by reopen()). */
  identity?: NodeHostIdentity;
  /** Randomness for injected faults (required before setWriteFault/setReadFault with p > 0). */
  rng?: Rng;
  /**
   * The simulated writer of saveUpdatesAsync: batches become durable one after another, each
   * latencyMs() (default 0) after the later of its submission and the previous batch's end, on
   * the given clock. Without it a batch is durable on the next microtask.
   */
  writer?: MemoryWriterOptions;
}

export interface MemoryWriterOptions {
  nowMs(): number;
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  /** Milliseconds the writer takes for the next batch (drawn per batch; ≥ 0). */
  latencyMs?: () => number;
}

interface QueuedBatch {
  updates: readonly ReplicaUpdate[];
  done: SaveDone;
  timer: TimerHandle | null;
}

interface MemReplica {
  range: ReplicaRange;
  /** entries[i] has index range.entryFirst + i. */
  entries: Entry[];
  state: State | null;
  snapshot: SnapshotMeta | null;
  bootstrap: BootstrapRecord | null;
}

/** Fault probabilities are drawn as nextInt(FAULT_SCALE) < p * FAULT_SCALE. */
const FAULT_SCALE = 1_000_000;

/**
 * The LogDB in memory, for tests and the simulator. Every successful call is durable (it
 * is its own sync point); an injected fault throws LogDBIOError before anything is applied,
 * so a crash loses exactly the calls that did not return. `crash()` reopens over the durable
 * data; `clone()` forks it (a simulated host continues from a copy).
 * @example const db = new MemoryLogDB({ rng: env }); db.setWriteFault(0.01);
 */
export class MemoryLogDB implements LogDB {
  private replicas = new Map<string, MemReplica>();
  private tombstones = new Map<string, Tombstone>();
  private readonly limits: Required<LogDBLimits>;
  private readonly identity: NodeHostIdentity;
  private readonly rng: Rng | null;
  private writeFaultP = 0;
  private readFaultP = 0;
  private closed = false;
  private readonly writer: MemoryWriterOptions | null;
  /** saveUpdatesAsync batches not yet durable, oldest first. */
  private queue: QueuedBatch[] = [];
  /** Ranges as the queued batches will leave them (checked at submission, as SQLite does). */
  private plannedRanges = new Map<string, ReplicaRange>();
  /** Time (on the writer's clock) at which the writer finishes the last queued batch. */
  private writerFreeAtMs = 0;
  /**
   * Simulator hook: called after saveUpdates made a batch durable. What it throws reaches the
   * caller with the batch kept: the machine dying right after its fsync returned.
   */
  afterSave: ((updates: readonly ReplicaUpdate[]) => void) | null = null;

  constructor(opts: MemoryLogDBOptions = {}) {
    this.limits = resolveLimits(opts);
    this.identity = opts.identity ?? {
      raftAddress: "memory",
      deploymentId: 0,
      formatVersion: LOGDB_FORMAT_VERSION,
    };
    this.rng = opts.rng ?? null;
    this.writer = opts.writer ?? null;
  }

  /** Makes each write call fail with probability p (in [0, 1]) without applying anything. */
  setWriteFault(p: number): void {
    this.writeFaultP = this.checkFaultP(p, "setWriteFault");
  }

  /** Makes each read call fail with probability p (in [0, 1]). */
  setReadFault(p: number): void {
    this.readFaultP = this.checkFaultP(p, "setReadFault");
  }

  private checkFaultP(p: number, where: string): number {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`${where}: probability must be in [0, 1], got ${p}`);
    if (p > 0 && this.rng === null)
      throw new Error(`${where}: pass an rng to new MemoryLogDB({ rng }) to inject faults`);
    return p;
  }

  /** A simulated crash: what returned stays, batches still queued are lost, the handle reopens. */
  crash(): void {
    this.dropQueued();
    this.closed = false;
  }

  /** Batches queued by saveUpdatesAsync and not yet durable (tests). */
  get queuedBatches(): number {
    return this.queue.length;
  }

  private dropQueued(): void {
    for (const b of this.queue) b.timer?.cancel();
    this.queue = [];
    this.plannedRanges.clear();
  }

  /** Reopens after close(), checking the identity as opening a data directory does. */
  reopen(identity: NodeHostIdentity = this.identity): void {
    checkIdentity("memory", this.identity, identity);
    this.closed = false;
  }

  /** An independent copy of the durable data (same identity, limits and rng; faults off). */
  clone(): MemoryLogDB {
    const c = new MemoryLogDB({
      ...this.limits,
      identity: this.identity,
      ...(this.rng ? { rng: this.rng } : {}),
    });
    for (const [k, r] of this.replicas) c.replicas.set(k, { ...r, entries: r.entries.slice() });
    for (const [k, t] of this.tombstones) c.tombstones.set(k, { ...t });
    return c;
  }

  /** Alias of clone(): the state a crash right now would leave. */
  snapshotDurable(): MemoryLogDB {
    return this.clone();
  }

  private enter(operation: string, write: boolean): void {
    if (this.closed) throw new LogDBClosedError(operation);
    const p = write ? this.writeFaultP : this.readFaultP;
    if (p > 0 && (this.rng as Rng).nextInt(FAULT_SCALE) < p * FAULT_SCALE) throw new LogDBIOError(operation);
  }

  private get(key: ReplicaKey): MemReplica | undefined {
    return this.replicas.get(`${key.shardId}:${key.replicaId}`);
  }

  private getOrCreate(key: ReplicaKey): MemReplica {
    const k = `${key.shardId}:${key.replicaId}`;
    let r = this.replicas.get(k);
    if (r === undefined) {
      r = { range: EMPTY_RANGE, entries: [], state: null, snapshot: null, bootstrap: null };
      this.replicas.set(k, r);
    }
    return r;
  }

  saveUpdates(updates: readonly ReplicaUpdate[]): void {
    this.flushQueued();
    this.save(updates);
    this.afterSave?.(updates);
  }

  saveUpdatesAsync(updates: readonly ReplicaUpdate[], done: SaveDone): void {
    if (this.closed) throw new LogDBClosedError("saveUpdatesAsync");
    checkBatch(updates, this.limits);
    // A snapshot's plan reads the term stored at its index: let earlier batches land first.
    if (updates.some((u) => u.snapshot !== null)) this.flushQueued();
    this.planQueued(updates);
    // What the caller passed may change after this call: keep a copy, as a Worker gets one.
    const batch: QueuedBatch = { updates: updates.map(copyUpdate), done, timer: null };
    this.queue.push(batch);
    if (this.writer === null) {
      queueMicrotask(() => this.complete(batch));
      return;
    }
    const latencyMs = Math.max(0, this.writer.latencyMs?.() ?? 0);
    // The writer takes one batch at a time: this one starts when the previous one ends.
    const nowMs = this.writer.nowMs();
    const delayMs = Math.max(0, this.writerFreeAtMs - nowMs) + latencyMs;
    this.writerFreeAtMs = nowMs + delayMs;
    batch.timer = this.writer.setTimer(delayMs, () => this.complete(batch));
  }

  /** Plans a batch on top of the queued ones; throws (nothing queued) when it does not fit. */
  private planQueued(updates: readonly ReplicaUpdate[]): void {
    const next = new Map<string, ReplicaRange>();
    for (const u of updates) {
      const k = `${u.shardId}:${u.replicaId}`;
      const r = this.replicas.get(k);
      const range = next.get(k) ?? this.plannedRanges.get(k) ?? r?.range ?? EMPTY_RANGE;
      next.set(k, planUpdate(u, range, (index) => (r ? termIn(r, index) : undefined)).next);
    }
    for (const [k, range] of next) this.plannedRanges.set(k, range);
  }

  /** The writer finished `batch`: durable (or failed), then done. Batches complete in order. */
  private complete(batch: QueuedBatch): void {
    if (this.queue[0] !== batch) return; // dropped by a crash, or already flushed
    this.queue.shift();
    const error = this.writeQueued(batch);
    if (this.queue.length === 0 || error !== null) this.plannedRanges.clear();
    batch.done(error);
  }

  /** Writes one queued batch; returns the error its done gets (null: durable). */
  private writeQueued(batch: QueuedBatch): Error | null {
    try {
      this.save(batch.updates);
    } catch (error) {
      return error as Error;
    }
    try {
      this.afterSave?.(batch.updates);
    } catch (error) {
      return error as Error; // durable, but the machine died right after the fsync
    }
    return null;
  }

  /**
   * A synchronous write waits for the writer: every queued batch becomes durable (or fails)
   * now, and its done follows on the writer's clock right away (never inside this call).
   */
  private flushQueued(): void {
    const queued = this.queue;
    if (queued.length === 0) return;
    this.queue = [];
    this.plannedRanges.clear();
    this.writerFreeAtMs = this.writer?.nowMs() ?? 0;
    for (const b of queued) {
      b.timer?.cancel();
      const error = this.writeQueued(b);
      if (this.writer === null) queueMicrotask(() => b.done(error));
      else this.writer.setTimer(0, () => b.done(error));
    }
  }

  private save(updates: readonly ReplicaUpdate[]): void {
    this.enter("saveUpdates", true);
    checkBatch(updates, this.limits);
    // Plan every update before applying any: a refused update leaves nothing applied.
    const keys = updates.map((u) => `${u.shardId}:${u.replicaId}`);
    if (new Set(keys).size !== keys.length) {
      this.saveRepeated(updates, keys);
      return;
    }
    const plans = updates.map((u, i) => {
      const r = this.replicas.get(keys[i] as string);
      return planUpdate(u, r?.range ?? EMPTY_RANGE, (index) => (r ? termIn(r, index) : undefined));
    });
    updates.forEach((u, i) => {
      const k = keys[i] as string;
      let r = this.replicas.get(k);
      if (r === undefined) {
        r = { range: EMPTY_RANGE, entries: [], state: null, snapshot: null, bootstrap: null };
        this.replicas.set(k, r);
      }
      applyPlan(r, u, plans[i] as UpdatePlan);
    });
  }

  /** A batch naming one replica twice: apply to copies, then swap them in. */
  private saveRepeated(updates: readonly ReplicaUpdate[], keys: string[]): void {
    const staged = new Map<string, MemReplica>();
    updates.forEach((u, i) => {
      const k = keys[i] as string;
      const cur = staged.get(k) ?? this.replicas.get(k);
      const r: MemReplica = cur
        ? { ...cur, entries: cur.entries.slice() }
        : { range: EMPTY_RANGE, entries: [], state: null, snapshot: null, bootstrap: null };
      applyPlan(
        r,
        u,
        planUpdate(u, r.range, (index) => termIn(r, index)),
      );
      staged.set(k, r);
    });
    for (const [k, r] of staged) this.replicas.set(k, r);
  }

  entries(key: ReplicaKey, low: number, high: number, maxSizeBytes: number): Entry[] {
    this.enter("entries", false);
    const out: Entry[] = [];
    const r = this.get(key);
    if (r === undefined || r.range.entryLast === 0) return out;
    const first = r.range.entryFirst;
    if (low < first) return out;
    let sizeBytes = 0;
    for (let i = low; i < high && i <= r.range.entryLast; i++) {
      const e = r.entries[i - first] as Entry;
      sizeBytes += entrySizeBytes(e);
      if (out.length > 0 && sizeBytes > maxSizeBytes) break;
      out.push(copyEntry(e, e.cmd));
    }
    return out;
  }

  term(key: ReplicaKey, index: number): number | undefined {
    this.enter("term", false);
    const r = this.get(key);
    if (r === undefined) return undefined;
    return (
      termIn(r, index) ?? (index === r.range.snapshotIndex && index > 0 ? r.range.snapshotTerm : undefined)
    );
  }

  readLogState(key: ReplicaKey): ReplicaLogState {
    this.enter("readLogState", false);
    checkKey(key, "readLogState");
    const r = this.get(key);
    if (r === undefined) return logStateOf(EMPTY_RANGE, { ...EMPTY_STATE }, null);
    return logStateOf(
      r.range,
      { ...(r.state ?? EMPTY_STATE) },
      r.snapshot ? copySnapshotMeta(r.snapshot) : null,
    );
  }

  saveBootstrap(key: ReplicaKey, record: BootstrapRecord): void {
    this.flushQueued();
    this.enter("saveBootstrap", true);
    checkKey(key, "saveBootstrap");
    const copy = copyBootstrap(record);
    this.getOrCreate(key).bootstrap = copy;
  }

  /** Durable at once (an injected fault throws, nothing written); done follows on a microtask. */
  saveBootstrapAsync(key: ReplicaKey, record: BootstrapRecord, done: SaveDone): void {
    this.saveBootstrap(key, record);
    queueMicrotask(() => done(null));
  }

  getBootstrap(key: ReplicaKey): BootstrapRecord | null {
    this.enter("getBootstrap", false);
    const b = this.get(key)?.bootstrap;
    return b ? copyBootstrap(b) : null;
  }

  listReplicas(): ReplicaKey[] {
    this.enter("listReplicas", false);
    const out: ReplicaKey[] = [];
    for (const [k, r] of this.replicas) {
      if (r.bootstrap === null && r.state === null && r.snapshot === null) continue;
      const [shardId, replicaId] = k.split(":").map(Number) as [number, number];
      out.push({ shardId, replicaId });
    }
    return out.sort((a, b) => a.shardId - b.shardId || a.replicaId - b.replicaId);
  }

  removeReplica(key: ReplicaKey, tombstone?: Tombstone): void {
    this.flushQueued();
    this.enter("removeReplica", true);
    checkKey(key, "removeReplica");
    const k = `${key.shardId}:${key.replicaId}`;
    this.replicas.delete(k);
    if (tombstone !== undefined) this.tombstones.set(k, { ...tombstone });
  }

  getTombstone(key: ReplicaKey): Tombstone | null {
    this.enter("getTombstone", false);
    const t = this.tombstones.get(`${key.shardId}:${key.replicaId}`);
    return t === undefined ? null : { ...t };
  }

  compact(key: ReplicaKey, index: number): void {
    this.flushQueued();
    this.enter("compact", true);
    checkKey(key, "compact");
    const r = this.get(key);
    const range = r?.range ?? EMPTY_RANGE;
    const next = planCompact(key, range, index);
    if (r === undefined) return;
    const drop = next.entryLast === 0 ? r.entries.length : next.entryFirst - range.entryFirst;
    r.entries = r.entries.slice(drop);
    r.range = next;
  }

  importSnapshot(key: ReplicaKey, record: ImportedReplica): void {
    this.flushQueued();
    this.enter("importSnapshot", true);
    const range = planImport(key, record);
    const { term, vote, commit } = record.state;
    this.replicas.set(`${key.shardId}:${key.replicaId}`, {
      range,
      entries: [],
      state: { term, vote, commit },
      snapshot: copySnapshotMeta(record.snapshot),
      bootstrap: copyBootstrap(record.bootstrap),
    });
  }

  logUsage(key: ReplicaKey): LogUsage {
    this.enter("logUsage", false);
    const entries = this.get(key)?.entries ?? [];
    let sizeBytes = 0;
    for (const e of entries) sizeBytes += entrySizeBytes(e);
    return { entryCount: entries.length, sizeBytes };
  }

  reclaimSpace(): { sizeBytesBefore: number; sizeBytesAfter: number } {
    this.flushQueued();
    this.enter("reclaimSpace", true);
    return { sizeBytesBefore: 0, sizeBytesAfter: 0 };
  }

  /** Closes the handle; batches still queued are lost, as in a crash. */
  close(): void {
    this.dropQueued();
    this.closed = true;
  }
}

function copyUpdate(u: ReplicaUpdate): ReplicaUpdate {
  return {
    shardId: u.shardId,
    replicaId: u.replicaId,
    entries: u.entries.map((e) => copyEntry(e, e.cmd.slice())),
    state: u.state === null ? null : { term: u.state.term, vote: u.state.vote, commit: u.state.commit },
    snapshot: u.snapshot === null ? null : copySnapshotMeta(u.snapshot),
  };
}

/**
 * Field by field, never `{ ...e }`: entries decoded by protobufjs keep zero-valued fields on
 * their prototype, which a spread drops (simulator seed 1 found it).
 */
function copyEntry(e: Entry, cmd: Uint8Array): Entry {
  return {
    term: e.term,
    index: e.index,
    type: e.type,
    key: e.key,
    clientId: e.clientId,
    seriesId: e.seriesId,
    respondedTo: e.respondedTo,
    cmd,
    proposerId: e.proposerId,
    proposerEpoch: e.proposerEpoch,
  };
}

function termIn(r: MemReplica, index: number): number | undefined {
  if (r.range.entryLast === 0 || index < r.range.entryFirst || index > r.range.entryLast) return undefined;
  return (r.entries[index - r.range.entryFirst] as Entry).term;
}

/** Applies one planned update, in the order planUpdate prescribes. */
function applyPlan(r: MemReplica, u: ReplicaUpdate, plan: UpdatePlan): void {
  if (u.state !== null) r.state = { term: u.state.term, vote: u.state.vote, commit: u.state.commit };
  if (u.snapshot !== null) {
    if (plan.resetEntries) r.entries = [];
    r.snapshot = copySnapshotMeta(u.snapshot);
  }
  if (plan.truncateFrom > 0) r.entries.length = plan.truncateFrom - r.range.entryFirst;
  else if (plan.next.entryLast === 0) r.entries = [];
  for (const e of u.entries) r.entries.push(copyEntry(e, e.cmd.slice()));
  r.range = plan.next;
  if (r.entries.length !== (plan.next.entryLast === 0 ? 0 : plan.next.entryLast - plan.next.entryFirst + 1)) {
    throw new Error(
      `internal: entry count ${r.entries.length} disagrees with range ${JSON.stringify(plan.next)}`,
    );
  }
}
