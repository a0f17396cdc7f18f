/**
 * The log database's writer, run as a Worker by SqliteLogDB (src/logdb/sqlite.ts): it owns a
 * second connection to the same WAL database and appends the journal records of every write,
 * one transaction and one fsync each, in the order they arrive, while the engine thread keeps
 * serving the network. Once the journal holds enough (CheckpointPolicy), it moves whole
 * replicas' pending ops into the per-replica tables, a bounded slice per transaction
 * (journal-queue.ts, sqlite-home.ts): a commit writes the journal's last page, not one page per
 * replica it touches, and each replica's pages are written once per move (docs/durability.md,
 * "The journal"). The records arrive already planned, so the rules of the log stay in plan.ts.
 *
 * Protocol (messages from SqliteLogDB):
 *   { kind: "open", path, ctrl, checkpoint }
 *                                  ctrl: a SharedArrayBuffer (sqlite-sql.ts, controlViews); the
 *                                  writer sets OPENED to 1 (or 2 with the error text from
 *                                  ERROR_TEXT_AT) and notifies.
 *   { kind: "batch", id, record }  appends the record as journal row id (with a move in the
 *                                  same transaction when the journal is over its policy);
 *                                  posts { id, error }, then sets DONE = id and notifies
 *                                  (drain waits on it).
 *   { kind: "checkpoint", id }     moves the whole journal now; then as a batch.
 *   { kind: "close" }              moves the whole journal, closes, sets OPENED to 3.
 * The first failure is final (fail-stop, as after a failed fsync nothing is known of the page
 * cache): FAILED_ID and the error text are set and every later message gets that error.
 * CHECKPOINTED: every journal row up to it is moved to the per-replica tables and removed.
 * APPENDS … MOVED_ENTRIES: what the writer did and how long it took (sqlite-sql.ts, WriterStats).
 */
import { Database } from "bun:sqlite";
import { decodeRecord, recordEntryCount } from "./journal.ts";
import { type JournalMove, JournalQueue } from "./journal-queue.ts";
import { applyMove, type HomeStatements, prepareHome } from "./sqlite-home.ts";
import {
  CTR_APPEND_US,
  CTR_APPENDS,
  CTR_CHECKPOINTED,
  CTR_COMMIT_US,
  CTR_DONE,
  CTR_FAILED_ID,
  CTR_MOVE_US,
  CTR_MOVED_ENTRIES,
  CTR_MOVES,
  CTRL_BUFFER_BYTES,
  CTRL_ERROR_BYTES,
  CTRL_OPENED,
  type CheckpointPolicy,
  controlViews,
  ERROR_TEXT_AT,
  type WriterControl,
  type WriterMessage,
  type WriterReply,
} from "./sqlite-sql.ts";

declare const self: Worker;

let db: Database | null = null;
let ctrl: WriterControl | null = null;
let home: HomeStatements | null = null;
let policy: CheckpointPolicy | null = null;
let failure: WriterReply["error"] = null;
/** Journal rows not yet moved into the per-replica tables. */
const journal = new JournalQueue();

/** The error as JSON ({ message, code }) in the control buffer (sqlite.ts reads it). */
function setError(error: NonNullable<WriterReply["error"]>): void {
  const c = (ctrl as WriterControl).flags;
  const bytes = new TextEncoder()
    .encode(JSON.stringify(error))
    .subarray(0, CTRL_BUFFER_BYTES - ERROR_TEXT_AT);
  new Uint8Array(c.buffer).set(bytes, ERROR_TEXT_AT);
  Atomics.store(c, CTRL_ERROR_BYTES, bytes.byteLength);
}

function setOpened(value: number, error?: string): void {
  const c = (ctrl as WriterControl).flags;
  if (error !== undefined) setError({ message: error, code: undefined });
  Atomics.store(c, CTRL_OPENED, value);
  Atomics.notify(c, CTRL_OPENED);
}

function open(path: string): void {
  try {
    db = new Database(path);
    // The engine thread opened the file and switched it to WAL; every connection sets its own
    // synchronous level: FULL fsyncs the WAL at each commit.
    db.exec("PRAGMA synchronous=FULL");
    db.exec("PRAGMA busy_timeout=10000");
    home = prepareHome(db);
    setOpened(1);
  } catch (error) {
    setOpened(2, String((error as Error).message ?? error));
  }
}

/**
 * The writer's clock for its own work counters: it runs on a real thread only (SqliteLogDB
 * never runs in the simulator), and no decision depends on it.
 */
const nowMs = (): number => performance.now(); // env-ok

/** Adds to one of the writer's work counters (read by SqliteLogDB.writerStats). */
function count(at: number, n: number): void {
  Atomics.add((ctrl as WriterControl).counters, at, BigInt(Math.round(n)));
}

