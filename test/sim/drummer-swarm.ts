/**
 * The shape and faults of one drummer seed: three drummers, four or five NodeHosts in master
 * mode (so a shard can be rebuilt on a spare), kv shards the drummers place, clients, and a
 * script: one NodeHost dies for good; maybe the drummer leader crashes while it repairs; maybe
 * another NodeHost crashes and returns within the dead timeout (its replicas are restored);
 * maybe the drummer leader is cut off for a while (a deposed leader); link faults as drawn.
 */
import type { Rng } from "../../src/raft/storage.ts";

export interface DrummerSwarm {
  hostCount: number;
  shardCount: number;
  clientCount: number;
  keyCount: number;
  thinkMsMax: number;
  lossRate: number;
  duplicateRate: number;
  delayMsMin: number;
  delayMsMax: number;
  reorder: boolean;
  /** Virtual time after setup at which a NodeHost holding replicas dies for good. */
  killAtMs: number;
  /** Crash the drummer leader the first time it has a repair in flight; back after crashDownMs. */
  crashLeaderMidRepair: boolean;
  leaderDownMs: number;
  /** Another NodeHost crashes at bounceAtMs and comes back bounceDownMs later (< dead timeout); 0: never. */
  bounceAtMs: number;
  bounceDownMs: number;
  /** The drummer leader is cut off from everyone at isolateLeaderAtMs for isolateMs; 0: never. */
  isolateLeaderAtMs: number;
  isolateMs: number;
  /** --max-repairs of the drummers. */
  maxRepairs: number;
}

/** Drummer settings in the simulation (short, so a seed runs a repair in a few virtual seconds). */
export const SIM_DRUMMER = {
  deadTimeoutMs: 800,
  reportIntervalMs: 100,
  passIntervalMs: 50,
  requestTimeoutMs: 1000,
} as const;

export function drawDrummerSwarm(rng: Rng): DrummerSwarm {
  const r = () => rng.nextInt(1_000_000) / 1_000_000;
  const on = (p = 0.5) => r() < p;
  const int = (lo: number, hi: number) => lo + rng.nextInt(hi - lo + 1);
  const delayMsMin = int(0, 3);
  return {
    hostCount: int(4, 5),
    shardCount: int(1, 3),
    clientCount: int(2, 4),
    keyCount: int(3, 6),
    thinkMsMax: int(2, 15),
    lossRate: on() ? r() * 0.1 : 0,
    duplicateRate: on() ? r() * 0.2 : 0,
    delayMsMin,
    delayMsMax: delayMsMin + int(0, 8),
    reorder: on(),
    killAtMs: int(200, 1200),
    crashLeaderMidRepair: on(0.6),
    leaderDownMs: int(200, 1500),
    bounceAtMs: on(0.4) ? int(100, 2500) : 0,
    bounceDownMs: int(50, 500),
    isolateLeaderAtMs: on(0.3) ? int(100, 2500) : 0,
    isolateMs: int(200, 900),
    maxRepairs: int(1, 4),
  };
}

export function describeDrummerSwarm(s: DrummerSwarm): string {
  return (
    `hosts=${s.hostCount} shards=${s.shardCount}x3 clients=${s.clientCount} loss=${s.lossRate.toFixed(3)} ` +
    `dup=${s.duplicateRate.toFixed(3)} delay=${s.delayMsMin}-${s.delayMsMax}ms reorder=${s.reorder} ` +
    `kill@${s.killAtMs}ms leaderCrash=${s.crashLeaderMidRepair ? `${s.leaderDownMs}ms` : "no"} ` +
    `bounce=${s.bounceAtMs > 0 ? `@${s.bounceAtMs}ms for ${s.bounceDownMs}ms` : "no"} ` +
    `isolateLeader=${s.isolateLeaderAtMs > 0 ? `@${s.isolateLeaderAtMs}ms for ${s.isolateMs}ms` : "no"} maxRepairs=${s.maxRepairs}`
  );
}
