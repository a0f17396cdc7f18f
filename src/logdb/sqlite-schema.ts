/**
 * Opening the SQLite log database file: its settings, its schema and format version (with the
 * migration from format 1), the identity check, the directory lock, and the recovery of
 * journal records a previous process left (sqlite-home.ts). Engine thread only.
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { LogDBCorruptError, LogDBLockedError } from "./errors.ts";
import { checkIdentity, type StoredIdentity } from "./identity.ts";
import { JournalRecordError } from "./journal.ts";
import { checkpointRecords, prepareHome } from "./sqlite-home.ts";
import { LOGDB_FORMAT_VERSION, type NodeHostIdentity } from "./types.ts";

/** Held with an exclusive lock while a process has the data directory open. */
export const LOGDB_LOCK_FILE_NAME = "logdb.lock";

/**
 * Format 2. The per-replica tables are format 1's; `journal` is new: one row per writer
 * transaction in batch order (docs/durability.md, "The journal").
 */
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
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, record BLOB NOT NULL);
`;

/** The one format older than this build's that it migrates (by adding the journal table). */
const MIGRATES_FROM = 1;

/** WAL mode, synchronous=FULL, 8 KiB pages, a bounded wait for locks. */
export function configure(db: Database, path: string): void {
  // The writer Worker's commits and this thread's reads meet in WAL mode; a reader waits at
  // most this long for a lock (only a checkpoint or a synchronous write can hold one).
  db.exec("PRAGMA busy_timeout=10000");
  // 8 KiB pages keep 1 KiB entries inside their B-tree cell (3.5× faster than 4 KiB
  // pages in scripts/bench/logdb.ts); only takes effect when the file is created.
  db.exec("PRAGMA page_size=8192");
  const mode = db.query("PRAGMA journal_mode=WAL").values()[0]?.[0];
  if (mode !== "wal")
    throw new Error(`log database ${path} could not switch to WAL mode (got ${String(mode)})`);
  db.exec("PRAGMA synchronous=FULL");
}

export function quickCheck(db: Database, path: string): void {
  const rows = db.query("PRAGMA quick_check(5)").values();
  const result = rows.map((r) => String(r[0])).join("; ");
  if (result !== "ok") throw new LogDBCorruptError(path, result);
}

function storedIdentity(db: Database): StoredIdentity | null {
  const table = db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'identity'").values();
  if (table.length === 0) return null;
  const row = db
    .query("SELECT raft_address, deployment_id, format_version FROM identity WHERE id = 1")
    .values()[0];
  if (row === undefined) return null;
  return { raftAddress: String(row[0]), deploymentId: Number(row[1]), formatVersion: Number(row[2]) };
}

/**
 * Creates the schema of a new database, or checks an existing one's identity (raft address,
 * deployment, format) and migrates format 1 to 2. Returns the migrated format, or null.
 * A database of another address, deployment or an unknown format is refused untouched.
 * @throws LogDBIdentityError
 */
export function openSchema(db: Database, dir: string, identity: NodeHostIdentity): number | null {
  const stored = storedIdentity(db);
  if (stored === null) {
    if (identity.formatVersion !== LOGDB_FORMAT_VERSION) {
      throw new RangeError(
        `a new log database is written in format ${LOGDB_FORMAT_VERSION}, not ${identity.formatVersion} (pass LOGDB_FORMAT_VERSION)`,
      );
    }
    db.transaction(() => {
      db.exec(SCHEMA);
      addRequestTagColumns(db);
      db.query(
        "INSERT INTO identity (id, raft_address, deployment_id, format_version) VALUES (1, ?, ?, ?)",
      ).run(identity.raftAddress, identity.deploymentId, identity.formatVersion);
    })();
    return null;
  }
  const migrate = stored.formatVersion === MIGRATES_FROM && identity.formatVersion === LOGDB_FORMAT_VERSION;
  checkIdentity(dir, migrate ? { ...stored, formatVersion: LOGDB_FORMAT_VERSION } : stored, identity);
  if (!migrate) return null;
  // Format 1 holds the per-replica tables only: format 2 reads them as they are and adds the
  // journal. One transaction: a crash leaves format 1, whole, and the next open migrates again.
  db.transaction(() => {
    db.exec(SCHEMA);
    addRequestTagColumns(db);
    db.query("UPDATE identity SET format_version = ? WHERE id = 1").run(LOGDB_FORMAT_VERSION);
  })();
  return MIGRATES_FROM;
}

/**
 * Moves what a previous process left in the journal into the per-replica tables (one
 * transaction), so that the writer starts on an empty journal. Returns the records moved.
 * @throws LogDBCorruptError when a record does not decode (checksum, version, layout).
 */
export function recoverJournal(db: Database, path: string): number {
  const home = prepareHome(db);
  const rows = (home.journalRows.values() as [number, unknown][]).map(([seq, record]) => {
    if (!(record instanceof Uint8Array))
      throw new LogDBCorruptError(path, `journal row ${seq} holds a ${typeof record}, not a record`);
    return { seq: Number(seq), record };
  });
  if (rows.length === 0) return 0;
  try {
    db.transaction(() => checkpointRecords(home, rows))();
  } catch (error) {
    if (error instanceof JournalRecordError)
      throw new LogDBCorruptError(path, `a journal record does not decode: ${error.message}`);
    throw error;
  }
  return rows.length;
}

/**
 * Entries written before they carried their request tag (proposer, epoch) get the two columns,
 * 0 in every old row: an entry tagged 0 answers no request, and none can be pending across a
 * restart anyway.
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

/**
 * One process owns a data directory: an exclusive lock on a small database beside the log
 * makes a second opener fail fast (the log itself has two connections, so it cannot hold it).
 */
export function lockDirectory(dir: string): Database {
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

/** Finalizes every statement first: an open statement would keep the file (and its lock) open. */
export function closeDatabase(db: Database): void {
  db.close(true);
}
