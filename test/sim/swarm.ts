/**
 * Swarm testing (TigerBeetle's VOPR `options_swarm`): every seed draws its own cluster shape
 * and fault mix, so one fault does not hide behind another and rare mixes get their turn.
 * Each fault kind is switched on with probability 1/2, then its rate is drawn in its range.
 */
import type { Rng } from "../../src/raft/storage.ts";

export interface Swarm {
  hostCount: number;
  shardCount: number;
  /** Replicas of each shard (3, or 5 when there are 5 hosts). */
  replicasPerShard: number;
  clientCount: number;
  /** Network: probabilities in [0, 1], delays in ms. */
  lossRate: number;
  duplicateRate: number;
  delayMsMin: number;
  delayMsMax: number;
  reorder: boolean;
  /** Chance per simulated second that a partition starts (when none is active). */
  partitionPerSecond: number;
  /** Partitions cut one direction only. */
  partitionOneWay: boolean;
  /** Chance per simulated second that a host's links clog (frames held, then released). */
  clogPerSecond: number;
  /** Chance per simulated second that a running host crashes (stop without flush). */
  crashPerSecond: number;
  /**
   * Chance per simulated second that a host pauses (SIGSTOP, a long GC): its engine stalls (no
   * ticks, no iterations) and its frames are held, both for 200–1700 ms.
   */
  pausePerSecond: number;
  /** LogDB fault probability per call; a failed write stops the engine (a crash in fsync). */
  writeFaultP: number;
  readFaultP: number;
  /** Automatic snapshot every this many applied entries (0: none); log kept behind it. */
  snapshotEntries: number;
  compactionOverhead: number;
  /** Chance per simulated second of a leader transfer request on some shard. */
  transferPerSecond: number;
  /** Chance per simulated second of a membership change (remove a replica, add a new one). */
  membershipPerSecond: number;
  /** Client think time between operations, ms. */
  thinkMsMax: number;
  /** Keys per shard (fewer keys: more contention, more work for the checker). */
  keyCount: number;
  /** Slow apply: chance per applied batch that the apply takes 5–slowApplyMsMax ms (the engine stalls). */
  slowApplyP: number;
  slowApplyMsMax: number;
  /**
   * The log writer's time per batch is drawn from 0 to this (0: a batch is durable as soon as
   * the engine loop yields). Set by World from a random stream of its own.
   */
  writerLatencyMsMax: number;
  /**
   * Each step of a snapshot write (a chunk, the fsync) takes 1 to this many virtual ms (0: the
   * steps are only deferred). Set by World from a random stream of its own.
   */
  snapshotLatencyMsMax: number;
  /**
   * A leader-churn seed (a third of seeds): it aims at the moments around a leader change that
   * Raft's Figure 8 is about, with the targeted faults below on, one entry per Replicate
   * message, and the untargeted process faults (crashes, partitions, clogs, pauses, disk
   * faults, transfers, membership changes) off so they do not mask the schedule. The link
   * faults (loss, duplication, delay, reordering) stay as drawn.
   */
  leaderChurn: boolean;
  /**
   * Targeted: chance that a replica that has just become leader is cut off at once for
   * 100–1000 ms, its election no-op still in flight (lost). Clients that track it keep
   * proposing, so its log grows a tail nobody else has: logs diverge (Figure 8 a–b).
   */
  isolateNewLeaderP: number;
  /**
   * Targeted: chance that a leader's machine loses power right after the fsync in which its
   * commit index first advances in its term; what it sent and nobody received yet is lost
   * (Figure 8 c–d: a new leader has committed and not yet told anyone).
   */
  powerLossAtFirstCommitP: number;
  /** Replicate messages carry one entry each, so followers acknowledge entry by entry. */
  oneEntryPerMessage: boolean;
  /**
   * Share of the untargeted crashes that are power losses: the simulated disk (disk.ts) then
   * loses what was not synced. The others are process crashes, which keep the page cache.
   */
  powerLossCrashShare: number;
  /**
   * Targeted: chance that a machine loses power right after a snapshot it received was saved
   * and acknowledged (the moment a received file that was never fsynced is lost).
   */
  powerLossAfterSnapshotP: number;
}

/** Share of seeds that are leader-churn seeds. */
export const LEADER_CHURN_SHARE = 1 / 3;

/**
 * Draws the swarm of one seed; `on(p)` is a fair coin biased to p. The faults added after the
 * first soaks (leader churn and its rates, slow apply) come from a stream of their own
 * (`targeted`), so a seed without them runs exactly as it did before they existed. With
 * laterFaults false the seed gets none of them (the regression tests replay seeds found
 * before they existed).
 */
export function drawSwarm(rng: Rng, targeted: Rng, durability: Rng, laterFaults = true): Swarm {
  const untargeted = drawUntargeted(rng);
  if (!laterFaults) return untargeted;
  const swarm = drawDurability(untargeted, durability);
  const t = () => targeted.nextInt(1_000_000) / 1_000_000;
  if (t() >= LEADER_CHURN_SHARE) {
    // Slow apply came after the first stream's draws were fixed: from the second stream, so
    // that every seed without it runs as it did before.
    if (t() >= 0.3) return swarm;
    return { ...swarm, slowApplyP: 0.002 + t() * 0.018, slowApplyMsMax: 10 + targeted.nextInt(191) };
  }
  return {
    ...swarm,
    leaderChurn: true,
    isolateNewLeaderP: 0.5 + t() * 0.3,
    powerLossAtFirstCommitP: 0.9 + t() * 0.1,
    oneEntryPerMessage: true,
    powerLossCrashShare: 0,
    powerLossAfterSnapshotP: 0,
    partitionPerSecond: 0,
    clogPerSecond: 0,
    crashPerSecond: 0,
    pausePerSecond: 0,
    writeFaultP: 0,
    readFaultP: 0,
    transferPerSecond: 0,
    membershipPerSecond: 0,
  };
}

