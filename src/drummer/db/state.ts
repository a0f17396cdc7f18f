import type { Decision, DrummerRecord, HostRecord, ShardDefinition, ShardView } from "../types.ts";

/** Schema version of DrummerState; a snapshot of another version is refused. */
export const DB_VERSION = 1;

/** Limits DrummerDB enforces on what it stores (an update beyond them is refused, never applied). */
export const DB_LIMITS = {
  shards: 100_000,
  hosts: 10_000,
  drummers: 16,
  /** Replicas of one shard. */
  replicaCount: 9,
  regionsPerShard: 16,
  /** Decisions in flight at once over all shards. */
  inFlight: 100_000,
  /** Ended decisions kept for listing, oldest dropped first. */
  finished: 1_000,
  /** Removed replica ids kept per shard (the newest). */
  removedPerShard: 64,
  /** Items in one scheduler step. */
  stepItems: 20_000,
  textChars: 256,
} as const;

export interface DbCounters {
  repairsStarted: number;
  repairsDone: number;
  repairsFailed: number;
  decisionsDone: number;
  decisionsFailed: number;
  itemsRejected: number;
  /** Repairs stopped before the shard was whole (their next step could not be taken). */
  repairsStopped: number;
}

/**
 * DrummerDB's state. Drummer time (`timeMs`) is the largest time a leader stamped on a
 * scheduler step: it never goes back, it does not run while no leader decides, and no replica
 * reads a clock to move it.
 */
export interface DbState {
  version: number;
  deploymentId: number;
  bootstrapped: boolean;
  timeMs: number;
  leaderTerm: number;
  leaderDrummerId: number;
  nextDecisionId: number;
  shards: Map<number, ShardDefinition>;
  views: Map<number, ShardView>;
  hosts: Map<string, HostRecord>;
  drummers: Map<number, DrummerRecord>;
  inFlight: Map<number, Decision>;
  finished: Decision[];
  repairing: Set<number>;
  counters: DbCounters;
  /** Derived index of inFlight by shard (not part of the snapshot); kept by addInFlight/endInFlight. */
  inFlightByShard: Map<number, Decision[]>;
}

export function emptyState(): DbState {
  return {
    version: DB_VERSION,
    deploymentId: 0,
    bootstrapped: false,
    timeMs: 0,
    leaderTerm: 0,
    leaderDrummerId: 0,
    nextDecisionId: 1,
    shards: new Map(),
    views: new Map(),
    hosts: new Map(),
    drummers: new Map(),
    inFlight: new Map(),
    finished: [],
    repairing: new Set(),
    counters: {
      repairsStarted: 0,
      repairsDone: 0,
      repairsFailed: 0,
      decisionsDone: 0,
      decisionsFailed: 0,
      itemsRejected: 0,
      repairsStopped: 0,
    },
    inFlightByShard: new Map(),
  };
}

const NONE: readonly Decision[] = Object.freeze([]);

/** The in-flight decisions of one shard, in decision id order. */
export function inFlightOf(state: DbState, shardId: number): readonly Decision[] {
  return state.inFlightByShard.get(shardId) ?? NONE;
}

/** Adds a decision to inFlight and its index (ids only grow, so the shard's list stays sorted). */
export function addInFlight(state: DbState, d: Decision): void {
  state.inFlight.set(d.decisionId, d);
  const list = state.inFlightByShard.get(d.shardId);
  if (list) list.push(d);
  else state.inFlightByShard.set(d.shardId, [d]);
}

/** Takes a decision out of inFlight and its index. */
export function removeInFlight(state: DbState, d: Decision): void {
  state.inFlight.delete(d.decisionId);
  const list = state.inFlightByShard.get(d.shardId);
  if (!list) return;
  const rest = list.filter((x) => x.decisionId !== d.decisionId);
  if (rest.length === 0) state.inFlightByShard.delete(d.shardId);
  else state.inFlightByShard.set(d.shardId, rest);
}
