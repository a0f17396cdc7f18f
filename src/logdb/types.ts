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
  /** New snapshot metadata (entries at or below its index may then be compacted), or null. */
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

/**
 * Persistent log storage of every replica of one NodeHost. Synchronous by design:
 * bun:sqlite blocks, and the Raft core reads through it while stepping.
 * Implementations: SQLite (src/logdb/sqlite.ts) and in-memory (src/logdb/memory.ts),
 * both run by one conformance suite (test/logdb/logdb.case.ts).
 */
export interface LogDB {
  /** Entries, hard states and snapshot metadata of many replicas: one transaction, one fsync. */
  saveUpdates(updates: readonly ReplicaUpdate[]): void;
  /** Entries in [low, high), at least one when available, then up to maxSizeBytes (entrySizeBytes). */
  entries(key: ReplicaKey, low: number, high: number, maxSizeBytes: number): Entry[];
  /** Term at index, or undefined when no entry is stored there (the snapshot index answers its term). */
  term(key: ReplicaKey, index: number): number | undefined;
  readLogState(key: ReplicaKey): ReplicaLogState;
  saveBootstrap(key: ReplicaKey, record: BootstrapRecord): void;
  getBootstrap(key: ReplicaKey): BootstrapRecord | null;
  /** Every (shard, replica) with a bootstrap record on disk. */
  listReplicas(): ReplicaKey[];
  /** Removes every record of the replica (entries, state, snapshot metadata, bootstrap). */
  removeReplica(key: ReplicaKey): void;
  /** Removes entries with index ≤ index. */
  compact(key: ReplicaKey, index: number): void;
  close(): void;
}