/**
 * The power-loss faults of the simulated disk, added after the leader-churn soaks: from a
 * stream of their own, so the other streams draw as before. With correct code a
 * power loss that finds everything synced changes nothing, so a seed keeps its schedule
 * unless a targeted power loss fires.
 */
function drawDurability(swarm: Swarm, durability: Rng): Swarm {
  const d = () => durability.nextInt(1_000_000) / 1_000_000;
  const powerLossCrashShare = d() < 0.5 ? 0.3 + d() * 0.7 : 0;
  const powerLossAfterSnapshotP = d() < 0.5 ? 0.3 + d() * 0.7 : 0;
  return { ...swarm, powerLossCrashShare, powerLossAfterSnapshotP };
}

function drawUntargeted(rng: Rng): Swarm {
  const r = () => rng.nextInt(1_000_000) / 1_000_000;
  const on = (p = 0.5) => r() < p;
  const range = (lo: number, hi: number) => lo + r() * (hi - lo);
  const int = (lo: number, hi: number) => lo + rng.nextInt(hi - lo + 1);
  const hostCount = int(3, 5);
  const delayMsMin = int(0, 5);
  return {
    hostCount,
    shardCount: int(1, 3),
    replicasPerShard: hostCount === 5 && on(0.3) ? 5 : 3,
    clientCount: int(3, 8),
    lossRate: on() ? range(0, 0.3) : 0,
    duplicateRate: on() ? range(0, 0.5) : 0,
    delayMsMin,
    delayMsMax: delayMsMin + (on() ? int(0, 40) : int(0, 3)),
    reorder: on(),
    partitionPerSecond: on() ? range(0.2, 2) : 0,
    partitionOneWay: on(),
    clogPerSecond: on() ? range(0.1, 1) : 0,
    crashPerSecond: on() ? range(0.1, 1) : 0,
    pausePerSecond: on() ? range(0.1, 1) : 0,
    writeFaultP: on() ? range(0.001, 0.02) : 0,
    readFaultP: on(0.2) ? range(0.0001, 0.001) : 0,
    snapshotEntries: on() ? int(5, 60) : 0,
    compactionOverhead: int(1, 20),
    transferPerSecond: on() ? range(1, 10) : 0,
    membershipPerSecond: on(0.3) ? range(0.2, 1) : 0,
    thinkMsMax: int(0, 15),
    keyCount: int(3, 8),
    slowApplyP: 0,
    slowApplyMsMax: 0,
    writerLatencyMsMax: 0,
    snapshotLatencyMsMax: 0,
    leaderChurn: false,
    isolateNewLeaderP: 0,
    powerLossAtFirstCommitP: 0,
    oneEntryPerMessage: false,
    powerLossCrashShare: 0,
    powerLossAfterSnapshotP: 0,
  };
}

/** One line per swarm, for the trace and failure reports. */
export function describeSwarm(s: Swarm): string {
  const p = (x: number) => x.toFixed(3);
  return (
    `hosts=${s.hostCount} shards=${s.shardCount}x${s.replicasPerShard} clients=${s.clientCount} ` +
    `loss=${p(s.lossRate)} dup=${p(s.duplicateRate)} delay=${s.delayMsMin}-${s.delayMsMax}ms reorder=${s.reorder} ` +
    `partition/s=${p(s.partitionPerSecond)}${s.partitionOneWay ? "(one-way)" : ""} clog/s=${p(s.clogPerSecond)} ` +
    `crash/s=${p(s.crashPerSecond)} pause/s=${p(s.pausePerSecond)} writeFault=${p(s.writeFaultP)} ` +
    `readFault=${p(s.readFaultP)} snapshotEntries=${s.snapshotEntries}/${s.compactionOverhead} ` +
    `transfer/s=${p(s.transferPerSecond)} membership/s=${p(s.membershipPerSecond)} keys=${s.keyCount}` +
    (s.slowApplyP > 0 ? ` slowApply=${p(s.slowApplyP)}x${s.slowApplyMsMax}ms` : "") +
    (s.writerLatencyMsMax > 0 ? ` writer=0-${s.writerLatencyMsMax}ms` : "") +
    (s.snapshotLatencyMsMax > 0 ? ` snapshotStep=1-${s.snapshotLatencyMsMax}ms` : "") +
    (s.powerLossCrashShare > 0 ? ` powerLossCrashes=${p(s.powerLossCrashShare)}` : "") +
    (s.powerLossAfterSnapshotP > 0 ? ` powerLossAfterSnapshot=${p(s.powerLossAfterSnapshotP)}` : "") +
    (s.leaderChurn
      ? ` leader-churn: isolateNewLeader=${p(s.isolateNewLeaderP)} powerLossAtFirstCommit=${p(s.powerLossAtFirstCommitP)} oneEntryPerMessage`
      : "")
  );
}
