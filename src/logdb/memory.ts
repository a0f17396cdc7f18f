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
  type Tombstone,
} from "./types.ts";

export interface MemoryLogDBOptions extends LogDBLimits {
  /** Identity of the simulated data directory (checked again by reopen()). */
  identity?: NodeHostIdentity;
  /** Randomness for injected faults (required before setWriteFault/setReadFault with p > 0). */
  rng?: Rng;
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

  /** A simulated crash: what returned stays, the handle reopens. */
  crash(): void {
    this.closed = false;
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
    this.save(updates);
    this.afterSave?.(updates);
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
    this.enter("saveBootstrap", true);
    checkKey(key, "saveBootstrap");
    const copy = copyBootstrap(record);
    this.getOrCreate(key).bootstrap = copy;
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
    this.enter("reclaimSpace", true);
    return { sizeBytesBefore: 0, sizeBytesAfter: 0 };
  }

  close(): void {
    this.closed = true;
  }
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
