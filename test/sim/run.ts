/**
 * One simulated run per seed: setup, a safety phase under the seed's faults with clients
 * running, then a heal phase where every fault stops and every shard must converge (a leader,
 * everything applied, equal state machine hashes) within a bounded time; finally the
 * acknowledged-write and linearizability checks over the whole history.
 *
 * @example
 *   const r = await runSeed({ seed: 42 });
 *   if (r.violation) console.error(r.violation.message, replayCommand(42));
 */
import type { PlantedBug } from "../../src/engine/bugs.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { checkOperations, kvModel } from "./linearizability.ts";
import { currentTest } from "../support/resources.ts";
import { SimViolation } from "./oracles.ts";
import { describeSwarm, type Swarm } from "./swarm.ts";
import { Workload, type WorkloadStats } from "./workload.ts";
import { type HostSlot, World, type WorldStats } from "./world.ts";

export interface RunOptions {
  seed: number;
  /** Readable trace sink (LONGBOAT_SIM_SEED sets it to stderr). */
  trace?: (line: string) => void;
  /** Simulated milliseconds of the safety phase. Default 3000. */
  safetyMs?: number;
  /** Simulated milliseconds the heal phase may take before "no convergence". Default 5000. */
  healMsMax?: number;
  /** Simulated milliseconds per driver step (oracles run after each). Default 2. */
  stepMs?: number;
  /**
   * False: without the faults added after the first soaks (leader churn, slow apply: the
   * second random stream of swarm.ts), as the regression seeds were found. Default true.
   */
  laterFaults?: boolean;
  /** Called with the world before it shuts down (debugging: inspect replicas). */
  inspect?: (world: World) => void;
  /**
   * A planted bug every NodeHost runs with (src/engine/bugs.ts; the self-test planted.test.ts).
   * sim.test.ts takes it from LONGBOAT_SIM_BUG to replay a catch. Default none.
   */
  bug?: PlantedBug | null;
}

export interface RunResult {
  seed: number;
  swarm: Swarm;
  violation: SimViolation | null;
  simulatedMs: number;
  workload: WorkloadStats;
  world: WorldStats;
  ackedWrites: number;
  verifiedAckedWrites: number;
  entriesChecked: number;
  linearizability: "ok" | "illegal" | "unknown" | "skipped";
  /** Digest of the whole trace: two runs of one seed must agree. */
  traceDigest: number;
  /** Times two replicas of a shard were reported "leader" at once (different terms), and the longest. */
  roleOverlaps: number;
  roleOverlapMsMax: number;
}

/** Seeds CI runs (sim.test.ts without LONGBOAT_SIM_SEEDS), and each planted bug's budget. */
export const DEFAULT_SEED_COUNT = 200;
export const SAFETY_MS_DEFAULT = 3000;
export const HEAL_MS_MAX_DEFAULT = 5000;
/** Bound on the checker's memoised states per key before it answers "unknown". */
export const CHECK_STATE_COUNT_MAX = 50_000;

export function replayCommand(seed: number, bug: PlantedBug | null = null): string {
  const withBug = bug === null ? "" : `LONGBOAT_SIM_BUG=${bug} `;
  return `${withBug}LONGBOAT_SIM_SEED=${seed} npx bun test test/sim/sim.test.ts`;
}

export async function runSeed(opts: RunOptions): Promise<RunResult> {
  const world = new World(opts.seed, opts.trace ?? null, opts.laterFaults ?? true, opts.bug ?? null);
  const workload = new Workload(world);
  const stepMs = opts.stepMs ?? 2;
  let violation: SimViolation | null = null;
  let linearizability: RunResult["linearizability"] = "skipped";
  world.log(`seed ${opts.seed}: ${describeSwarm(world.swarm)}`);
  try {
    await world.setup();
    workload.start();
    const safetyMs = opts.safetyMs ?? SAFETY_MS_DEFAULT;
    world.activity = `the safety phase (${safetyMs} simulated ms)`;
    await phase(world, workload, safetyMs, stepMs, () => false);
    workload.stopped = true;
    await world.stopFaults();
    const healMsMax = opts.healMsMax ?? HEAL_MS_MAX_DEFAULT;
    const healedAt = world.env.nowMs();
    world.activity = `the heal phase (at most ${healMsMax} simulated ms from ${healedAt})`;
    let converged = await phase(
      world,
      workload,
      healMsMax,
      stepMs,
      () => workload.idle && !world.membershipBusy && convergedNow(world),
    );
    if (!converged) {
      throw new SimViolation(
        "convergence",
        `no convergence within ${healMsMax}ms of healing: ${convergenceReport(world)}`,
      );
    }
    world.log(`converged ${world.env.nowMs() - healedAt}ms after healing`);
    converged = true;
    world.oracles.verifyAllAcked(true);
    checkAckedApplied(world);
    const verdict = checkOperations(kvModel, workload.history.operations(), {
      maxStates: CHECK_STATE_COUNT_MAX,
    });
    linearizability = verdict.result;
    if (verdict.result === "illegal") {
      throw new SimViolation("linearizability", `key ${verdict.partitionKey}: ${verdict.explanation ?? ""}`);
    }
  } catch (e) {
    if (!(e instanceof SimViolation)) throw e;
    violation = e;
    world.log(`VIOLATION ${e.message}`);
  } finally {
    workload.stopped = true;
    opts.inspect?.(world);
    world.activity = null;
    await world.shutdown();
  }
  return {
    seed: opts.seed,
    swarm: world.swarm,
    violation,
    simulatedMs: world.env.nowMs(),
    workload: workload.stats,
    world: world.stats,
    ackedWrites: world.oracles.acked.length,
    verifiedAckedWrites: violation ? 0 : world.oracles.verifyAllAcked(true),
    entriesChecked: world.oracles.entriesChecked,
    linearizability,
    traceDigest: world.traceDigest,
    roleOverlaps: world.oracles.roleOverlaps,
    roleOverlapMsMax: world.oracles.roleOverlapMsMax,
  };
}

