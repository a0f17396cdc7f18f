import { LongboatError } from "./errors.ts";

/**
 * Configuration of one replica, as given to NodeHost.startReplica. Units are in the names:
 * `…Rtt` fields count ticks of the NodeHost's rttMs.
 */
export interface ReplicaConfig {
  shardId: number;
  replicaId: number;
  /** Election timeout in ticks; must be > 2 × heartbeatRtt. Default 10. */
  electionRtt: number;
  /** Heartbeat interval in ticks. Default 1. */
  heartbeatRtt: number;
  /** Leader steps down without a quorum of responses; followers ignore votes while they hear a leader. Default true. */
  checkQuorum: boolean;
  /** Pre-vote before a real election (must be the same on every replica). Default true. */
  preVote: boolean;
  /** Take a snapshot every this many applied entries (0: never). Default 0. */
  snapshotEntries: number;
  /** Entries kept in the log behind a snapshot for slow followers. Default 5000. */
  compactionOverhead: number;
  /**
   * Keep the log after snapshots: entries are only removed by NodeHost.requestCompaction or
   * a snapshot request that names a compaction. Default false.
   */
  disableAutoCompactions: boolean;
  /** Config changes must quote the membership's current configChangeId. Default true. */
  orderedConfigChange: boolean;
  /** Bytes of unapplied log in memory before proposals are refused as busy (0: unlimited). Default 0. */
  maxInMemLogSizeBytes: number;
  isNonVoting: boolean;
  isWitness: boolean;
  /** Let an idle shard stop heartbeating. Default false. */
  quiesce: boolean;
  /** Proposals queued per engine cycle before new ones are refused as busy. Default 2048. */
  maxProposalQueue: number;
  /** Reads queued per engine cycle before new ones are refused as busy. Default 4096. */
  maxReadQueue: number;
  /** Reads awaiting confirmation and apply before new ones are refused as busy. Default 65536. */
  maxPendingReads: number;
  /** Proposals awaiting their result before new ones are refused as busy. Default 65536. */
  maxPendingProposals: number;
  /** Largest proposal payload in bytes. Default 8 MiB. */
  maxProposalBytes: number;
  /** Entry bytes one Replicate message carries (at least one entry). Default 8 MiB. */
  maxEntryBytesPerMessage: number;
}

export type ReplicaConfigInput = Partial<ReplicaConfig> & { shardId: number; replicaId: number };

export const REPLICA_CONFIG_DEFAULTS: Omit<ReplicaConfig, "shardId" | "replicaId"> = {
  electionRtt: 10,
  heartbeatRtt: 1,
  checkQuorum: true,
  preVote: true,
  snapshotEntries: 0,
  compactionOverhead: 5000,
  disableAutoCompactions: false,
  orderedConfigChange: true,
  maxInMemLogSizeBytes: 0,
  isNonVoting: false,
  isWitness: false,
  quiesce: false,
  maxProposalQueue: 2048,
  maxReadQueue: 4096,
  maxPendingReads: 65536,
  maxPendingProposals: 65536,
  maxProposalBytes: 8 * 1024 * 1024,
  maxEntryBytesPerMessage: 8 * 1024 * 1024,
};

function positiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new LongboatError("invalidShardSettings", `${name} must be a positive integer, got ${v}`);
  }
}

function nonNegativeInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new LongboatError("invalidShardSettings", `${name} must be a non-negative integer, got ${v}`);
  }
}

/** Fills defaults and checks every rule; a broken rule throws invalidShardSettings naming it. */
export function validateReplicaConfig(input: ReplicaConfigInput): ReplicaConfig {
  const c: ReplicaConfig = { ...REPLICA_CONFIG_DEFAULTS, ...input };
  positiveInt("shardId", c.shardId);
  positiveInt("replicaId", c.replicaId);
  positiveInt("electionRtt", c.electionRtt);
  positiveInt("heartbeatRtt", c.heartbeatRtt);
  positiveInt("maxProposalQueue", c.maxProposalQueue);
  positiveInt("maxReadQueue", c.maxReadQueue);
  positiveInt("maxPendingReads", c.maxPendingReads);
  positiveInt("maxPendingProposals", c.maxPendingProposals);
  positiveInt("maxProposalBytes", c.maxProposalBytes);
  positiveInt("maxEntryBytesPerMessage", c.maxEntryBytesPerMessage);
  nonNegativeInt("snapshotEntries", c.snapshotEntries);
  nonNegativeInt("compactionOverhead", c.compactionOverhead);
  nonNegativeInt("maxInMemLogSizeBytes", c.maxInMemLogSizeBytes);
  if (c.electionRtt <= 2 * c.heartbeatRtt) {
    throw new LongboatError(
      "invalidShardSettings",
      `electionRtt must be > 2 × heartbeatRtt, got ${c.electionRtt} and ${c.heartbeatRtt}`,
    );
  }
  if (c.isNonVoting && c.isWitness) {
    throw new LongboatError("invalidShardSettings", "a replica cannot be both non-voting and a witness");
  }
  if (c.isWitness && c.snapshotEntries !== 0) {
    throw new LongboatError("invalidShardSettings", "a witness must have snapshotEntries 0");
  }
  return c;
}
