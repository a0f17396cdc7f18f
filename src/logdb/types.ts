import type { Entry, Member, SnapshotMeta, State } from "../raft/types.ts";

/** Identifies one replica's data. */
export interface ReplicaKey {
  shardId: number;
  replicaId: number;
}

/** What one replica persists from one Update. */
export interface ReplicaUpdate extends ReplicaKey {
  /** Entries to append; the first may overwrite a stored suffix from its index on. */
  entries: Entry[];
  /** New hard state, or null when unchanged. */
  state: State | null;
  /**
   * New snapshot metadata, or null. Applied before `entries`. When the stored log holds
   * (snapshot.index, snapshot.term) — a snapshot this replica took itself, or a received one
   * its log already matches — the entries are kept (compact them with `compact`). Otherwise
   * (a leader's snapshot that replaces a diverged or short log) every stored entry of the
   * replica is removed, so the log restarts right after the snapshot. A snapshot older than
   * the stored one is refused with LogDBArgumentError.
   */
  snapshot: SnapshotMeta | null;
}

/** What a replica was started with; written once, before anything else of it. */
export interface BootstrapRecord {
  /** Initial members; empty when joining. */
  addresses: Member[];
  join: boolean;
  app: string;
  /** JSON of the replica's configuration. */
  configJson: string;
}

/**
 * What a restore writes for one replica (LogDB.importSnapshot): the snapshot it restarts
 * from, its hard state (commit = snapshot index) and the bootstrap record it starts with.
 */
export interface ImportedReplica {
  bootstrap: BootstrapRecord;
  state: State;
  snapshot: SnapshotMeta;
}

/**
 * Left by removeReplica when a replica's data is removed for good (NodeHost.removeData): a
 * removed replica id never returns, so a restart that would bootstrap it anew is refused.
 */
export interface Tombstone {
  /** When the data was removed, ms since the epoch (the NodeHost's clock). */
  removedAtMs: number;
  reason: string;
}

/** Stored entries of one replica (LogDB.logUsage). */
export interface LogUsage {
  entryCount: number;
  /** Sum of entrySizeBytes over the stored entries. */
  sizeBytes: number;
}

/**
 * The on-disk format this build writes and reads. 1: the per-replica tables; 2: a journal
 * beside them (docs/durability.md, "The journal"); opening a format-1 database migrates it.
 */
export const LOGDB_FORMAT_VERSION = 2;

/** Default bound of one entry (entrySizeBytes: payload + 128): proposals are ≤ 8 MiB. */
export const DEFAULT_MAX_ENTRY_BYTES = 16 * 1024 * 1024;
/** Default bound of the entries of one saveUpdates call (sum of entrySizeBytes). */
export const DEFAULT_MAX_BATCH_BYTES = 256 * 1024 * 1024;

/** Bounds every implementation enforces (EntryTooLargeError, BatchTooLargeError). */
export interface LogDBLimits {
  /** Largest entry, counted with entrySizeBytes. Default DEFAULT_MAX_ENTRY_BYTES. */
  maxEntryBytes?: number;
  /** Largest sum of entrySizeBytes in one saveUpdates call. Default DEFAULT_MAX_BATCH_BYTES. */
  maxBatchBytes?: number;
}

/** A NodeHost data directory's identity, checked at open. */
export interface NodeHostIdentity {
  raftAddress: string;
  deploymentId: number;
  formatVersion: number;
}

/** Summary of one replica's persisted log, read once when the replica starts. */
export interface ReplicaLogState {
  state: State;
  snapshot: SnapshotMeta | null;
  /** First stored entry index (snapshot index + 1 when compacted, 1 when empty and no snapshot). */
  firstIndex: number;
  /** Last stored entry index (snapshot index when no entry follows it, 0 when empty). */
  lastIndex: number;
}

/** Called once when a batch of saveUpdatesAsync is durable (null) or failed (the error). */
export type SaveDone = (error: Error | null) => void;

/**
 * Persistent log storage of every replica of one NodeHost. Reads are synchronous (the Raft
 * core reads through it while stepping); the engine's hot write, saveUpdatesAsync, runs off
 * the caller's thread (a Worker for SQLite) and reports when it is durable.
 * Implementations: SQLite (src/logdb/sqlite.ts) and in-memory (src/logdb/memory.ts),
 * both run by one conformance suite (test/logdb/logdb.case.ts).
 */
