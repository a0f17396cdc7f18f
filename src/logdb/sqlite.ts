import { Database, type Statement } from "bun:sqlite";
import { existsSync, statSync } from "node:fs";
import { mkdirDurable } from "../fs/durable.ts";
import { nodeFileSystem } from "../fs/node.ts";
import { join } from "node:path";
import {
  EMPTY_STATE,
  ENTRY_HEADER_BYTES,
  type Entry,
  type EntryType,
  entrySizeBytes,
  type SnapshotMeta,
  type State,
} from "../raft/types.ts";
import { decodeBootstrap, decodeSnapshotMeta, encodeBootstrap, encodeSnapshotMeta } from "./codec.ts";
import { LogDBClosedError, LogDBCorruptError, LogDBLockedError } from "./errors.ts";
import { checkIdentity, type StoredIdentity } from "./identity.ts";
import {
  CTRL_BUFFER_BYTES,
  CTRL_DONE,
  CTRL_ERROR_BYTES,
  CTRL_OPENED,
  ERROR_TEXT_AT,
  SQL,
  type WriterMessage,
  type WriterOp,
  type WriterReply,
} from "./sqlite-sql.ts";
import {
  checkBatch,
  checkKey,
  logStateOf,
  planCompact,
  planImport,
  planUpdate,
  type ReplicaRange,
  resolveLimits,
} from "./plan.ts";
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

export interface SqliteLogDBOptions extends LogDBLimits {
  /** The NodeHost data directory; the database is `<dir>/logdb.sqlite`. */
  dir: string;
  identity: NodeHostIdentity;
  /** Run `PRAGMA quick_check` when opening an existing database (default true). */
  checkAtOpen?: boolean;
}

export const LOGDB_FILE_NAME = "logdb.sqlite";
/** Held with an exclusive lock while a process has the data directory open. */
export const LOGDB_LOCK_FILE_NAME = "logdb.lock";
/** How long a synchronous write waits for the writer to finish the queued batches. */
const DRAIN_TIMEOUT_MS = 60_000;
/** How long opening waits for the writer Worker to open its connection. */
const WRITER_OPEN_TIMEOUT_MS = 30_000;

/**
 * Opens (creating when absent) the log database of a NodeHost data directory.
 * @example const db = openSqliteLogDB({ dir: "./data", identity: { raftAddress: "h1:7001", deploymentId: 1, formatVersion: 1 } });
 * @throws LogDBIdentityError, LogDBCorruptError, Error when another process holds it.
 */
