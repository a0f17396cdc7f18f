/**
 * One drummer seed: the drummers come up, shards are defined, bootstrapped and placed, the
 * clients start; the script runs (a NodeHost dies for good, maybe the drummer leader crashes
 * mid-repair, a NodeHost bounces, the leader is cut off) under the drawn link faults; then the
 * faults stop and the world must converge: every shard back to three running members on live
 * hosts, nothing in flight, the replicas applied alike. Finally the acknowledged-write and
 * linearizability checks over the whole history, as for the plain simulator.
 *
 * @example const r = await runDrummerSeed({ seed: 3 }); if (r.violation) console.error(r.violation.message);
 */
import { DrummerCallError } from "../../src/drummer/client.ts";
import { describeDrummerSwarm } from "./drummer-swarm.ts";
import { DrummerWorld } from "./drummer-world.ts";
import { checkOperations, kvModel } from "./linearizability.ts";
import { SimViolation } from "./oracles.ts";
import { CHECK_STATE_COUNT_MAX } from "./run.ts";
import { Workload, type WorkloadStats } from "./workload.ts";
import { drain } from "./world.ts";

export interface DrummerRunOptions {
  seed: number;
  trace?: (line: string) => void;
  /** Virtual milliseconds of faults after placement. Default 4000. */
  safetyMs?: number;
  /** Virtual milliseconds the heal phase may take. Default 15000. */
  healMsMax?: number;
}

export interface DrummerRunResult {
  seed: number;
  swarm: DrummerWorld["swarm"];
  violation: SimViolation | null;
  simulatedMs: number;
  workload: WorkloadStats;
  world: DrummerWorld["stats"];
  repairsDone: number;
  decisions: number;
  ackedWrites: number;
  linearizability: "ok" | "illegal" | "unknown" | "skipped";
  traceDigest: number;
}

const STEP_MS = 2;

export function drummerReplayCommand(seed: number): string {
  return `LONGBOAT_SIM_DRUMMER_SEED=${seed} npx bun test test/sim/drummer.test.ts`;
}

export async function runDrummerSeed(opts: DrummerRunOptions): Promise<DrummerRunResult> {
  const w = new DrummerWorld(opts.seed, opts.trace ?? null);
  const workload = new Workload(w);
  let violation: SimViolation | null = null;
  let linearizability: DrummerRunResult["linearizability"] = "skipped";
  w.log(`drummer seed ${opts.seed}: ${describeDrummerSwarm(w.swarm)}`);
  try {
    await setup(w);
    workload.start();
    await phase(w, workload, opts.safetyMs ?? 4000, () => false);
    workload.stopped = true;
    await w.stopFaults();
    const healMsMax = opts.healMsMax ?? 15_000;
    const healedAt = w.env.nowMs();
    if (!(await phase(w, workload, healMsMax, () => workload.idle && converged(w)))) {
      throw new SimViolation("convergence", `no convergence within ${healMsMax}ms of healing: ${report(w)}`);
    }
    w.log(`converged ${w.env.nowMs() - healedAt}ms after healing`);
    w.oracles.verifyAllAcked(true);
    checkAckedApplied(w);
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
    w.log(`VIOLATION ${e.message}`);
  } finally {
    workload.stopped = true;
  }
  const leader = w.leader();
  const result: DrummerRunResult = {
    seed: opts.seed,
    swarm: w.swarm,
    violation,
    simulatedMs: w.env.nowMs(),
    workload: workload.stats,
    world: w.stats,
    repairsDone: leader?.db.state.counters.repairsDone ?? 0,
    decisions: (leader?.db.state.nextDecisionId ?? 1) - 1,
    ackedWrites: w.oracles.acked.length,
    linearizability,
    traceDigest: w.traceDigest,
  };
  await w.shutdown();
  return result;
}

/** Drummers up, a leader, shards defined and bootstrapped through the API, NodeHosts up, shards placed. */
async function setup(w: DrummerWorld): Promise<void> {
  for (const d of w.drummers) await w.startDrummer(d);
  for (const h of w.hosts) await w.startHost(h);
  const call = async (method: "CreateShard" | "Bootstrap", req: Record<string, unknown>) => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const d = w.drummers[attempt % 3]!;
      const p = w.fetchFrom("10.3.0.1:1")(
        `http://${d.apiAddress}/longboat.drummer.v1.DrummerService/${method}`,
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(req),
        },
      );
      let res: Response | null = null;
      p.then(
        (r) => (res = r),
        () => (res = new Response(null, { status: 599 })),
      );
      while (res === null) await step(w);
      const r = res as Response;
      if (r.status === 200) return;
      const body =
        r.status === 599 ? { code: "unavailable" } : ((await r.json()) as { code: string; message: string });
      if (body.code === "already_exists" || (body.code === "failed_precondition" && method === "Bootstrap"))
        return;
      if (body.code !== "unavailable" && body.code !== "deadline_exceeded") {
        throw new DrummerCallError(body.code, JSON.stringify(body), d.apiAddress);
      }
      for (let i = 0; i < 25; i++) await step(w);
    }
    throw new SimViolation("convergence", `${method} never succeeded`);
  };
  for (let shardId = 1; shardId <= w.swarm.shardCount; shardId++)
    await call("CreateShard", { shardId, app: "kv", replicaCount: 3 });
  await call("Bootstrap", {});
  for (let t = 0; t < 10_000 && !placed(w); t += STEP_MS) await step(w);
  if (!placed(w)) throw new SimViolation("convergence", `shards not placed within 10 s: ${report(w)}`);
  w.startMs = w.env.nowMs();
  w.log("setup done: every shard placed and running");
}