export interface LogDB {
  /**
   * Entries, hard states and snapshot metadata of many replicas: one transaction, one fsync;
   * all or nothing. Entries of one update are contiguous and ascending; the first may
   * overwrite a stored suffix (entries from its index on are removed) but may not leave a
   * gap after the last stored entry nor reach at or below the snapshot index.
   * @throws EntryTooLargeError, BatchTooLargeError, LogDBArgumentError (nothing applied)
   */
  saveUpdates(updates: readonly ReplicaUpdate[]): void;
  /**
   * saveUpdates without waiting: the batch is checked now (the same errors are thrown, nothing
   * queued) and written after every batch queued before it, in one transaction with one fsync.
   * `done(null)` is called once it is durable, `done(error)` when writing it failed (nothing of
   * it applied, unless the error says otherwise); never inside this call. Reads see a batch
   * from its done on (maybe earlier: callers must not rely on either). Every other write (saveUpdates, saveBootstrap, compact,
   * removeReplica) first waits for the queued batches to be durable, so writes stay in call
   * order. A batch still queued when the database closes or the process dies is lost, and its
   * done is never called.
   * @throws EntryTooLargeError, BatchTooLargeError, LogDBArgumentError (nothing queued)
   */
  saveUpdatesAsync(updates: readonly ReplicaUpdate[], done: SaveDone): void;
  /**
   * Stored entries in [low, high) as a contiguous run starting at low (empty when low is not
   * stored): at least one when available, then as many as fit in maxSizeBytes (entrySizeBytes).
   * Range checks against firstIndex/lastIndex are the caller's (LogReader's).
   */
  entries(key: ReplicaKey, low: number, high: number, maxSizeBytes: number): Entry[];
  /** Term at index, or undefined when no entry is stored there (the snapshot index answers its term). */
  term(key: ReplicaKey, index: number): number | undefined;
  readLogState(key: ReplicaKey): ReplicaLogState;
  saveBootstrap(key: ReplicaKey, record: BootstrapRecord): void;
  /**
   * saveBootstrap without waiting: checked now (the same errors are thrown, nothing written),
   * then written with the next batch handed to the writer, or on its own once the microtasks
   * queued before the next one have run — so the records of replicas started together share
   * one transaction and one fsync. Reads (getBootstrap, listReplicas) see it at once; later
   * writes of the replica are written after it. `done(null)` once it is durable, `done(error)`
   * when writing it failed; never inside this call. Nothing may promise anything about the
   * replica to a peer or a client before done(null).
   * @throws LogDBArgumentError, LogDBClosedError, the writer's error (nothing written)
   */
  saveBootstrapAsync(key: ReplicaKey, record: BootstrapRecord, done: SaveDone): void;
  getBootstrap(key: ReplicaKey): BootstrapRecord | null;
  /** Every (shard, replica) with a bootstrap record, hard state or snapshot on disk, sorted. */
  listReplicas(): ReplicaKey[];
  /**
   * Removes every record of the replica (entries, state, snapshot metadata, bootstrap), in one
   * transaction. With a tombstone, the same transaction records that the replica's data was
   * removed for good (getTombstone); a tombstone is never removed.
   */
  removeReplica(key: ReplicaKey, tombstone?: Tombstone): void;
  /** The tombstone removeReplica left for the replica, or null. */
  getTombstone(key: ReplicaKey): Tombstone | null;
  /**
   * Removes entries with index ≤ index. Only entries covered by the stored snapshot may go:
   * index above the snapshot index throws LogDBArgumentError.
   */
  compact(key: ReplicaKey, index: number): void;
  /**
   * Replaces every record of the replica (entries, hard state, snapshot metadata, bootstrap)
   * by a restored snapshot: one transaction, all or nothing. The log restarts right after the
   * snapshot; state.commit must equal the snapshot index and state.term be at least its term.
   * Used offline, to rebuild a shard that lost quorum from a backup (`longboat restore`).
   * @throws LogDBArgumentError (nothing applied)
   */
  importSnapshot(key: ReplicaKey, record: ImportedReplica): void;
  /** How many entries the replica stores and their size. Reads every entry: for reports, not hot paths. */
  logUsage(key: ReplicaKey): LogUsage;
  /**
   * Hands space freed by compactions back to the file system where the store can, and
   * returns the store's size in bytes before and after (0 and 0 in memory).
   */
  reclaimSpace(): { sizeBytesBefore: number; sizeBytesAfter: number };
  close(): void;
  /** What the log writer did since open (SQLite only; metrics and benchmarks). */
  writerStats?(): WriterStats;
}

/**
 * What a LogDB's writer thread did since open: where a writer round's time goes (the host's
 * longboat_logdb_writer_* metrics). Appends write one journal record each (one transaction,
 * one fsync); moves carry journal rows into the per-replica tables (docs/durability.md, "The
 * journal"), in the transaction of the append after which they fell due (alone at a
 * checkpoint or close).
 */
export interface WriterStats {
  appends: number;
  /** Milliseconds inside appends, BEGIN to COMMIT (the fsync included, a move inside it not). */
  appendMs: number;
  /** Milliseconds inside the appends' COMMIT (SQLite's WAL write and fsync). */
  commitMs: number;
  moves: number;
  /** Milliseconds inside moves. */
  moveMs: number;
  movedEntries: number;
}
