/**
 * What the engine thread (src/logdb/sqlite.ts) and the log writer Worker
 * (src/logdb/sqlite-writer.ts) share: the writer protocol and its control array.
 * No code runs at import: the Worker and the main thread both import it.
 */

import type { WriterStats } from "./types.ts";

/**
 * The shared control buffer: an Int32Array at 0 (OPENED, ERROR_BYTES), a BigInt64Array at
 * COUNTERS_AT (DONE, FAILED_ID, CHECKPOINTED: message ids, 64-bit so that they never wrap; then
 * the writer's work counters, CTR_APPENDS…), the error text from ERROR_TEXT_AT.
 */
export const CTRL_OPENED = 0;
export const CTRL_ERROR_BYTES = 1;
export const COUNTERS_AT = 8;
/** Id of the last message the writer finished. */
export const CTR_DONE = 0;
/** Id of the first message that failed (0: none); every later one fails the same way. */
export const CTR_FAILED_ID = 1;
/** Highest journal seq applied to the per-replica tables and removed from the journal. */
export const CTR_CHECKPOINTED = 2;
/** Journal appends committed (one transaction, one fsync each). */
export const CTR_APPENDS = 3;
/** Microseconds the writer spent in appends, BEGIN to COMMIT (the fsync included). */
export const CTR_APPEND_US = 4;
/** Microseconds of that inside COMMIT (SQLite's WAL write and fsync). */
export const CTR_COMMIT_US = 5;
/** Moves of journal rows into the per-replica tables (in the transaction of the append after which they fell due). */
export const CTR_MOVES = 6;
/** Microseconds the writer spent in moves, choosing what to move to COMMIT. */
export const CTR_MOVE_US = 7;
/** Entries moved into the per-replica tables. */
export const CTR_MOVED_ENTRIES = 8;
const COUNTER_COUNT = 9;
export const ERROR_TEXT_AT = 128;
export const CTRL_BUFFER_BYTES = 4096;

export interface WriterControl {
  flags: Int32Array;
  counters: BigInt64Array;
}

export function controlViews(buffer: SharedArrayBuffer): WriterControl {
  return {
    flags: new Int32Array(buffer, 0, 2),
    counters: new BigInt64Array(buffer, COUNTERS_AT, COUNTER_COUNT),
  };
}

/**
 * When the writer moves the journal into the per-replica tables (sqlite-home.ts): after a
 * batch, once the journal holds `bytes`, `entries` or `records`, one move of whole replicas
 * (journal-queue.ts) of at least `moveEntries` entries.
 */
export interface CheckpointPolicy {
  bytes: number;
  entries: number;
  records: number;
  moveEntries: number;
}

/**
 * Defaults: a replica's table pages are written once for what it gathered while the journal
 * filled to these (about 16,000 entries), and one move (about 2,000 entries) stays short
 * enough not to show as a latency spike in the batches behind it.
 */
export const DEFAULT_CHECKPOINT: CheckpointPolicy = {
  bytes: 4 << 20,
  entries: 16_384,
  records: 512,
  moveEntries: 2_048,
};

export type { WriterStats } from "./types.ts";

/** The writer's counters from the control buffer. */
export function readWriterStats(c: WriterControl): WriterStats {
  const n = (at: number) => Number(Atomics.load(c.counters, at));
  return {
    appends: n(CTR_APPENDS),
    appendMs: n(CTR_APPEND_US) / 1000,
    commitMs: n(CTR_COMMIT_US) / 1000,
    moves: n(CTR_MOVES),
    moveMs: n(CTR_MOVE_US) / 1000,
    movedEntries: n(CTR_MOVED_ENTRIES),
  };
}

export type WriterMessage =
  | { kind: "open"; path: string; ctrl: SharedArrayBuffer; checkpoint: CheckpointPolicy }
  /** A journal record (journal.ts) to append as row `id`; every id is above the last one. */
  | { kind: "batch"; id: number; record: Uint8Array }
  /** Apply the whole journal to the per-replica tables now. */
  | { kind: "checkpoint"; id: number }
  | { kind: "close" };

export interface WriterReply {
  id: number;
  error: { message: string; code: string | undefined } | null;
}
