import { type Entry, entrySizeBytes, type SnapshotMeta } from "../raft/types.ts";
import { BatchTooLargeError, EntryTooLargeError, LogDBArgumentError } from "./errors.ts";
import type { ImportedReplica, ReplicaKey, ReplicaLogState, ReplicaUpdate } from "./types.ts";
import { DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_ENTRY_BYTES, type LogDBLimits } from "./types.ts";

/**
 * The log rules both implementations share, so SQLite and memory cannot drift apart:
 * what a batch may contain, and what one replica update does to the stored range.
 */

/** What is stored of one replica's log: the snapshot point and the entry run (0/0 when none). */
export interface ReplicaRange {
  snapshotIndex: number;
  snapshotTerm: number;
  entryFirst: number;
  entryLast: number;
}

export const EMPTY_RANGE: Readonly<ReplicaRange> = Object.freeze({
  snapshotIndex: 0,
  snapshotTerm: 0,
  entryFirst: 0,
  entryLast: 0,
});

/** What an implementation does for one update, in this order. */
export interface UpdatePlan {
  /** Remove every stored entry (a snapshot that replaces the log). */
  resetEntries: boolean;
  /** Remove entries with index ≥ this before inserting (0: nothing to remove). */
  truncateFrom: number;
  next: ReplicaRange;
}

export function resolveLimits(limits: LogDBLimits): Required<LogDBLimits> {
  const maxEntryBytes = limits.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  const maxBatchBytes = limits.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  if (!Number.isSafeInteger(maxEntryBytes) || maxEntryBytes <= 0) {
    throw new RangeError(`maxEntryBytes must be a positive integer, got ${maxEntryBytes}`);
  }
  if (!Number.isSafeInteger(maxBatchBytes) || maxBatchBytes < maxEntryBytes) {
    throw new RangeError(
      `maxBatchBytes must be an integer ≥ maxEntryBytes ${maxEntryBytes}, got ${maxBatchBytes}`,
    );
  }
  return { maxEntryBytes, maxBatchBytes };
}

export function checkKey(key: ReplicaKey, where: string): void {
  if (
    !Number.isSafeInteger(key.shardId) ||
    key.shardId <= 0 ||
    !Number.isSafeInteger(key.replicaId) ||
    key.replicaId <= 0
  ) {
    throw new LogDBArgumentError(
      `${where}: shard and replica ids must be positive integers, got shard ${key.shardId} replica ${key.replicaId}`,
    );
  }
}

/** Checks what needs no stored state: ids, entry order, sizes. Returns the batch size in bytes. */
export function checkBatch(updates: readonly ReplicaUpdate[], limits: Required<LogDBLimits>): number {
  let batchBytes = 0;
  for (const u of updates) {
    checkKey(u, "saveUpdates");
    const entries = u.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      const sizeBytes = entrySizeBytes(e);
      if (sizeBytes > limits.maxEntryBytes) {
        throw new EntryTooLargeError(u.shardId, u.replicaId, e.index, sizeBytes, limits.maxEntryBytes);
      }
      batchBytes += sizeBytes;
      const expected = i === 0 ? e.index : (entries[i - 1] as Entry).index + 1;
      if (e.index !== expected || !Number.isSafeInteger(e.index) || e.index < 1) {
        throw new LogDBArgumentError(
          `saveUpdates: shard ${u.shardId} replica ${u.replicaId}: entry ${i} has index ${e.index}, expected ${i === 0 ? "≥ 1" : expected} (entries must be contiguous and ascending)`,
        );
      }
    }
  }
  if (batchBytes > limits.maxBatchBytes) throw new BatchTooLargeError(batchBytes, limits.maxBatchBytes);
  return batchBytes;
}

/** Term at index as the range knows it without reading entries (snapshot point only). */
export function lastIndexOf(r: ReplicaRange): number {
  return r.entryLast > 0 ? Math.max(r.entryLast, r.snapshotIndex) : r.snapshotIndex;
}

/**
 * Plans one update against the stored range. `termAt` reads a stored entry's term (only
 * called when the update carries a snapshot).
 */
