import type { Database, Statement } from "bun:sqlite";
import { Database as SqliteDatabase } from "bun:sqlite";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { mkdirDurable } from "../fs/durable.ts";
import { nodeFileSystem } from "../fs/node.ts";
import {
  EMPTY_STATE,
  ENTRY_HEADER_BYTES,
  type Entry,
  type EntryType,
  entrySizeBytes,
  type SnapshotMeta,
  type State,
} from "../raft/types.ts";
import {
  copySnapshotMeta,
  decodeBootstrap,
  decodeSnapshotMeta,
  encodeBootstrap,
  encodeSnapshotMeta,
} from "./codec.ts";
import { LogDBClosedError, LogDBCorruptError } from "./errors.ts";
import {
  type BootstrapOp,
  type CompactOp,
  encodeRecord,
  type JournalOp,
  OpKind,
  type UpdateOp,
} from "./journal.ts";
import { Overlay } from "./overlay.ts";
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
} from "./plan.ts";
import { TablesAtOpen } from "./sqlite-atopen.ts";
import { HOME_WHERE } from "./sqlite-home.ts";
import {
  closeDatabase,
  configure,
  lockDirectory,
  openSchema,
  quickCheck,
  recoverJournal,
} from "./sqlite-schema.ts";
import {
  CTR_CHECKPOINTED,
  CTR_DONE,
  CTR_FAILED_ID,
  CTRL_BUFFER_BYTES,
  CTRL_ERROR_BYTES,
  CTRL_OPENED,
  type CheckpointPolicy,
  controlViews,
  DEFAULT_CHECKPOINT,
  ERROR_TEXT_AT,
  readWriterStats,
  type WriterControl,
  type WriterMessage,
  type WriterReply,
  type WriterStats,
} from "./sqlite-sql.ts";
import type {
  BootstrapRecord,
  ImportedReplica,
  LogDB,
  LogDBLimits,
  LogUsage,
  NodeHostIdentity,
  ReplicaKey,
  ReplicaLogState,
  ReplicaUpdate,
  SaveDone,
  Tombstone,
} from "./types.ts";

export { LOGDB_LOCK_FILE_NAME } from "./sqlite-schema.ts";

export interface SqliteLogDBOptions extends LogDBLimits {
  /** The NodeHost data directory; the database is `<dir>/logdb.sqlite`. */
  dir: string;
  identity: NodeHostIdentity;
  /** Run `PRAGMA quick_check` when opening an existing database (default true). */
  checkAtOpen?: boolean;
  /** When the writer moves the journal into the per-replica tables (tests; default DEFAULT_CHECKPOINT). */
  checkpoint?: Partial<CheckpointPolicy>;
}

export const LOGDB_FILE_NAME = "logdb.sqlite";
/** How long a synchronous write waits for the writer to finish the queued batches. */
const DRAIN_TIMEOUT_MS = 60_000;
/** How long opening waits for the writer Worker to open its connection. */
const WRITER_OPEN_TIMEOUT_MS = 30_000;
/** How long close waits for the writer's last checkpoint. */
const WRITER_CLOSE_TIMEOUT_MS = 30_000;

/**
 * Opens (creating when absent) the log database of a NodeHost data directory.
 * @example const db = openSqliteLogDB({ dir: "./data", identity: { raftAddress: "h1:7001", deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION } });
 * @throws LogDBIdentityError, LogDBCorruptError, LogDBLockedError when another process holds it.
 */
export function openSqliteLogDB(opts: SqliteLogDBOptions): SqliteLogDB {
  return new SqliteLogDB(opts);
}

const CORRUPT_CODES = new Set([
  "SQLITE_CORRUPT",
  "SQLITE_NOTADB",
  "SQLITE_CORRUPT_INDEX",
  "SQLITE_CORRUPT_SEQUENCE",
]);

type EntryRow = [number, number, number, number, number, number, number, Uint8Array, number, number];

const keyOf = (shardId: number, replicaId: number) => `${shardId}:${replicaId}`;

/**
 * The LogDB on one bun:sqlite database in WAL mode with synchronous=FULL (docs/durability.md).
 * Every write is a journal record (journal.ts) that the writer Worker (sqlite-writer.ts)
 * appends to one table in batch order, one transaction and one fsync each, so a commit writes
 * the journal's last page however many replicas it touches; now and then the writer moves the
 * journal into the per-replica tables in one transaction. This thread keeps what it handed to
 * the writer and the tables do not hold yet (overlay.ts) and reads through it, so reads never
 * wait for the writer. A separate lock file keeps a second process out.
 */