export function openSqliteLogDB(opts: SqliteLogDBOptions): SqliteLogDB {
  return new SqliteLogDB(opts);
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS identity (id INTEGER PRIMARY KEY CHECK (id = 1), raft_address TEXT NOT NULL,
  deployment_id INTEGER NOT NULL, format_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (shard INTEGER NOT NULL, replica INTEGER NOT NULL, idx INTEGER NOT NULL,
  term INTEGER NOT NULL, type INTEGER NOT NULL, ekey INTEGER NOT NULL, client INTEGER NOT NULL,
  series INTEGER NOT NULL, responded INTEGER NOT NULL, cmd BLOB NOT NULL,
  proposer INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (shard, replica, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (shard INTEGER NOT NULL, replica INTEGER NOT NULL, term INTEGER NOT NULL,
  vote INTEGER NOT NULL, commit_index INTEGER NOT NULL, PRIMARY KEY (shard, replica)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (shard INTEGER NOT NULL, replica INTEGER NOT NULL, idx INTEGER NOT NULL,
  term INTEGER NOT NULL, meta BLOB NOT NULL, PRIMARY KEY (shard, replica)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bootstrap (shard INTEGER NOT NULL, replica INTEGER NOT NULL, record TEXT NOT NULL,
  PRIMARY KEY (shard, replica)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (shard INTEGER NOT NULL, replica INTEGER NOT NULL,
  removed_at_ms INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (shard, replica)) WITHOUT ROWID;
`;

const CORRUPT_CODES = new Set([
  "SQLITE_CORRUPT",
  "SQLITE_NOTADB",
  "SQLITE_CORRUPT_INDEX",
  "SQLITE_CORRUPT_SEQUENCE",
]);

type EntryRow = [number, number, number, number, number, number, number, Uint8Array, number, number];

/**
 * The LogDB on one bun:sqlite database in WAL mode with synchronous=FULL. Two connections: the
 * engine thread's reads (and its rare synchronous writes, after the queue drained), and a
 * writer Worker (sqlite-writer.ts) that commits the saveUpdatesAsync batches, so the fsync
 * never blocks the engine thread. A separate lock file keeps a second process out.
 */
export class SqliteLogDB implements LogDB {
  readonly path: string;
  private readonly db: Database;
  private readonly lockDb: Database;
  private writer: Worker | null = null;
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_BUFFER_BYTES));
  /** Id of the last batch handed to the writer; done callbacks by id. */
  private submitted = 0;
  private readonly pending = new Map<number, SaveDone>();
  /** The writer failed in a way that leaves it unusable (it died, or a drain timed out). */
  private writerBroken: Error | null = null;
  private readonly limits: Required<LogDBLimits>;
  /** Stored range per replica, loaded on first use; one per replica with data (removed with it). */
  private readonly ranges = new Map<string, ReplicaRange>();
  private closed = false;
  private readonly s: ReturnType<typeof prepareAll>;

  constructor(opts: SqliteLogDBOptions) {
    this.limits = resolveLimits(opts);
    // Durable: a new directory's name must survive a power loss with the votes written into it.
    mkdirDurable(nodeFileSystem, opts.dir);
    this.path = join(opts.dir, LOGDB_FILE_NAME);
    const existed = existsSync(this.path);
    let db: Database | null = null;
    this.lockDb = lockDirectory(opts.dir);
    try {
      db = new Database(this.path, { create: true });
      this.db = db;
      this.configure(db);
      if (existed && opts.checkAtOpen !== false) this.quickCheck(db);
      db.exec(SCHEMA);
      addRequestTagColumns(db);
      this.s = prepareAll(db);
      this.checkIdentity(opts.dir, opts.identity);
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
    w.postMessage({ kind: "open", path: this.path, ctrl: this.ctrl } satisfies WriterMessage);
    const result = Atomics.wait(this.ctrl, CTRL_OPENED, 0, WRITER_OPEN_TIMEOUT_MS);
    const opened = Atomics.load(this.ctrl, CTRL_OPENED);
    if (opened !== 1) {
      w.terminate();
      const length = Atomics.load(this.ctrl, CTRL_ERROR_BYTES);
      const text = new TextDecoder().decode(new Uint8Array(this.ctrl.buffer, ERROR_TEXT_AT, length).slice());
      throw new Error(
        `log writer of ${this.path} could not open the database: ${result === "timed-out" ? "no answer within 30 s" : text}`,
      );
    }
    // The engine's own timers keep the process alive; a forgotten close must not.
    w.unref();
    return w;
  }

  private onWriterReply(reply: WriterReply): void {
    const done = this.pending.get(reply.id);
    if (done === undefined) return;
    this.pending.delete(reply.id);
    if (reply.error === null) {
      done(null);
      return;
    }
    // The ranges planned for queued batches assumed success: read them again when next needed.
    this.ranges.clear();
    const error = Object.assign(new Error(reply.error.message), { code: reply.error.code });
    done(this.wrap(error) as Error);
  }

  private onWriterDied(error: Error): void {
    this.writerBroken ??= error;
    this.ranges.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const done of pending) done(error);
  }

  /** Waits until the writer has finished every batch handed to it (synchronous writes call it). */
  private drain(): void {
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      if (this.writerBroken !== null) throw this.writerBroken;
      const done = Atomics.load(this.ctrl, CTRL_DONE);
      if (done >= this.submitted) return;
      const leftMs = deadline - performance.now();
      if (leftMs <= 0) {
        this.writerBroken = new Error(`log writer of ${this.path} did not finish its batches within 60 s`);
        throw this.writerBroken;
      }
      Atomics.wait(this.ctrl, CTRL_DONE, done, Math.min(leftMs, 1000));
    }
  }

  private configure(db: Database): void {
    // The writer Worker's commits and this thread's reads meet in WAL mode; a reader waits at
    // most this long for a lock (only a checkpoint or a synchronous write can hold one).
    db.exec("PRAGMA busy_timeout=10000");
    // 8 KiB pages keep 1 KiB entries inside their B-tree cell (3.5× faster than 4 KiB
    // pages in scripts/bench/logdb.ts); only takes effect when the file is created.
    db.exec("PRAGMA page_size=8192");
    const mode = db.query("PRAGMA journal_mode=WAL").values()[0]?.[0];
    if (mode !== "wal")
      throw new Error(`log database ${this.path} could not switch to WAL mode (got ${String(mode)})`);
    db.exec("PRAGMA synchronous=FULL");
  }

  private quickCheck(db: Database): void {
    const rows = db.query("PRAGMA quick_check(5)").values();
    const result = rows.map((r) => String(r[0])).join("; ");
    if (result !== "ok") throw new LogDBCorruptError(this.path, result);
  }

  private checkIdentity(dir: string, identity: NodeHostIdentity): void {
    const row = this.db
      .query("SELECT raft_address, deployment_id, format_version FROM identity WHERE id = 1")
      .values()[0];
    if (row === undefined) {
      this.db
        .query("INSERT INTO identity (id, raft_address, deployment_id, format_version) VALUES (1, ?, ?, ?)")
        .run(identity.raftAddress, identity.deploymentId, identity.formatVersion);
      return;
    }
    const stored: StoredIdentity = {
      raftAddress: String(row[0]),
      deploymentId: Number(row[1]),
      formatVersion: Number(row[2]),
    };
    checkIdentity(dir, stored, identity);
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
  }

  private range(shardId: number, replicaId: number): ReplicaRange {
    const k = `${shardId}:${replicaId}`;
    let r = this.ranges.get(k);
    if (r === undefined) {
      const snap = this.s.snapshotPoint.values(shardId, replicaId)[0];
      const first = this.s.firstIdx.values(shardId, replicaId)[0];
      const last = this.s.lastIdx.values(shardId, replicaId)[0];
      r = {
        snapshotIndex: snap === undefined ? 0 : Number(snap[0]),
        snapshotTerm: snap === undefined ? 0 : Number(snap[1]),
        entryFirst: first === undefined ? 0 : Number(first[0]),
        entryLast: last === undefined ? 0 : Number(last[0]),
      };
      this.ranges.set(k, r);
    }
    return r;
  }

  saveUpdates(updates: readonly ReplicaUpdate[]): void {
    this.open("saveUpdates");
    checkBatch(updates, this.limits);
    if (updates.length === 0) return;
    this.drain();
    const next = new Map<string, ReplicaRange>();
    this.s.begin.run();
    try {
      for (const u of updates) this.saveOne(u, next);
      this.s.commit.run();
    } catch (error) {
      // SQLite already rolled back after some errors (I/O, disk full); a second rollback would mask the cause.
      if (this.db.inTransaction) this.s.rollback.run();
      throw this.wrap(error);
    }
    // Only a committed transaction changes the cached ranges.
    for (const [k, r] of next) this.ranges.set(k, r);
  }

  saveUpdatesAsync(updates: readonly ReplicaUpdate[], done: SaveDone): void {
    this.open("saveUpdatesAsync");
    checkBatch(updates, this.limits);
    if (this.writerBroken !== null) throw this.writerBroken;
    // A snapshot's plan reads the term stored at its index: let earlier batches land first.
    if (updates.some((u) => u.snapshot !== null)) this.drain();
    const next = new Map<string, ReplicaRange>();
    const ops: WriterOp[] = updates.map((u) => this.planOp(u, next));
    // Planned ranges count from now: later batches are planned on top of this one.
    for (const [k, r] of next) this.ranges.set(k, r);
    const id = ++this.submitted;
    this.pending.set(id, done);
    (this.writer as Worker).postMessage({ kind: "batch", id, ops } satisfies WriterMessage);
  }

  private planOp(u: ReplicaUpdate, next: Map<string, ReplicaRange>): WriterOp {
    const shard = u.shardId;
    const replica = u.replicaId;
    const k = `${shard}:${replica}`;
    const plan = planUpdate(u, next.get(k) ?? this.range(shard, replica), (index) =>
      this.entryTerm(shard, replica, index),
    );
    next.set(k, plan.next);
    return {
      shard,
      replica,
      state: u.state === null ? null : [u.state.term, u.state.vote, u.state.commit],
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
      entries: u.entries.map((e) => [
        e.index,
        e.term,
        e.type,
        e.key,
        e.clientId,
        e.seriesId,
        e.respondedTo,
        e.cmd,
        e.proposerId,
        e.proposerEpoch,
      ]),
    };
  }

  private saveOne(u: ReplicaUpdate, next: Map<string, ReplicaRange>): void {
    const shard = u.shardId;
    const replica = u.replicaId;
    const k = `${shard}:${replica}`;
    const range = next.get(k) ?? this.range(shard, replica);
    const plan = planUpdate(u, range, (index) => this.entryTerm(shard, replica, index));
    const s = this.s;
    if (u.state !== null) s.upsertState.run(shard, replica, u.state.term, u.state.vote, u.state.commit);
    if (u.snapshot !== null) {
      if (plan.resetEntries) s.deleteAll.run(shard, replica);
      s.upsertSnapshot.run(shard, replica, u.snapshot.index, u.snapshot.term, encodeSnapshotMeta(u.snapshot));
    }
    if (plan.truncateFrom > 0) s.deleteFrom.run(shard, replica, plan.truncateFrom);
    const insert = s.insertEntry;
    const entries = u.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      insert.run(
        shard,
        replica,
        e.index,
        e.term,
        e.type,
        e.key,
        e.clientId,
        e.seriesId,
        e.respondedTo,
        e.cmd,
        e.proposerId,
        e.proposerEpoch,
      );
    }
    next.set(k, plan.next);
  }

  entries(key: ReplicaKey, low: number, high: number, maxSizeBytes: number): Entry[] {
    this.open("entries");
    const out: Entry[] = [];
    if (low >= high) return out;
    let sizeBytes = 0;
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
        if (row[0] !== expected) break;
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
        sizeBytes += entrySizeBytes(e);
        if (out.length > 0 && sizeBytes > maxSizeBytes) break;
        out.push(e);
        expected++;
      }
    } catch (error) {
      throw this.wrap(error);
    }
    return out;
  }

  private entryTerm(shardId: number, replicaId: number, index: number): number | undefined {
    const row = this.s.term.values(shardId, replicaId, index)[0];
    return row === undefined ? undefined : Number(row[0]);
  }

  term(key: ReplicaKey, index: number): number | undefined {
    this.open("term");
    const t = this.entryTerm(key.shardId, key.replicaId, index);
    if (t !== undefined) return t;
    const range = this.range(key.shardId, key.replicaId);
    return index === range.snapshotIndex && index > 0 ? range.snapshotTerm : undefined;
  }

  readLogState(key: ReplicaKey): ReplicaLogState {
    this.open("readLogState");
    checkKey(key, "readLogState");
    // A replica starts from it: batches handed to the writer count (a replica stopped with
    // one in flight and started again must see it).
    this.drain();
    try {
      const range = this.range(key.shardId, key.replicaId);
      const st = this.s.state.values(key.shardId, key.replicaId)[0];
      const state: State =
        st === undefined
          ? { ...EMPTY_STATE }
          : { term: Number(st[0]), vote: Number(st[1]), commit: Number(st[2]) };
      const snapRow = this.s.snapshotMeta.values(key.shardId, key.replicaId)[0];
      const snapshot: SnapshotMeta | null =
        snapRow === undefined ? null : decodeSnapshotMeta(snapRow[0] as Uint8Array);
      return logStateOf(range, state, snapshot);
    } catch (error) {
      throw this.wrap(error);
    }
  }

  saveBootstrap(key: ReplicaKey, record: BootstrapRecord): void {
    this.open("saveBootstrap");
    checkKey(key, "saveBootstrap");
    this.drain();
    this.s.upsertBootstrap.run(key.shardId, key.replicaId, encodeBootstrap(record));
  }

  getBootstrap(key: ReplicaKey): BootstrapRecord | null {
    this.open("getBootstrap");
    const row = this.s.bootstrap.values(key.shardId, key.replicaId)[0];
    if (row === undefined) return null;
    try {
      return decodeBootstrap(String(row[0]), `shard ${key.shardId} replica ${key.replicaId}`);
    } catch (error) {
      throw new LogDBCorruptError(this.path, (error as Error).message);
    }
  }

  listReplicas(): ReplicaKey[] {
    this.open("listReplicas");
    return this.s.listReplicas.values().map((r) => ({ shardId: Number(r[0]), replicaId: Number(r[1]) }));
  }

  removeReplica(key: ReplicaKey, tombstone?: Tombstone): void {
    this.open("removeReplica");
    this.drain();
    checkKey(key, "removeReplica");
    try {
      this.db.transaction(() => {
        for (const st of this.s.removeAll) st.run(key.shardId, key.replicaId);
        if (tombstone !== undefined) {
          this.s.upsertTombstone.run(key.shardId, key.replicaId, tombstone.removedAtMs, tombstone.reason);
        }
      })();
    } catch (error) {
      throw this.wrap(error);
    }
    this.ranges.delete(`${key.shardId}:${key.replicaId}`);
  }

  getTombstone(key: ReplicaKey): Tombstone | null {
    this.open("getTombstone");
    const row = this.s.tombstone.values(key.shardId, key.replicaId)[0];
    return row === undefined ? null : { removedAtMs: Number(row[0]), reason: String(row[1]) };
  }

  compact(key: ReplicaKey, index: number): void {
    this.open("compact");
    checkKey(key, "compact");
    this.drain();
    const next = planCompact(key, this.range(key.shardId, key.replicaId), index);
    this.s.deleteTo.run(key.shardId, key.replicaId, index);
    this.ranges.set(`${key.shardId}:${key.replicaId}`, next);
  }

  importSnapshot(key: ReplicaKey, record: ImportedReplica): void {
    this.open("importSnapshot");
    this.drain();
    const next = planImport(key, record);
    const { shardId, replicaId } = key;
    const { state, snapshot } = record;
    const s = this.s;
    try {
      this.db.transaction(() => {
        for (const st of s.removeAll) st.run(shardId, replicaId);
        s.upsertSnapshot.run(shardId, replicaId, snapshot.index, snapshot.term, encodeSnapshotMeta(snapshot));
        s.upsertState.run(shardId, replicaId, state.term, state.vote, state.commit);
        s.upsertBootstrap.run(shardId, replicaId, encodeBootstrap(record.bootstrap));
      })();
    } catch (error) {
      throw this.wrap(error);
    }
    this.ranges.set(`${shardId}:${replicaId}`, next);
  }

  logUsage(key: ReplicaKey): LogUsage {
    this.open("logUsage");
    const row = this.s.usage.values(key.shardId, key.replicaId)[0];
    const entryCount = Number(row?.[0] ?? 0);
    return { entryCount, sizeBytes: Number(row?.[1] ?? 0) + entryCount * ENTRY_HEADER_BYTES };
  }

  /**
   * Checkpoints the WAL into the database and truncates it (the WAL holds every page written
   * since the last checkpoint, so after a burst of writes it is often the larger file), then,
   * when the database was created with auto_vacuum=INCREMENTAL, returns its free pages to
   * the file system. Pages freed by compactions are otherwise reused for new entries.
   */
  reclaimSpace(): { sizeBytesBefore: number; sizeBytesAfter: number } {
    this.open("reclaimSpace");
    this.drain();
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
   * Waits for the batches handed to the writer (bounded), closes both connections and releases
   * the lock. Batches whose done has not run by then lose their done (the engine has stopped).
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
      Atomics.store(this.ctrl, CTRL_OPENED, 0);
      w.postMessage({ kind: "close" } satisfies WriterMessage);
      Atomics.wait(this.ctrl, CTRL_OPENED, 0, 5000);
    }
    w?.terminate();
    this.writer = null;
    this.pending.clear();
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

/**
 * One process owns a data directory: an exclusive lock on a small database beside the log
 * makes a second opener fail fast (the log itself has two connections, so it cannot hold it).
 */
function lockDirectory(dir: string): Database {
  const path = join(dir, LOGDB_LOCK_FILE_NAME);
  const lock = new Database(path, { create: true });
  try {
    lock.exec("PRAGMA locking_mode=EXCLUSIVE");
    lock.exec("PRAGMA journal_mode=MEMORY"); // nothing in it to protect: no journal file beside it
    lock.exec("CREATE TABLE IF NOT EXISTS owner (id INTEGER PRIMARY KEY)");
    lock.exec("BEGIN IMMEDIATE; INSERT OR REPLACE INTO owner (id) VALUES (1); COMMIT");
    return lock;
  } catch (error) {
    closeDatabase(lock);
    if ((error as { code?: string }).code?.startsWith("SQLITE_BUSY")) throw new LogDBLockedError(dir);
    throw error;
  }
}

/**
 * A database written before entries carried their request tag (proposer, epoch) gets the two
 * columns, 0 in every old row: an entry tagged 0 answers no request, and none can be pending
 * across a restart anyway. Older builds keep working on the result (they name their columns).
 */
function addRequestTagColumns(db: Database): void {
  const columns = new Set(
    db
      .query("PRAGMA table_info(entries)")
      .values()
      .map((r) => String(r[1])),
  );
  for (const name of ["proposer", "epoch"]) {
    if (!columns.has(name)) db.exec(`ALTER TABLE entries ADD COLUMN ${name} INTEGER NOT NULL DEFAULT 0`);
  }
}

/** Finalizes every statement first: an open statement would keep the file (and its lock) open. */
function closeDatabase(db: Database): void {
  db.close(true);
}

function prepareAll(db: Database) {
  const q = (sql: string): Statement => db.prepare(sql);
  const where = SQL.where;
  return {
    begin: q("BEGIN"),
    commit: q("COMMIT"),
    rollback: q("ROLLBACK"),
    insertEntry: q(SQL.write.insertEntry),
    deleteFrom: q(SQL.write.deleteFrom),
    deleteTo: q(`DELETE FROM entries ${where} AND idx <= ?`),
    deleteAll: q(SQL.write.deleteAll),
    upsertState: q(SQL.write.upsertState),
    upsertSnapshot: q(SQL.write.upsertSnapshot),
    upsertBootstrap: q("INSERT OR REPLACE INTO bootstrap (shard, replica, record) VALUES (?,?,?)"),
    entries: q(
      `SELECT idx, term, type, ekey, client, series, responded, cmd, proposer, epoch FROM entries ${where} AND idx >= ? AND idx < ? ORDER BY idx LIMIT ?`,
    ),
    term: q(`SELECT term FROM entries ${where} AND idx = ?`),
    firstIdx: q(`SELECT idx FROM entries ${where} ORDER BY idx LIMIT 1`),
    lastIdx: q(`SELECT idx FROM entries ${where} ORDER BY idx DESC LIMIT 1`),
    snapshotPoint: q(`SELECT idx, term FROM snapshots ${where}`),
    snapshotMeta: q(`SELECT meta FROM snapshots ${where}`),
    state: q(`SELECT term, vote, commit_index FROM state ${where}`),
    upsertTombstone: q(
      "INSERT OR REPLACE INTO tombstones (shard, replica, removed_at_ms, reason) VALUES (?,?,?,?)",
    ),
    tombstone: q(`SELECT removed_at_ms, reason FROM tombstones ${where}`),
    usage: q(`SELECT count(*), coalesce(sum(length(cmd)), 0) FROM entries ${where}`),
    bootstrap: q(`SELECT record FROM bootstrap ${where}`),
    listReplicas: q(
      "SELECT shard, replica FROM bootstrap UNION SELECT shard, replica FROM state UNION SELECT shard, replica FROM snapshots ORDER BY 1, 2",
    ),
    removeAll: ["entries", "state", "snapshots", "bootstrap"].map((t) => q(`DELETE FROM ${t} ${where}`)),
  };
}