/** Runs the world for up to durationMs; stops early (returning true) when done() holds. */
async function phase(
  world: World,
  workload: Workload,
  durationMs: number,
  stepMs: number,
  done: () => boolean,
): Promise<boolean> {
  const token = currentTest();
  for (let t = 0; t < durationMs; t += stepMs) {
    await world.step(stepMs, token);
    workload.probeNewLeaders();
    await world.injectFaults(stepMs);
    world.check();
    if (done()) return true;
  }
  return false;
}

/** Every shard has one leader and every running replica applied all it committed, with equal hashes. */
function convergedNow(world: World): boolean {
  for (const [shardId] of world.shardMembers) {
    let leaderCommit = -1;
    const applied: { index: number; hash: string }[] = [];
    for (const h of world.running()) {
      if (!h.shards.has(shardId)) continue;
      const info = h.nh!.getNodeHostInfo({ skipLogInfo: true }).shards.find((s) => s.shardId === shardId);
      if (!info) continue;
      if (info.isLeader) leaderCommit = info.commitIndex;
      const sh = h.nh!.stateHash(shardId);
      applied.push({ index: sh.appliedIndex, hash: sh.hash });
    }
    if (leaderCommit < 0 || applied.length === 0) return false;
    if (leaderCommit < world.oracles.highestAcked(shardId)) return false;
    if (applied.some((a) => a.index !== leaderCommit || a.hash !== applied[0]!.hash)) return false;
  }
  return world.running().length === world.hosts.length;
}

function convergenceReport(world: World): string {
  const parts: string[] = [];
  for (const h of world.hosts) {
    if (h.nh === null || h.fatal) {
      parts.push(`host ${h.index} down`);
      continue;
    }
    for (const s of h.nh.getNodeHostInfo({ skipLogInfo: true }).shards) {
      parts.push(
        `host ${h.index} shard ${s.shardId}: leader=${s.leaderId} term=${s.term} commit=${s.commitIndex} applied=${s.appliedIndex}`,
      );
    }
  }
  return parts.join("; ");
}

/** After convergence every replica applied every acknowledged write. */
function checkAckedApplied(world: World): void {
  for (const a of world.oracles.acked) {
    for (const h of world.running()) {
      if (!h.shards.has(a.shardId)) continue;
      const applied = appliedOn(h, a.shardId);
      if (applied === null) continue; // the replica left the shard
      if (applied < a.index) {
        throw new SimViolation(
          "acked",
          `${a.what} acknowledged at index ${a.index} but host ${h.index} applied only ${applied}`,
        );
      }
    }
  }
}

/** The applied index of h's replica of shardId, or null when it no longer runs there. */
function appliedOn(h: HostSlot, shardId: number): number | null {
  try {
    return h.nh!.stateHash(shardId).appliedIndex;
  } catch (e) {
    if (e instanceof LongboatError && (e.code === "shardNotFound" || e.code === "replicaRemoved"))
      return null;
    throw e;
  }
}

/** The summary line of a batch of runs. */
export function summarize(results: RunResult[], wallMs: number): string {
  const simulatedHours = results.reduce((a, r) => a + r.simulatedMs, 0) / 3_600_000;
  const ops = results.reduce((a, r) => a + r.workload.invoked, 0);
  const completed = results.reduce((a, r) => a + r.workload.completed, 0);
  const acked = results.reduce((a, r) => a + r.ackedWrites, 0);
  const unknown = results.filter((r) => r.linearizability === "unknown").length;
  const failed = results.filter((r) => r.violation !== null).length;
  const sum = (k: keyof WorldStats) => results.reduce((a, r) => a + r.world[k], 0);
  const faults =
    `faults: ${sum("crashes")} crashes, ${sum("diskFaultStops")} disk-fault stops, ${sum("partitions")} partitions, ` +
    `${sum("clogs")} clogs, ${sum("pauses")} pauses, ${sum("transfers")} leader transfers, ` +
    `${sum("membershipChanges")} membership changes, ${sum("snapshotsCreated")} snapshots taken, ` +
    `${sum("snapshotsReceived")} snapshots streamed, ${sum("newLeaderIsolations")} new leaders isolated, ` +
    `${sum("powerLosses")} power losses at a first commit, ${sum("slowApplies")} slow applies, ` +
    `${sum("powerLossCrashes")} crashes that lost power, ${sum("powerLossesAfterSnapshot")} power losses after a received snapshot, ` +
    `${sum("unsyncedLost")} unsynced files or directories lost, ${sum("restartFailures")} failed restarts`;
  const overlaps = results.reduce((a, r) => a + r.roleOverlaps, 0);
  const overlapMsMax = results.reduce((a, r) => Math.max(a, r.roleOverlapMsMax), 0);
  return (
    `sim: ${results.length} seeds, ${simulatedHours.toFixed(3)} simulated hours, ${ops} client operations ` +
    `(${completed} completed, ${acked} acknowledged writes), ${failed} violations, ` +
    `${unknown} histories too large to decide, ${(wallMs / 1000).toFixed(1)}s wall; ${faults}; ` +
    `roles: ${overlaps} times two replicas of a shard were "leader" at once (different terms), longest ${overlapMsMax}ms`
  );
}