export class SqliteLogDB implements LogDB {
  readonly path: string;
  /** The format this database had before opening migrated it, or null (tests, logs). */
  readonly migratedFrom: number | null;
  /** Journal records a previous process left, moved into the tables at open. */
  readonly recoveredRecords: number;
  private readonly db: Database;
  private readonly lockDb: Database;
  private writer: Worker | null = null;
  private readonly ctrlBuffer = new SharedArrayBuffer(CTRL_BUFFER_BYTES);
  private readonly ctrl: WriterControl = controlViews(this.ctrlBuffer);
  /** Id of the last message handed to the writer (= journal seq of its record); done callbacks by id. */
  private submitted = 0;
  private readonly pending = new Map<number, SaveDone>();
  /** The writer failed: every later write throws this (fail-stop). */
  private writerBroken: Error | null = null;
  private readonly limits: Required<LogDBLimits>;
  private readonly policy: CheckpointPolicy;
  /** Stored range per replica as the writes handed over leave it; loaded from the tables on first use. */
  private readonly ranges = new Map<string, ReplicaRange>();
  private readonly overlay = new Overlay();
  /** Last journal seq the overlay forgot because the tables hold it. */
  private absorbed = 0;
  /**
   * Writes that go with the next record: compactions (need not be durable on their own) and
   * bootstrap records of saveBootstrapAsync (their dones in deferredDone).
   */
  private deferred: (CompactOp | BootstrapOp)[] = [];
  /** Dones of the bootstrap records in `deferred`. */
  private deferredDone: SaveDone[] = [];
  /** Dones of bootstrap records handed over, by the id of the record that carries them. */
  private readonly bootstrapDone = new Map<number, SaveDone[]>();
  /** A microtask will hand `deferred` over on its own. */
  private flushQueued = false;
  private closed = false;
  private readonly s: ReturnType<typeof prepareReads>;
  /** The small tables as they were at open: a replica's start reads a Map, not statements. */
  private readonly atOpen: TablesAtOpen;

  constructor(opts: SqliteLogDBOptions) {
    this.limits = resolveLimits(opts);
    this.policy = { ...DEFAULT_CHECKPOINT, ...opts.checkpoint };
    // Durable: a new directory's name must survive a power loss with the votes written into it.
    mkdirDurable(nodeFileSystem, opts.dir);
    this.path = join(opts.dir, LOGDB_FILE_NAME);
    const existed = existsSync(this.path);
    let db: Database | null = null;
    this.lockDb = lockDirectory(opts.dir);
    try {
      db = new SqliteDatabase(this.path, { create: true });
      this.db = db;
      configure(db, this.path);
      if (existed && opts.checkAtOpen !== false) quickCheck(db, this.path);
      this.migratedFrom = openSchema(db, opts.dir, opts.identity);
      this.recoveredRecords = recoverJournal(db, this.path);
      this.s = prepareReads(db);
      this.atOpen = new TablesAtOpen(db);
      this.writer = this.startWriter();
    } catch (error) {
      if (db !== null) closeDatabase(db);
      closeDatabase(this.lockDb);
      throw this.wrap(error);
    }
  }

  private startWriter(): Worker {
    const w = new Worker(writerUrl());
    w.onmessage = (event: MessageEvent<WriterReply>) => this.onWriterReply(event.data);
    w.onerror = (event) =>
      this.onWriterDied(new Error(`log writer of ${this.path} failed: ${event.message}`));
    w.postMessage({
      kind: "open",
      path: this.path,
      ctrl: this.ctrlBuffer,
      checkpoint: this.policy,
    } satisfies WriterMessage);
    const result = Atomics.wait(this.ctrl.flags, CTRL_OPENED, 0, WRITER_OPEN_TIMEOUT_MS);
    if (Atomics.load(this.ctrl.flags, CTRL_OPENED) !== 1) {
      w.terminate();
      throw new Error(
        `log writer of ${this.path} could not open the database: ${result === "timed-out" ? "no answer within 30 s" : this.writerError().message}`,
      );
    }
    // The engine's own timers keep the process alive; a forgotten close must not.
    w.unref();
    return w;
  }

  /** The writer's error from the control buffer (JSON { message, code }; cut to the buffer). */
  private writerError(): Error {
    const length = Atomics.load(this.ctrl.flags, CTRL_ERROR_BYTES);
    const text = new TextDecoder().decode(new Uint8Array(this.ctrlBuffer, ERROR_TEXT_AT, length).slice());
    try {
      const e = JSON.parse(text) as { message: string; code?: string };
      return Object.assign(new Error(e.message), { code: e.code });
    } catch {
      return new Error(text);
    }
  }

