import type { Entry, Membership, SnapshotMeta, State } from "./types.ts";

/** Thrown when a requested index lies at or below the latest snapshot (its entry was compacted). */
export class CompactedError extends Error {
  override readonly name = "CompactedError";
  constructor(
    readonly index: number,
    readonly firstIndex: number,
  ) {
    super(`log entry ${index} was compacted (first available index is ${firstIndex})`);
  }
}

/** Thrown when a requested index lies beyond the last stored entry. */
export class UnavailableError extends Error {
  override readonly name = "UnavailableError";
  constructor(
    readonly index: number,
    readonly lastIndex: number,
  ) {
    super(`log entry ${index} is not available yet (last stored index is ${lastIndex})`);
  }
}

/**
 * What the Raft core reads of one replica's persisted log. The engine implements it over
 * the LogDB (src/logdb/logreader.ts) and keeps it current after each persisted Update;
 * tests use an in-memory implementation. Every method is synchronous: reads hit SQLite or
 * memory and never wait on the network.
 */
export interface LogStorage {
  /** Persisted hard state and the membership the replica was last known to have. */
  nodeState(): { state: State; membership: Membership };
  /** Index of the first entry still stored (snapshot index + 1 after compaction). */
  firstIndex(): number;
  /** Index of the last stored entry (the snapshot index when none follows it). */
  lastIndex(): number;
  /**
   * Term of the entry at index. The snapshot's own index answers with the snapshot term.
   * @throws CompactedError below that, UnavailableError beyond lastIndex().
   */
  term(index: number): number;
  /**
   * Entries in [low, high), at least one (when low < high) and then as many as fit in
   * maxSizeBytes counted with entrySizeBytes().
   * @throws CompactedError, UnavailableError as term() does.
   */
  entries(low: number, high: number, maxSizeBytes: number): Entry[];
  /** The latest persisted snapshot, or null. */
  snapshot(): SnapshotMeta | null;
}

/** Randomness as the core needs it; the simulator supplies a seeded source. */
export interface Rng {
  /** A uniformly drawn integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
}
