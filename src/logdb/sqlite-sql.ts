/**
 * What the engine thread (src/logdb/sqlite.ts) and the log writer Worker
 * (src/logdb/sqlite-writer.ts) share: the schema's write statements and the writer protocol.
 * No code runs at import: the Worker and the main thread both import it.
 */

const WHERE = "WHERE shard = ? AND replica = ?";

export const SQL = {
  where: WHERE,
  write: {
    insertEntry:
      "INSERT INTO entries (shard, replica, idx, term, type, ekey, client, series, responded, cmd, proposer, epoch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
    deleteFrom: `DELETE FROM entries ${WHERE} AND idx >= ?`,
    deleteAll: `DELETE FROM entries ${WHERE}`,
    upsertState: "INSERT OR REPLACE INTO state (shard, replica, term, vote, commit_index) VALUES (?,?,?,?,?)",
    upsertSnapshot: "INSERT OR REPLACE INTO snapshots (shard, replica, idx, term, meta) VALUES (?,?,?,?,?)",
  },
} as const;

/** Indexes into the shared control array. */
export const CTRL_DONE = 0;
export const CTRL_OPENED = 1;
export const CTRL_ERROR_BYTES = 2;
/** Byte offset of the error text in the control buffer, and the buffer's size. */
export const ERROR_TEXT_AT = 16;
export const CTRL_BUFFER_BYTES = 4096;

/** One replica's part of a batch, planned by SqliteLogDB. */
export interface WriterOp {
  shard: number;
  replica: number;
  /** [term, vote, commit] or null. */
  state: [number, number, number] | null;
  /** Snapshot metadata to store (encoded), and whether every stored entry goes first. */
  snapshot: { index: number; term: number; meta: Uint8Array; resetEntries: boolean } | null;
  /** Remove entries from this index on before inserting (0: none). */
  truncateFrom: number;
  /** [index, term, type, key, client, series, responded, cmd, proposer, epoch] per entry. */
  entries: [number, number, number, number, number, number, number, Uint8Array, number, number][];
}

export type WriterMessage =
  | { kind: "open"; path: string; ctrl: Int32Array }
  | { kind: "batch"; id: number; ops: WriterOp[] }
  | { kind: "close" };

export interface WriterReply {
  id: number;
  error: { message: string; code: string | undefined } | null;
}