  private onWriterReply(reply: WriterReply): void {
    const done = this.pending.get(reply.id);
    if (reply.error !== null)
      this.broken(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
    const boots = this.bootstrapDone.get(reply.id);
    if (boots !== undefined) {
      this.bootstrapDone.delete(reply.id);
      for (const d of boots) d(reply.error === null ? null : (this.writerBroken as Error));
    }
    if (done === undefined) return;
    this.pending.delete(reply.id);
    done(reply.error === null ? null : (this.writerBroken as Error));
  }

  private broken(error: Error): Error {
    this.writerBroken ??= this.wrap(error) as Error;
    return this.writerBroken;
  }

  private onWriterDied(error: Error): void {
    this.broken(error);
    const pending = [...this.pending.values(), ...[...this.bootstrapDone.values()].flat()];
    this.pending.clear();
    this.bootstrapDone.clear();
    for (const done of pending) done(error);
  }

  /** Throws when the writer failed: nothing more is written (docs/durability.md). */
  private checkWriter(): void {
    if (this.writerBroken !== null) throw this.writerBroken;
    const failedId = Number(Atomics.load(this.ctrl.counters, CTR_FAILED_ID));
    if (failedId !== 0) throw this.broken(this.writerError());
  }

  /** Waits until the writer has finished message id (every earlier one too); throws when it failed. */
  private waitFor(id: number): void {
    // A wall-clock bound on a real thread (SqliteLogDB never runs in the simulator).
    const deadline = performance.now() + DRAIN_TIMEOUT_MS; // env-ok
    for (;;) {
      const failedId = Number(Atomics.load(this.ctrl.counters, CTR_FAILED_ID));
      if (failedId !== 0 && failedId <= id) throw this.broken(this.writerError());
      if (this.writerBroken !== null) throw this.writerBroken;
      const done = Atomics.load(this.ctrl.counters, CTR_DONE);
      if (Number(done) >= id) return;
      const leftMs = deadline - performance.now(); // env-ok
      if (leftMs <= 0) {
        throw this.broken(new Error(`log writer of ${this.path} did not finish its batches within 60 s`));
      }
      Atomics.wait(this.ctrl.counters, CTR_DONE, done, Math.min(leftMs, 1000));
    }
  }

  /** Hands deferred writes over on their own and waits for everything handed over. */
  private drain(): void {
    if (this.deferred.length > 0) this.submit([]);
    this.waitFor(this.submitted);
  }

  /** Forgets overlay records the writer has moved into the tables. */
  private absorb(): void {
    const seq = Number(Atomics.load(this.ctrl.counters, CTR_CHECKPOINTED));
    if (seq <= this.absorbed) return;
    this.overlay.dropThrough(seq);
    this.absorbed = seq;
  }

  /** Maps SQLite's corruption codes to LogDBCorruptError; other errors pass unchanged. */
  private wrap(error: unknown): unknown {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && (CORRUPT_CODES.has(code) || code.startsWith("SQLITE_CORRUPT"))) {
      return new LogDBCorruptError(this.path, (error as Error).message);
    }
    return error;
  }

  private open(operation: string): void {
    if (this.closed) throw new LogDBClosedError(operation);
    this.absorb();
  }

  private range(shardId: number, replicaId: number): ReplicaRange {
    const k = keyOf(shardId, replicaId);
    let r = this.ranges.get(k);
    if (r === undefined) {
      // Nothing of this replica was handed to the writer since open: the tables hold it all.
      // One statement: a query's own cost dominates these lookups (10,000 replicas starting);
      // none when no entry was stored at open (the snapshot point is the one read at open).
      const snap = this.atOpen.noEntries ? this.atOpen.snapshotOf(k) : undefined;
      const row =
        snap !== undefined
          ? [snap?.index ?? null, snap?.term ?? null]
          : (this.s.rangeOf.values(shardId, replicaId)[0] ?? []);
      r = {
        snapshotIndex: Number(row[0] ?? 0),
        snapshotTerm: Number(row[1] ?? 0),
        entryFirst: Number(row[2] ?? 0),
        entryLast: Number(row[3] ?? 0),
      };
      this.ranges.set(k, r);
    }
    return r;
  }

  /**
   * Encodes ops (after the deferred ones) into one journal record, hands it to the writer and
   * applies ops to the overlay. Returns the record's id. Nothing changes when encoding throws.
   */
  private submit(ops: readonly JournalOp[], done?: SaveDone): number {
    const all: JournalOp[] = this.deferred.length > 0 ? [...this.deferred, ...ops] : (ops as JournalOp[]);
    const record = encodeRecord(all, true);
    this.deferred = [];
    for (const op of all) this.atOpen.markWritten(op);
    const id = ++this.submitted;
    if (done !== undefined) this.pending.set(id, done);
    if (this.deferredDone.length > 0) {
      this.bootstrapDone.set(id, this.deferredDone);
      this.deferredDone = [];
    }
    (this.writer as Worker).postMessage({ kind: "batch", id, record: record.bytes } satisfies WriterMessage);
    let update = 0;
    for (const op of ops) update = this.applyToOverlay(op, id, record.bytes, record.entriesAt, update);
    return id;
  }

