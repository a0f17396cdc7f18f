/** Configuration of one replica's Raft core, validated once at construction. */
export interface RaftConfig {
  shardId: number;
  replicaId: number;
  /** Election timeout in ticks; the randomized timeout is drawn from [electionRtt, 2·electionRtt − 1]. */
  electionRtt: number;
  /** Heartbeat interval in ticks; must be < electionRtt / 2. */
  heartbeatRtt: number;
  /** Leader steps down without a quorum of responses in an election timeout; followers ignore disruptive votes. */
  checkQuorum: boolean;
  /** Candidates first ask for pre-votes without raising their term. */
  preVote: boolean;
  isNonVoting: boolean;
  isWitness: boolean;
  /** Idle shards stop ticking heartbeats after 20 × electionRtt idle ticks. */
  quiesce: boolean;
  /** Bytes of unapplied in-memory log before proposals are refused as busy; 0 = unlimited. */
  maxInMemLogSizeBytes: number;
  /** Replicate messages in flight per follower in the replicate state. */
  maxInflightMsgs: number;
  /** Entry bytes in flight per follower in the replicate state. */
  maxInflightBytes: number;
  /** Entry bytes per Replicate message (one message carries at least one entry). */
  maxEntryBytesPerMessage: number;
  /**
   * Entry bytes of committedEntries per Update (at least one entry). It bounds what a replica
   * far behind its commit index (a restart re-applying its log) reads and holds at once: at
   * 64 MiB a restart of 16 shards with 1 M entries held the whole log (875 MiB peak RSS), at
   * 512 KiB 185 MiB (docs/performance.md).
   */
  maxApplyBytes: number;
  /**
   * TEST ONLY — breaks safety on purpose: the leader commits by counting replicas whatever the
   * entry's term (Raft §5.4.2, Figure 8). Set only by the simulator's planted bug
   * "old-term-commit" (src/engine/bugs.ts), which is never on in a production build.
   */
  plantedCommitAnyTerm: boolean;
}

export const Role = {
  Follower: 1,
  Candidate: 2,
  PreVoteCandidate: 3,
  Leader: 4,
  NonVoting: 5,
  Witness: 6,
} as const;
export type Role = (typeof Role)[keyof typeof Role];

export function roleName(role: Role): string {
  for (const [k, v] of Object.entries(Role)) if (v === role) return k;
  return `Role(${role})`;
}

const MIB = 1024 * 1024;
/** Smallest useful in-memory log limit: one entry header plus one byte (engine.md §1.16). */
export const MIN_IN_MEM_LOG_SIZE_BYTES = 129;

export const RAFT_CONFIG_DEFAULTS = {
  electionRtt: 10,
  heartbeatRtt: 1,
  checkQuorum: true,
  preVote: true,
  isNonVoting: false,
  isWitness: false,
  quiesce: false,
  maxInMemLogSizeBytes: 0,
  maxInflightMsgs: 256,
  maxInflightBytes: 32 * MIB,
  maxEntryBytesPerMessage: 8 * MIB,
  maxApplyBytes: MIB / 2,
  plantedCommitAnyTerm: false,
} as const;

/** A RaftConfig broke a rule; the message names the rule and the values. */
export class RaftConfigError extends Error {
  override readonly name = "RaftConfigError";
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new RaftConfigError(`${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

function nonNegativeInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new RaftConfigError(`${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw new RaftConfigError(`${name} must be a boolean, got ${String(v)}`);
  return v;
}

/**
 * Fills defaults and checks every rule; throws RaftConfigError naming the first rule broken.
 * @example validateRaftConfig({ shardId: 1, replicaId: 2, electionRtt: 10, heartbeatRtt: 1 })
 */
export function validateRaftConfig(
  input: Partial<RaftConfig> & { shardId: number; replicaId: number },
): RaftConfig {
  const c = { ...RAFT_CONFIG_DEFAULTS, ...stripUndefined(input) } as RaftConfig;
  nonNegativeInt("shardId", c.shardId);
  positiveInt("replicaId", c.replicaId);
  positiveInt("electionRtt", c.electionRtt);
  positiveInt("heartbeatRtt", c.heartbeatRtt);
  if (c.electionRtt <= 2 * c.heartbeatRtt) {
    throw new RaftConfigError(
      `electionRtt must be > 2 × heartbeatRtt, got ${c.electionRtt} and ${c.heartbeatRtt}`,
    );
  }
  for (const k of [
    "checkQuorum",
    "preVote",
    "isNonVoting",
    "isWitness",
    "quiesce",
    "plantedCommitAnyTerm",
  ] as const)
    bool(k, c[k]);
  if (c.isNonVoting && c.isWitness) {
    throw new RaftConfigError("isNonVoting and isWitness cannot both be true (a replica has one role)");
  }
  nonNegativeInt("maxInMemLogSizeBytes", c.maxInMemLogSizeBytes);
  if (c.maxInMemLogSizeBytes > 0 && c.maxInMemLogSizeBytes < MIN_IN_MEM_LOG_SIZE_BYTES) {
    throw new RaftConfigError(
      `maxInMemLogSizeBytes must be 0 (unlimited) or ≥ ${MIN_IN_MEM_LOG_SIZE_BYTES}, got ${c.maxInMemLogSizeBytes}`,
    );
  }
  positiveInt("maxInflightMsgs", c.maxInflightMsgs);
  positiveInt("maxInflightBytes", c.maxInflightBytes);
  positiveInt("maxEntryBytesPerMessage", c.maxEntryBytesPerMessage);
  positiveInt("maxApplyBytes", c.maxApplyBytes);
  return c;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