async function step(w: DrummerWorld): Promise<void> {
  w.env.advance(STEP_MS);
  await drain();
  w.check();
}

async function phase(
  w: DrummerWorld,
  workload: Workload,
  durationMs: number,
  done: () => boolean,
): Promise<boolean> {
  for (let t = 0; t < durationMs; t += STEP_MS) {
    w.env.advance(STEP_MS);
    await drain();
    workload.probeNewLeaders();
    await w.injectFaults();
    w.check();
    if (done()) return true;
  }
  return false;
}

function placed(w: DrummerWorld): boolean {
  const views = w.leader()?.db.state.views;
  if (!views || views.size < w.swarm.shardCount) return false;
  for (const v of views.values()) {
    for (const m of v.members) {
      const h = w.hosts.find((x) => x.address === m.raftAddress);
      if (!h?.nh || w.appliedOn(h, v.shardId) === null) return false;
    }
  }
  return true;
}

/** Every shard whole on live hosts, nothing in flight, every member applied up to the leader's commit with equal hashes. */
function converged(w: DrummerWorld): boolean {
  const leader = w.leader();
  if (!leader || w.drummers.some((d) => d.drummer === null)) return false;
  const s = leader.db.state;
  if (s.inFlight.size > 0 || s.repairing.size > 0 || s.views.size < w.swarm.shardCount) return false;
  for (const v of s.views.values()) {
    if (v.members.length !== 3) return false;
    let commit = -1;
    const applied: { index: number; hash: string }[] = [];
    for (const m of v.members) {
      const h = w.hosts.find((x) => x.address === m.raftAddress);
      if (!h?.nh || h.dead) return false;
      const info = h.nh.getNodeHostInfo({ skipLogInfo: true }).shards.find((x) => x.shardId === v.shardId);
      if (!info || info.replicaId !== m.replicaId) return false;
      if (info.isLeader) commit = info.commitIndex;
      const sh = h.nh.stateHash(v.shardId);
      applied.push({ index: sh.appliedIndex, hash: sh.hash });
    }
    if (commit < w.oracles.highestAcked(v.shardId)) return false;
    if (applied.some((a) => a.index !== commit || a.hash !== applied[0]!.hash)) return false;
  }
  return true;
}

/** After convergence, every member applied every acknowledged write of its shard. */
function checkAckedApplied(w: DrummerWorld): void {
  for (const a of w.oracles.acked) {
    for (const h of w.running()) {
      const applied = w.appliedOn(h, a.shardId);
      if (applied !== null && applied < a.index) {
        throw new SimViolation(
          "acked",
          `${a.what} acknowledged at index ${a.index} but host ${h.index} applied only ${applied}`,
        );
      }
    }
  }
}

function report(w: DrummerWorld): string {
  const leader = w.leader();
  if (!leader) return "no drummer leads";
  const s = leader.db.state;
  const shards = [...s.views.values()].map(
    (v) => `shard ${v.shardId}: ${v.members.map((m) => `${m.replicaId}@${m.raftAddress}`).join(" ")}`,
  );
  const inFlight = [...s.inFlight.values()].map(
    (d) => `decision ${d.decisionId} kind ${d.kind} shard ${d.shardId} replica ${d.replicaId}`,
  );
  const problems = [...leader.loop.problems.values()].map((p) => p.message);
  return [
    ...shards,
    `in flight: ${inFlight.join(", ") || "none"}`,
    `repairing: ${[...s.repairing].join(",") || "none"}`,
    ...problems,
  ].join("; ");
}

export function summarizeDrummerRuns(results: DrummerRunResult[], wallMs: number): string {
  const sum = (f: (r: DrummerRunResult) => number) => results.reduce((a, r) => a + f(r), 0);
  return (
    `drummer sim: ${results.length} seeds, ${(sum((r) => r.simulatedMs) / 3_600_000).toFixed(3)} simulated hours, ` +
    `${sum((r) => r.workload.invoked)} client operations (${sum((r) => r.ackedWrites)} acknowledged writes), ` +
    `${results.filter((r) => r.violation).length} violations; ${sum((r) => r.world.hostKills)} hosts dead for good, ` +
    `${sum((r) => r.repairsDone)} shard repairs, ${sum((r) => r.world.drummerCrashesMidRepair)} leader crashes mid-repair, ` +
    `${sum((r) => r.world.hostBounces)} hosts bounced, ${sum((r) => r.world.leaderIsolations)} leaders cut off, ` +
    `${sum((r) => r.world.apiCallsLost)} API calls lost, ${sum((r) => r.decisions)} decisions; ${(wallMs / 1000).toFixed(1)}s wall`
  );
}