  /**
   * What op changes in the overlay; its entries stay in the record's bytes (entriesAt: where each
   * update op's entries start, `update` the index of this op's there). Returns the next update's.
   */
  private applyToOverlay(
    op: JournalOp,
    seq: number,
    bytes: Uint8Array,
    entriesAt: number[],
    update: number,
  ): number {
    const k = keyOf(op.shard, op.replica);
    const o = this.overlay;
    switch (op.kind) {
      case OpKind.update: {
        if (op.state !== null) o.setState(k, { ...op.state }, seq);
        if (op.snapshot !== null) {
          if (op.snapshot.resetEntries) o.truncate(k, 0);
          o.setSnapshot(k, decodeSnapshotMeta(op.snapshot.meta), seq);
        }
        if (op.truncateFrom > 0) o.truncate(k, op.truncateFrom);
        const at = entriesAt[update++] as number;
        const head = op.entries[0];
        if (head !== undefined) o.append(k, head.index, op.entries.length, seq, bytes, at);
        break;
      }
      case OpKind.bootstrap:
        o.setBootstrap(k, op.record, seq);
        break;
      case OpKind.compact:
        o.compact(k, op.index);
        break;
      case OpKind.remove:
        o.clear(k, seq);
        if (op.tombstone !== null) o.setTombstone(k, { ...op.tombstone }, seq);
        break;
      case OpKind.import:
        o.clear(k, seq);
        o.setState(k, { ...op.state }, seq);
        o.setSnapshot(k, decodeSnapshotMeta(op.snapshot.meta), seq);
        o.setBootstrap(k, op.bootstrap, seq);
        break;
    }
    return update;
  }

  saveUpdates(updates: readonly ReplicaUpdate[]): void {
    this.open("saveUpdates");
    checkBatch(updates, this.limits);
    if (updates.length === 0) return;
    this.checkWriter();
    this.waitFor(this.saveBatch(updates));
  }

  saveUpdatesAsync(updates: readonly ReplicaUpdate[], done: SaveDone): void {
    this.open("saveUpdatesAsync");
    checkBatch(updates, this.limits);
    this.checkWriter();
    this.saveBatch(updates, done);
  }

  /** Plans every update (nothing changes when one is refused), then hands the batch over. */
  private saveBatch(updates: readonly ReplicaUpdate[], done?: SaveDone): number {
    const next = new Map<string, ReplicaRange>();
    const ops = updates.map((_, i) => this.planOp(updates, i, next));
    const id = this.submit(ops, done);
    // Planned ranges count from now: later batches are planned on top of this one.
    for (const [k, r] of next) this.ranges.set(k, r);
    return id;
  }

  private planOp(updates: readonly ReplicaUpdate[], i: number, next: Map<string, ReplicaRange>): UpdateOp {
    const u = updates[i] as ReplicaUpdate;
    const shard = u.shardId;
    const replica = u.replicaId;
    const k = keyOf(shard, replica);
    const range = next.get(k) ?? this.range(shard, replica);
    const plan = planUpdate(u, range, (index) => this.plannedTerm(updates, i, range, index));
    next.set(k, plan.next);
    return {
      kind: OpKind.update,
      shard,
      replica,
      state: u.state === null ? null : { term: u.state.term, vote: u.state.vote, commit: u.state.commit },
      snapshot:
        u.snapshot === null
          ? null
          : {
              index: u.snapshot.index,
              term: u.snapshot.term,
              meta: encodeSnapshotMeta(u.snapshot),
              resetEntries: plan.resetEntries,
            },
      truncateFrom: plan.truncateFrom,
      entries: u.entries,
    };
  }

  /**
   * The term at index as update i of a batch finds the log: written by an earlier update of
   * the same batch, else stored (range: the replica's range before update i).
   */
  private plannedTerm(updates: readonly ReplicaUpdate[], i: number, range: ReplicaRange, index: number) {
    const u = updates[i] as ReplicaUpdate;
    for (let j = i - 1; j >= 0; j--) {
      const p = updates[j] as ReplicaUpdate;
      if (p.shardId !== u.shardId || p.replicaId !== u.replicaId) continue;
      const head = p.entries[0];
      if (head !== undefined && index >= head.index && index < head.index + p.entries.length)
        return (p.entries[index - head.index] as Entry).term;
      if (p.snapshot !== null) break; // what came before it is judged by `range`
    }
    return this.storedTerm(u.shardId, u.replicaId, range, index);
  }

