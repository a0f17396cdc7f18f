/**
 * The log database's writer, run as a Worker by SqliteLogDB (src/logdb/sqlite.ts): it owns a
 * second connection to the same WAL database and commits the batches of saveUpdatesAsync, one
 * transaction and one fsync each, in the order they arrive, while the engine thread keeps
 * serving the network. The batches arrive already planned (what to delete, what to insert),
 * so the rules of the log stay in plan.ts on the engine thread.
 *
 * Protocol (messages from SqliteLogDB):
 *   { kind: "open", path, ctrl }   ctrl: Int32Array over a SharedArrayBuffer; the writer sets
 *                                  ctrl[OPENED] to 1 (or 2 with the error text in ctrl's
 *                                  bytes from ERROR_TEXT_AT) and notifies.
 *   { kind: "batch", id, ops }     commits ops; posts { id, error }, then sets ctrl[DONE] = id
 *                                  and notifies (SqliteLogDB.drain waits on it).
 *   { kind: "close" }              closes the connection, sets ctrl[OPENED] to 3 and notifies.
 */
import { Database, type Statement } from "bun:sqlite";
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

declare const self: Worker;

let db: Database | null = null;
let ctrl: Int32Array | null = null;
let st: Record<"begin" | "commit" | "rollback" | keyof typeof SQL.write, Statement> | null = null;

function setOpened(value: number, error?: string): void {
  const c = ctrl as Int32Array;
  if (error !== undefined) {
    const bytes = new TextEncoder().encode(error).subarray(0, CTRL_BUFFER_BYTES - ERROR_TEXT_AT);
    new Uint8Array(c.buffer).set(bytes, ERROR_TEXT_AT);
    Atomics.store(c, CTRL_ERROR_BYTES, bytes.byteLength);
  }
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
    const q = (sql: string) => (db as Database).prepare(sql);
    st = {
      begin: q("BEGIN IMMEDIATE"),
      commit: q("COMMIT"),
      rollback: q("ROLLBACK"),
      insertEntry: q(SQL.write.insertEntry),
      deleteFrom: q(SQL.write.deleteFrom),
      deleteAll: q(SQL.write.deleteAll),
      upsertState: q(SQL.write.upsertState),
      upsertSnapshot: q(SQL.write.upsertSnapshot),
    };
    setOpened(1);
  } catch (error) {
    setOpened(2, String((error as Error).message ?? error));
  }
}

function runOps(ops: WriterOp[]): void {
  const s = st as NonNullable<typeof st>;
  for (const op of ops) {
    if (op.state !== null) s.upsertState.run(op.shard, op.replica, op.state[0], op.state[1], op.state[2]);
    if (op.snapshot !== null) {
      if (op.snapshot.resetEntries) s.deleteAll.run(op.shard, op.replica);
      s.upsertSnapshot.run(op.shard, op.replica, op.snapshot.index, op.snapshot.term, op.snapshot.meta);
    }
    if (op.truncateFrom > 0) s.deleteFrom.run(op.shard, op.replica, op.truncateFrom);
    for (const e of op.entries)
      s.insertEntry.run(op.shard, op.replica, e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9]);
  }
}

function batch(id: number, ops: WriterOp[]): void {
  let reply: WriterReply = { id, error: null };
  const s = st;
  if (db === null || s === null) {
    reply = { id, error: { message: "the log writer is not open", code: undefined } };
  } else {
    try {
      s.begin.run();
      runOps(ops);
      s.commit.run();
    } catch (error) {
      // SQLite already rolled back after some errors (I/O, disk full); a second rollback would mask the cause.
      if (db.inTransaction) s.rollback.run();
      const e = error as { message?: string; code?: string };
      reply = { id, error: { message: String(e.message ?? error), code: e.code } };
    }
  }
  postMessage(reply);
  const c = ctrl as Int32Array;
  Atomics.store(c, CTRL_DONE, id);
  Atomics.notify(c, CTRL_DONE);
}

self.onmessage = (event: MessageEvent<WriterMessage>) => {
  const m = event.data;
  if (m.kind === "open") {
    ctrl = m.ctrl;
    open(m.path);
  } else if (m.kind === "batch") {
    batch(m.id, m.ops);
  } else {
    db?.close(true);
    db = null;
    st = null;
    setOpened(3);
  }
};
