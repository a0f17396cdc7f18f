/**
 * What the scheduler reads and writes. The scheduler is a pure function of (committed
 * DrummerDB state, the leader's live reports, now): no clock, no randomness, no I/O. Times are
 * drummer milliseconds (the leader converts its clock to DrummerDB's timeline).
 */
import type { SchedulerStep } from "../db/codec.ts";
import type { DbState } from "../db/state.ts";
import type { ShardMember } from "../types.ts";

/** One replica as a NodeHost's last report described it. */
export interface ReplicaObservation {
  shardId: number;
  replicaId: number;
  app: string;
  isLeader: boolean;
  leaderReplicaId: number;
  configChangeId: number;
  members: ShardMember[];
  appliedIndex: number;
  /** It has applied no membership yet (joined, waiting for the leader). */
  pending: boolean;
  /** Its Raft term and commit index, for people (absent: not reported). The scheduler ignores them. */
  term?: number;
  commitIndex?: number;
}

export interface DecisionOutcome {
  ok: boolean;
  message: string;
}

/** The leader's soft state about one NodeHost: its last report and when it came. */
export interface HostObservation {
  raftAddress: string;
  apiAddress: string;
  region: string;
  lastReportMs: number;
  replicas: ReplicaObservation[];
  /** `${shardId}:${replicaId}` of every replica whose data is on the host's disk. */
  logsOnDisk: Set<string>;
  /** The apps the host can run (built-in and plugins), as its last report listed them; absent or empty: not said. */
  apps?: readonly string[];
  /** What the host said about decisions it carried out, kept until the decision ends. */
  results: Map<number, DecisionOutcome>;
  /** Its live figures from its last report (for the dashboard; the scheduler ignores them). */
  figures?: HostFigures;
}

/** A HostFigures message of drummer.proto. */
export interface HostFigures {
  sample: number;
  intervalMs: number;
  proposalsPerSecond: number;
  proposalP99Ms: number;
  fsyncsPerSecond: number;
}

export interface SchedulerConfig {
  /** A NodeHost silent this long is dead. */
  deadTimeoutMs: number;
  /** Shards repaired at once, at most. */
  maxRepairs: number;
  /** A decision with no visible effect after this long fails (and is retried or replanned). */
  decisionTimeoutMs: number;
  /** Shards launched per pass, at most (a large launch spreads over passes). */
  launchesPerPassMax: number;
  /** Zombie kills decided per pass, at most. */
  killsPerPassMax: number;
  /**
   * No launch while this many decisions are in flight: a large placement goes as fast as the
   * NodeHosts confirm it, instead of filling DrummerDB (and every pass) with waiting creates.
   */
  launchInFlightMax: number;
}

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = {
  deadTimeoutMs: 60_000,
  maxRepairs: 4,
  decisionTimeoutMs: 60_000,
  launchesPerPassMax: 256, // DRUMMER_DEFAULTS.launchesPerPassMax
  killsPerPassMax: 64,
  launchInFlightMax: 4096,
};

/** shard → raft address → the replica of the shard that host reports running. */
export type ReplicaIndex = Map<number, Map<string, ReplicaObservation>>;

/** What a pass looks at; absent: everything. */
export interface SchedulerFocus {
  /** Shards to plan (those with decisions in flight are always looked at). */
  shards: ReadonlySet<number>;
  /** Hosts whose reports to look at for zombies and changed records. */
  hosts: ReadonlySet<string>;
}

export interface SchedulerInput {
  state: Readonly<DbState>;
  hosts: ReadonlyMap<string, HostObservation>;
  nowMs: number;
  /** When this leader started listening to reports (it judges nobody dead for a dead timeout). */
  listeningSinceMs: number;
  config: SchedulerConfig;
  /** The hosts' replicas by shard, when the caller keeps it (else built from hosts). */
  index?: ReplicaIndex;
  /** Look only at these shards and hosts (a leader's incremental pass); absent: a full pass. */
  focus?: SchedulerFocus;
}

/** A shard the scheduler cannot act on, and why (impossible placement, no quorum, no slot…). */
export interface Problem {
  shardId: number;
  message: string;
}

export type StepItems = Pick<
  SchedulerStep,
  "hosts" | "views" | "decisions" | "ends" | "repairsDoneShardIds" | "repairsStoppedShardIds"
>;

export interface SchedulerOutput {
  step: StepItems;
  problems: Problem[];
  /** The pass stopped at a bound (launchesPerPassMax) with shards left to launch: plan again soon. */
  more: boolean;
}

export const replicaKey = (shardId: number, replicaId: number) => `${shardId}:${replicaId}`;