  /** The term of a stored entry (overlay first, then the table), or undefined outside range. */
  private storedTerm(
    shardId: number,
    replicaId: number,
    range: ReplicaRange,
    index: number,
  ): number | undefined {
    if (range.entryLast === 0 || index < range.entryFirst || index > range.entryLast) return undefined;
    const pending = this.overlay.term(keyOf(shardId, replicaId), index);
    if (pending !== undefined) return pending;
    const row = this.s.term.values(shardId, replicaId, index)[0];
    return row === undefined ? undefined : Number(row[0]);
  }

  entries(key: ReplicaKey, low: number, high: number, maxSizeBytes: number): Entry[] {
    this.open("entries");
    const out: Entry[] = [];
    const range = this.range(key.shardId, key.replicaId);
    if (range.entryLast === 0 || low < range.entryFirst || low > range.entryLast) return out;
    high = Math.min(high, range.entryLast + 1);
    if (low >= high) return out;
    const k = keyOf(key.shardId, key.replicaId);
    const pending = this.overlay.get(k);
    const pendingFirst = pending !== undefined && pending.count > 0 ? pending.first : high;
    const budget = { sizeBytes: 0 };
    if (
      low < pendingFirst &&
      !this.tableEntries(key, low, Math.min(high, pendingFirst), maxSizeBytes, out, budget)
    )
      return out;
    this.overlay.readEntries(k, Math.max(low, pendingFirst), high, (e) => {
      budget.sizeBytes += entrySizeBytes(e);
      if (out.length > 0 && budget.sizeBytes > maxSizeBytes) return false;
      out.push(e);
      return true;
    });
    return out;
  }

  /** Appends table entries in [low, high) to out within the size budget; false when it stopped early. */
  private tableEntries(
    key: ReplicaKey,
    low: number,
    high: number,
    maxSizeBytes: number,
    out: Entry[],
    budget: { sizeBytes: number },
  ): boolean {
    let expected = low;
    // Every entry counts at least ENTRY_HEADER_BYTES, so no more than this many can fit.
    const rowLimit = Math.min(high - low, Math.floor(Math.max(0, maxSizeBytes) / ENTRY_HEADER_BYTES) + 1);
    try {
      const rows = this.s.entries.values(
        key.shardId,
        key.replicaId,
        low,
        high,
        rowLimit,
      ) as unknown as EntryRow[];
      for (const row of rows) {
        if (row[0] !== expected) return false;
        const e: Entry = {
          term: row[1],
          index: row[0],
          type: row[2] as EntryType,
          key: row[3],
          clientId: row[4],
          seriesId: row[5],
          respondedTo: row[6],
          cmd: row[7],
          proposerId: row[8],
          proposerEpoch: row[9],
        };
        budget.sizeBytes += entrySizeBytes(e);
        if (out.length > 0 && budget.sizeBytes > maxSizeBytes) return false;
        out.push(e);
        expected++;
      }
    } catch (error) {
      throw this.wrap(error);
    }
    return expected === high;
  }

  term(key: ReplicaKey, index: number): number | undefined {
    this.open("term");
    const range = this.range(key.shardId, key.replicaId);
    const t = this.storedTerm(key.shardId, key.replicaId, range, index);
    if (t !== undefined) return t;
    return index === range.snapshotIndex && index > 0 ? range.snapshotTerm : undefined;
  }

  readLogState(key: ReplicaKey): ReplicaLogState {
    this.open("readLogState");
    checkKey(key, "readLogState");
    // Batches handed to the writer count (a replica stopped with one in flight and started
    // again must see it): they are in the overlay, and anything the replica then promises is
    // written after them. Else the tables as they were at open (nothing of the replica written
    // since), else the tables now.
    const k = keyOf(key.shardId, key.replicaId);
    const pending = this.overlay.get(k);
    try {
      const range = this.range(key.shardId, key.replicaId);
      let state: State;
      const stateAtOpen = pending?.state === undefined ? this.atOpen.stateOf(k) : undefined;
      if (pending?.state !== undefined) state = { ...(pending.state.value ?? EMPTY_STATE) };
      else if (stateAtOpen !== undefined) state = { ...(stateAtOpen ?? EMPTY_STATE) };
      else {
        const st = this.s.state.values(key.shardId, key.replicaId)[0];
        state =
          st === undefined
            ? { ...EMPTY_STATE }
            : { term: Number(st[0]), vote: Number(st[1]), commit: Number(st[2]) };
      }
      let snapshot: SnapshotMeta | null;
      const snapAtOpen = pending?.snapshot === undefined ? this.atOpen.snapshotOf(k) : undefined;
      if (pending?.snapshot !== undefined)
        snapshot = pending.snapshot.value && copySnapshotMeta(pending.snapshot.value);
      else if (snapAtOpen !== undefined)
        snapshot = snapAtOpen === null ? null : decodeSnapshotMeta(snapAtOpen.meta);
      else {
        const row = this.s.snapshotMeta.values(key.shardId, key.replicaId)[0];
        snapshot = row === undefined ? null : decodeSnapshotMeta(row[0] as Uint8Array);
      }
      return logStateOf(range, state, snapshot);
    } catch (error) {
      throw this.wrap(error);
    }
  }