/** Milliseconds the last transaction spent in COMMIT. */
let lastCommitMs = 0;

/**
 * Runs fn in one write transaction (one fsync). A failure is final: `failId` is the first
 * message id it fails (the batch or checkpoint message whose transaction it is).
 */
function transaction(failId: number, fn: (s: HomeStatements) => void): void {
  lastCommitMs = 0;
  if (failure !== null) return;
  const d = db;
  const s = home;
  if (d === null || s === null) {
    fail(failId, { message: "the log writer is not open", code: undefined });
    return;
  }
  try {
    d.exec("BEGIN IMMEDIATE");
    fn(s);
    const t0 = nowMs();
    d.exec("COMMIT");
    lastCommitMs = nowMs() - t0;
  } catch (error) {
    // SQLite already rolled back after some errors (I/O, disk full); a second rollback would mask the cause.
    if (d.inTransaction) d.exec("ROLLBACK");
    const e = error as { message?: string; code?: string };
    fail(failId, { message: String(e.message ?? error), code: e.code });
  }
}

function fail(failId: number, error: NonNullable<WriterReply["error"]>): void {
  failure = error;
  setError(error);
  Atomics.store((ctrl as WriterControl).counters, CTR_FAILED_ID, BigInt(failId));
}

function reply(id: number): void {
  postMessage({ id, error: failure } satisfies WriterReply);
}

/** A synchronous writer waiting for id (drain) may go on. */
function finished(id: number): void {
  const c = (ctrl as WriterControl).counters;
  Atomics.store(c, CTR_DONE, BigInt(id));
  Atomics.notify(c, CTR_DONE);
}

/**
 * Appends a record as journal row id and, when the journal is then over its policy, moves
 * whole replicas' pending ops (at least what this record added, so the journal stays bounded)
 * in the same transaction: one fsync for both. (A move in its own transaction after the
 * batch's done cost a second fsync that the next batch waited for.) The move's part of the
 * time counts as the move's, the rest as the append's.
 */
function appendAndMove(id: number, record: Uint8Array): void {
  const t0 = nowMs();
  let moveUs = 0;
  let taken: JournalMove | null = null;
  transaction(id, (s) => {
    // Decoded (and its checksum checked) before it is stored: the pair of encodeRecord's. Its
    // entries stay in the record until the move reads them (an object per entry held in the
    // queue cost a quarter of this thread's work: docs/performance.md, "turns").
    const ops = decodeRecord(record, true);
    s.insertJournal.run(id, record);
    journal.add(id, record.byteLength, ops);
    if (!moveDue()) return;
    const m0 = nowMs();
    const move = journal.take(Math.max((policy as CheckpointPolicy).moveEntries, recordEntryCount(record)));
    applyMove(s, move);
    taken = move;
    moveUs = (nowMs() - m0) * 1000;
  });
  if (failure !== null) return;
  count(CTR_APPENDS, 1);
  count(CTR_APPEND_US, (nowMs() - t0) * 1000 - moveUs);
  count(CTR_COMMIT_US, lastCommitMs * 1000);
  if (taken !== null) moved(taken, moveUs);
}

function moveDue(): boolean {
  const p = policy as CheckpointPolicy;
  return journal.sizeBytes >= p.bytes || journal.entryCount >= p.entries || journal.recordCount >= p.records;
}

/** Counts a committed move and publishes how far the journal is now moved. */
function moved(taken: JournalMove, us: number): void {
  count(CTR_MOVES, 1);
  count(CTR_MOVE_US, us);
  count(CTR_MOVED_ENTRIES, taken.entryCount);
  if (taken.deleteThrough === 0) return;
  Atomics.store((ctrl as WriterControl).counters, CTR_CHECKPOINTED, BigInt(taken.deleteThrough));
}

/** Moves the whole journal into the per-replica tables, in its own transaction. */
function moveAll(failId: number): void {
  if (journal.recordCount === 0 || failure !== null) return;
  const t0 = nowMs();
  const taken = journal.take(Number.POSITIVE_INFINITY);
  transaction(failId, (s) => applyMove(s, taken));
  if (failure !== null) return;
  moved(taken, (nowMs() - t0) * 1000);
}

self.onmessage = (event: MessageEvent<WriterMessage>) => {
  const m = event.data;
  if (m.kind === "open") {
    ctrl = controlViews(m.ctrl);
    policy = m.checkpoint;
    open(m.path);
  } else if (m.kind === "batch") {
    appendAndMove(m.id, m.record);
    reply(m.id);
    finished(m.id);
  } else if (m.kind === "checkpoint") {
    moveAll(m.id);
    reply(m.id);
    finished(m.id);
  } else {
    moveAll(Number.MAX_SAFE_INTEGER); // nobody waits any more
    db?.close(true);
    db = null;
    home = null;
    setOpened(3);
  }
};