export function planUpdate(
  u: ReplicaUpdate,
  range: ReplicaRange,
  termAt: (index: number) => number | undefined,
): UpdatePlan {
  let next: ReplicaRange = range;
  let resetEntries = false;
  if (u.snapshot !== null) {
    const snap = u.snapshot;
    checkSnapshot(u, snap, range);
    const storedTerm = snap.index === range.snapshotIndex ? range.snapshotTerm : termAt(snap.index);
    resetEntries = storedTerm !== snap.term && range.entryLast > 0;
    next = {
      snapshotIndex: snap.index,
      snapshotTerm: snap.term,
      entryFirst: storedTerm === snap.term ? range.entryFirst : 0,
      entryLast: storedTerm === snap.term ? range.entryLast : 0,
    };
  }
  let truncateFrom = 0;
  if (u.entries.length > 0) {
    const first = (u.entries[0] as Entry).index;
    const last = (u.entries[u.entries.length - 1] as Entry).index;
    const where = `saveUpdates: shard ${u.shardId} replica ${u.replicaId}`;
    if (first <= next.snapshotIndex) {
      throw new LogDBArgumentError(
        `${where}: entries from ${first} would overwrite the snapshot at ${next.snapshotIndex}`,
      );
    }
    const lastStored = lastIndexOf(next);
    if (first > lastStored + 1) {
      throw new LogDBArgumentError(
        `${where}: entries start at ${first} but the log ends at ${lastStored} (a gap)`,
      );
    }
    if (next.entryLast > 0 && first <= next.entryLast) truncateFrom = first;
    const entryFirst = next.entryLast > 0 && next.entryFirst < first ? next.entryFirst : first;
    next = { ...next, entryFirst, entryLast: last };
  }
  return { resetEntries, truncateFrom, next };
}

function checkSnapshot(u: ReplicaUpdate, snap: SnapshotMeta, range: ReplicaRange): void {
  if (
    !Number.isSafeInteger(snap.index) ||
    snap.index < 1 ||
    !Number.isSafeInteger(snap.term) ||
    snap.term < 1
  ) {
    throw new LogDBArgumentError(
      `saveUpdates: shard ${u.shardId} replica ${u.replicaId}: snapshot index ${snap.index} and term ${snap.term} must be positive integers`,
    );
  }
  if (snap.index < range.snapshotIndex) {
    throw new LogDBArgumentError(
      `saveUpdates: shard ${u.shardId} replica ${u.replicaId}: snapshot ${snap.index} is older than the stored snapshot ${range.snapshotIndex}`,
    );
  }
}

/** The range after compact(index); throws when index is not covered by the snapshot. */
export function planCompact(key: ReplicaKey, range: ReplicaRange, index: number): ReplicaRange {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new LogDBArgumentError(`compact: index must be a non-negative integer, got ${index}`);
  }
  if (index > range.snapshotIndex) {
    throw new LogDBArgumentError(
      `compact: shard ${key.shardId} replica ${key.replicaId}: index ${index} is above the snapshot index ${range.snapshotIndex} (entries not in a snapshot would be lost)`,
    );
  }
  if (range.entryLast === 0 || index < range.entryFirst) return range;
  if (index >= range.entryLast) return { ...range, entryFirst: 0, entryLast: 0 };
  return { ...range, entryFirst: index + 1 };
}

/**
 * The range after importSnapshot (only the snapshot point, no entries); throws when the
 * record is not one a replica can restart from.
 */
export function planImport(key: ReplicaKey, record: ImportedReplica): ReplicaRange {
  checkKey(key, "importSnapshot");
  const { snapshot, state } = record;
  const where = `importSnapshot: shard ${key.shardId} replica ${key.replicaId}`;
  const positive = (n: number) => Number.isSafeInteger(n) && n >= 1;
  if (!positive(snapshot.index) || !positive(snapshot.term)) {
    throw new LogDBArgumentError(
      `${where}: snapshot index ${snapshot.index} and term ${snapshot.term} must be positive integers`,
    );
  }
  if (snapshot.shardId !== key.shardId) {
    throw new LogDBArgumentError(`${where}: the snapshot is of shard ${snapshot.shardId}`);
  }
  if (state.commit !== snapshot.index || !(state.term >= snapshot.term)) {
    throw new LogDBArgumentError(
      `${where}: the hard state (term ${state.term}, commit ${state.commit}) must commit the snapshot at ${snapshot.index} in a term ≥ ${snapshot.term}`,
    );
  }
  return { snapshotIndex: snapshot.index, snapshotTerm: snapshot.term, entryFirst: 0, entryLast: 0 };
}

/** The summary a replica starts from. */
export function logStateOf(
  range: ReplicaRange,
  state: ReplicaLogState["state"],
  snapshot: SnapshotMeta | null,
): ReplicaLogState {
  const firstIndex =
    range.entryLast > 0 ? Math.min(range.entryFirst, range.snapshotIndex + 1) : range.snapshotIndex + 1;
  return { state, snapshot, firstIndex, lastIndex: lastIndexOf(range) };
}