  saveBootstrap(key: ReplicaKey, record: BootstrapRecord): void {
    this.open("saveBootstrap");
    checkKey(key, "saveBootstrap");
    this.checkWriter();
    const op: JournalOp = {
      kind: OpKind.bootstrap,
      shard: key.shardId,
      replica: key.replicaId,
      record: encodeBootstrap(record),
    };
    this.waitFor(this.submit([op]));
  }

  /**
   * The record goes with the next one handed to the writer (its overlay stamp is that record's
   * id, submitted + 1: every hand-over carries `deferred`), or on its own from a microtask.
   */
  saveBootstrapAsync(key: ReplicaKey, record: BootstrapRecord, done: SaveDone): void {
    this.open("saveBootstrapAsync");
    checkKey(key, "saveBootstrapAsync");
    this.checkWriter();
    const op: BootstrapOp = {
      kind: OpKind.bootstrap,
      shard: key.shardId,
      replica: key.replicaId,
      record: encodeBootstrap(record),
    };
    encodeRecord([op]); // checks what the record will hold before anything changes
    this.overlay.setBootstrap(keyOf(key.shardId, key.replicaId), op.record, this.submitted + 1);
    this.deferred.push(op);
    this.deferredDone.push(done);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      if (this.closed || this.deferredDone.length === 0) return;
      try {
        this.submit([]);
      } catch (error) {
        const dones = this.deferredDone;
        this.deferredDone = [];
        for (const d of dones) d(error as Error);
      }
    });
  }

  getBootstrap(key: ReplicaKey): BootstrapRecord | null {
    this.open("getBootstrap");
    const k = keyOf(key.shardId, key.replicaId);
    const pending = this.overlay.get(k)?.bootstrap;
    // The overlay, else the tables as they were at open, else the tables now.
    let text = pending !== undefined ? pending.value : this.atOpen.bootstrapOf(k);
    if (text === undefined) {
      const row = this.s.bootstrap.values(key.shardId, key.replicaId)[0];
      text = row === undefined ? null : String(row[0]);
    }
    if (text === null) return null;
    try {
      return decodeBootstrap(text, `shard ${key.shardId} replica ${key.replicaId}`);
    } catch (error) {
      throw new LogDBCorruptError(this.path, (error as Error).message);
    }
  }

  listReplicas(): ReplicaKey[] {
    this.open("listReplicas");
    const listed = new Map<string, ReplicaKey>();
    for (const r of this.s.listReplicas.values()) {
      const key = { shardId: Number(r[0]), replicaId: Number(r[1]) };
      listed.set(keyOf(key.shardId, key.replicaId), key);
    }
    for (const k of this.overlay.keys()) {
      const p = this.overlay.get(k);
      if (p === undefined) continue;
      const fields = [p.state, p.snapshot, p.bootstrap];
      // Only a removal writes null: it voids all three, so the tables' rows do not count.
      if (fields.some((f) => f !== undefined && f.value !== null)) {
        const [shardId, replicaId] = k.split(":").map(Number) as [number, number];
        listed.set(k, { shardId, replicaId });
      } else if (fields.some((f) => f !== undefined)) listed.delete(k);
    }
    return [...listed.values()].sort((a, b) => a.shardId - b.shardId || a.replicaId - b.replicaId);
  }

  removeReplica(key: ReplicaKey, tombstone?: Tombstone): void {
    this.open("removeReplica");
    checkKey(key, "removeReplica");
    this.checkWriter();
    const op: JournalOp = {
      kind: OpKind.remove,
      shard: key.shardId,
      replica: key.replicaId,
      tombstone:
        tombstone === undefined ? null : { removedAtMs: tombstone.removedAtMs, reason: tombstone.reason },
    };
    const id = this.submit([op]);
    this.ranges.set(keyOf(key.shardId, key.replicaId), EMPTY_RANGE);
    this.waitFor(id);
  }

  getTombstone(key: ReplicaKey): Tombstone | null {
    this.open("getTombstone");
    const k = keyOf(key.shardId, key.replicaId);
    const pending = this.overlay.get(k)?.tombstone;
    if (pending !== undefined) return { ...pending.value };
    const atOpen = this.atOpen.tombstoneOf(k);
    if (atOpen !== undefined) return atOpen && { ...atOpen };
    const row = this.s.tombstone.values(key.shardId, key.replicaId)[0];
    return row === undefined ? null : { removedAtMs: Number(row[0]), reason: String(row[1]) };
  }

  /**
   * Written with the next write (not waited for): a crash before it only keeps entries a
   * snapshot already covers, and the snapshot's metadata was written before it.
   */
  compact(key: ReplicaKey, index: number): void {
    this.open("compact");
    checkKey(key, "compact");
    this.checkWriter();
    const k = keyOf(key.shardId, key.replicaId);
    const next = planCompact(key, this.range(key.shardId, key.replicaId), index);
    const op: CompactOp = { kind: OpKind.compact, shard: key.shardId, replica: key.replicaId, index };
    encodeRecord([op]); // checks what the record will hold before anything changes
    this.ranges.set(k, next);
    this.overlay.compact(k, index);
    this.deferred.push(op);
  }

  importSnapshot(key: ReplicaKey, record: ImportedReplica): void {
    this.open("importSnapshot");
    this.checkWriter();
    const next = planImport(key, record);
    const { state, snapshot } = record;
    const op: JournalOp = {
      kind: OpKind.import,
      shard: key.shardId,
      replica: key.replicaId,
      bootstrap: encodeBootstrap(record.bootstrap),
      state: { term: state.term, vote: state.vote, commit: state.commit },
      snapshot: { index: snapshot.index, term: snapshot.term, meta: encodeSnapshotMeta(snapshot) },
    };
    const id = this.submit([op]);
    this.ranges.set(keyOf(key.shardId, key.replicaId), next);
    this.waitFor(id);
  }

  logUsage(key: ReplicaKey): LogUsage {
    this.open("logUsage");
    const range = this.range(key.shardId, key.replicaId);
    if (range.entryLast === 0) return { entryCount: 0, sizeBytes: 0 };
    const k = keyOf(key.shardId, key.replicaId);
    const pending = this.overlay.get(k);
    const pendingFirst = pending !== undefined && pending.count > 0 ? pending.first : range.entryLast + 1;
    const row = this.s.usage.values(key.shardId, key.replicaId, range.entryFirst, pendingFirst - 1)[0];
    let entryCount = Number(row?.[0] ?? 0);
    let sizeBytes = Number(row?.[1] ?? 0) + entryCount * ENTRY_HEADER_BYTES;
    this.overlay.readEntries(k, pendingFirst, range.entryLast + 1, (e) => {
      entryCount++;
      sizeBytes += entrySizeBytes(e);
      return true;
    });
    return { entryCount, sizeBytes };
  }

  /**
   * Moves the journal into the per-replica tables, checkpoints the WAL into the database and
   * truncates it (the WAL holds every page written since the last checkpoint, so after a burst
   * of writes it is often the larger file), then, when the database was created with
   * auto_vacuum=INCREMENTAL, returns its free pages to the file system. Pages freed by
   * compactions are otherwise reused for new entries.
   */
  reclaimSpace(): { sizeBytesBefore: number; sizeBytesAfter: number } {
    this.open("reclaimSpace");
    this.checkWriter();
    this.drain();
    // The journal first: moving it may grow the tables before anything is handed back.
    const id = ++this.submitted;
    (this.writer as Worker).postMessage({ kind: "checkpoint", id } satisfies WriterMessage);
    this.waitFor(id);
    this.absorb();
    const sizeBytesBefore = this.sizeBytes();
    try {
      this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      if (Number(this.db.query("PRAGMA auto_vacuum").values()[0]?.[0]) === 2) {
        this.db.exec("PRAGMA incremental_vacuum");
        this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      }
    } catch (error) {
      throw this.wrap(error);
    }
    return { sizeBytesBefore, sizeBytesAfter: this.sizeBytes() };
  }

  /** Bytes of the database file and its WAL. */
  private sizeBytes(): number {
    const size = (p: string) => (existsSync(p) ? statSync(p).size : 0);
    return size(this.path) + size(`${this.path}-wal`);
  }

  /** What the log writer did since open and how long it took (metrics, benchmarks). */
  writerStats(): WriterStats {
    return readWriterStats(this.ctrl);
  }

  /** Records handed to the writer since open, each one transaction and one fsync (tests, benchmarks). */
  get recordsHandedOver(): number {
    return this.submitted;
  }

  /** Entries handed to the writer that the per-replica tables do not hold yet (tests). */
  get pendingEntryCount(): number {
    this.absorb();
    return this.overlay.entryCount;
  }

  /** The durability settings in effect (journal mode, synchronous level, page size). */
  settings(): { journalMode: string; synchronous: number; pageSizeBytes: number; lockingMode: string } {
    this.open("settings");
    const one = (pragma: string): unknown => this.db.query(`PRAGMA ${pragma}`).values()[0]?.[0];
    return {
      journalMode: String(one("journal_mode")),
      synchronous: Number(one("synchronous")),
      pageSizeBytes: Number(one("page_size")),
      // The data directory's lock (lockDirectory), not the log's own connection.
      lockingMode: String(this.lockDb.query("PRAGMA locking_mode").values()[0]?.[0]),
    };
  }

  /**
   * Hands over deferred writes, waits for everything handed to the writer (bounded), lets it
   * move the journal into the tables, closes both connections and releases the lock. Batches
   * whose done has not run by then lose their done (the engine has stopped).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.writerBroken === null) this.drain();
    } catch {
      // a writer that cannot finish is abandoned: what it did not commit is lost, as in a crash
    }
    const w = this.writer;
    if (w !== null && this.writerBroken === null) {
      Atomics.store(this.ctrl.flags, CTRL_OPENED, 0);
      w.postMessage({ kind: "close" } satisfies WriterMessage);
      Atomics.wait(this.ctrl.flags, CTRL_OPENED, 0, WRITER_CLOSE_TIMEOUT_MS);
    }
    w?.terminate();
    this.writer = null;
    this.pending.clear();
    // Whoever waits for a bootstrap record learns its fate: durable when the drain finished.
    const drained =
      this.writerBroken === null && Number(Atomics.load(this.ctrl.counters, CTR_DONE)) >= this.submitted;
    const boots = [...[...this.bootstrapDone.values()].flat(), ...this.deferredDone];
    this.bootstrapDone.clear();
    this.deferredDone = [];
    const error = drained ? null : (this.writerBroken ?? new LogDBClosedError("saveBootstrapAsync"));
    for (const d of boots) queueMicrotask(() => d(error));
    closeDatabase(this.db);
    closeDatabase(this.lockDb);
  }
}

/**
 * Where the writer Worker's module is. From source: beside this file. In the compiled binary
 * (build.ts adds the writer as a second entrypoint) every module is bundled into one chunk whose
 * import.meta.url is the binary, and the writer sits at its path relative to the entrypoints'
 * common folder, src/.
 */
