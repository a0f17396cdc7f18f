/**
 * The drummer's records as plain objects with every field present (the shapes of
 * proto/longboat/drummer/v1/db.proto). Ids are JS numbers (≤ 2^53 − 1), times are drummer
 * milliseconds (see DbState.timeMs).
 */

/** Placement goal: `count` replicas of a shard in `region`. */
export interface RegionCount {
  region: string;
  count: number;
}

export interface ShardMember {
  replicaId: number;
  raftAddress: string;
}

export interface ShardDefinition {
  shardId: number;
  app: string;
  replicaCount: number;
  regions: RegionCount[];
}

/** The committed view of a placed shard. */
export interface ShardView {
  shardId: number;
  configChangeId: number;
  members: ShardMember[];
  initialMembers: ShardMember[];
  removedReplicaIds: number[];
  nextReplicaId: number;
  unstartedReplicaIds: number[];
  wantedRegion: string;
}

export interface HostRecord {
  raftAddress: string;
  apiAddress: string;
  region: string;
}

export interface DrummerRecord {
  drummerId: number;
  apiAddress: string;
}

/** Numbered as DecisionKind in db.proto. */
export const DecisionKind = {
  Create: 1,
  Add: 2,
  Join: 3,
  Remove: 4,
  Restore: 5,
  Kill: 6,
} as const;
export type DecisionKind = (typeof DecisionKind)[keyof typeof DecisionKind];

export const DECISION_KIND_NAMES: Record<DecisionKind, string> = {
  1: "create",
  2: "add",
  3: "join",
  4: "remove",
  5: "restore",
  6: "kill",
};

/** Numbered as DecisionState in db.proto. */
export const DecisionState = {
  InFlight: 1,
  Done: 2,
  Failed: 3,
} as const;
export type DecisionState = (typeof DecisionState)[keyof typeof DecisionState];

export interface Decision {
  decisionId: number;
  kind: DecisionKind;
  shardId: number;
  replicaId: number;
  replicaAddress: string;
  executorAddress: string;
  app: string;
  initialMembers: ShardMember[];
  configChangeId: number;
  reason: string;
  repair: boolean;
  createdMs: number;
  endedMs: number;
  state: DecisionState;
  outcome: string;
  leaderTerm: number;
  /** Kill: the committed membership that no longer lists the replica (at configChangeId). */
  currentMembers: ShardMember[];
}

/** Kinds that start a replica on replicaAddress. */
export function startsReplica(kind: DecisionKind): boolean {
  return kind === DecisionKind.Create || kind === DecisionKind.Join || kind === DecisionKind.Restore;
}

/** Kinds that change the shard (everything but killing a zombie): one at a time per shard. */
export function changesShard(kind: DecisionKind): boolean {
  return kind !== DecisionKind.Kill;
}

/** A new decision as the scheduler proposes it (DrummerDB fills id, times, state, term). */
export type DecisionProposal = Omit<
  Decision,
  "decisionId" | "createdMs" | "endedMs" | "state" | "outcome" | "leaderTerm" | "currentMembers"
>;

export function describeDecision(
  d: Pick<Decision, "kind" | "shardId" | "replicaId" | "replicaAddress">,
): string {
  const id = d.replicaId === 0 ? "a new replica" : `replica ${d.replicaId}`;
  return `${DECISION_KIND_NAMES[d.kind]} ${id} of shard ${d.shardId} at ${d.replicaAddress}`;
}