function writerUrl(): string {
  if (import.meta.url.startsWith("file:///$bunfs/")) return "./logdb/sqlite-writer.ts";
  return new URL("./sqlite-writer.ts", import.meta.url).href;
}

/** The engine thread's statements: reads only (every write goes through the writer). */
function prepareReads(db: Database) {
  const q = (sql: string): Statement => db.prepare(sql);
  const where = HOME_WHERE;
  // HOME_WHERE with numbered parameters, for a statement that names the replica more than once.
  const ONE = "WHERE shard = ?1 AND replica = ?2";
  return {
    entries: q(
      `SELECT idx, term, type, ekey, client, series, responded, cmd, proposer, epoch FROM entries ${where} AND idx >= ? AND idx < ? ORDER BY idx LIMIT ?`,
    ),
    term: q(`SELECT term FROM entries ${where} AND idx = ?`),
    // Snapshot index and term, first and last entry index (NULL when absent).
    rangeOf: q(
      `SELECT (SELECT idx FROM snapshots ${ONE}), (SELECT term FROM snapshots ${ONE}), (SELECT idx FROM entries ${ONE} ORDER BY idx LIMIT 1), (SELECT idx FROM entries ${ONE} ORDER BY idx DESC LIMIT 1)`,
    ),
    snapshotMeta: q(`SELECT meta FROM snapshots ${where}`),
    state: q(`SELECT term, vote, commit_index FROM state ${where}`),
    tombstone: q(`SELECT removed_at_ms, reason FROM tombstones ${where}`),
    usage: q(
      `SELECT count(*), coalesce(sum(length(cmd)), 0) FROM entries ${where} AND idx >= ? AND idx <= ?`,
    ),
    bootstrap: q(`SELECT record FROM bootstrap ${where}`),
    listReplicas: q(
      "SELECT shard, replica FROM bootstrap UNION SELECT shard, replica FROM state UNION SELECT shard, replica FROM snapshots ORDER BY 1, 2",
    ),
  };
}
