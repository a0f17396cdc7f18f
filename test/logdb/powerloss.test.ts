import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualEnv } from "../../src/env.ts";
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { modelAfter } from "./crash-model.ts";
import { currentTest, parkIfEnded } from "../support/resources.ts";
import { CRASH_IDENTITY, KILL_WALL_MS_MAX, runAndKill, verify } from "./crash-run.ts";
import { buildFaultFs, type FaultFsRun, faultFsEnv, powerLoss } from "./faultfs.ts";

/**
 * The crash test of crash.test.ts with power losses instead of process kills. The child runs
 * under faultfs.c, an LD_PRELOAD layer that logs every write to the log database's files
 * since their last fsync; after the kill, faultfs.ts undoes the unsynced writes after a random
 * prefix (and the directory's unsynced creates and unlinks), as a power loss could. Then the
 * same properties must hold: every acknowledged batch is there, nothing beyond the one in
 * flight, no corruption (openSqliteLogDB runs quick_check). A log database that skips an
 * fsync fails it: the second test removes every fsync (FAULTFS_DROP_SYNC) and expects a loss.
 * LONGBOAT_POWERLOSS_KILLS=300 runs a longer soak (default 30).
 */
const KILLS = Number(process.env.LONGBOAT_POWERLOSS_KILLS ?? 30);
const SEED = Number(process.env.LONGBOAT_POWERLOSS_SEED ?? 20261125);
const root = mkdtempSync(join(tmpdir(), "longboat-powerloss-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const so = buildFaultFs(root);

function freshRun(name: string): FaultFsRun {
  const dir = join(root, name, "db");
  mkdirSync(dir, { recursive: true });
  return { dir, log: join(root, name, "undo.log"), grave: join(root, name, "grave") };
}

type Outcome = { kind: "ok"; committed: number } | { kind: "lost" | "beyond" | "corrupt"; detail: string };

/** One kill and power loss; what the reopened database holds against what was acknowledged. */
async function killOnce(
  run: FaultFsRun,
  env: ManualEnv,
  acked: number,
  dropSync: boolean,
  mode: "sync" | "async" = "sync",
): Promise<{ lastAck: number; outcome: Outcome; undone: number }> {
  const early = env.nextInt(8) === 0;
  const lastAck = await runAndKill(run.dir, early ? 0 : 1, early ? env.nextInt(30) : env.nextInt(40), {
    mode,
    env: faultFsEnv(so, run, dropSync),
  });
  const loss = powerLoss(run, env);
  const undone = loss.writesUndone + loss.namesUndone;
  const ackedNow = Math.max(acked, lastAck);
  let db: ReturnType<typeof openSqliteLogDB>;
  try {
    db = openSqliteLogDB({ dir: run.dir, identity: CRASH_IDENTITY });
  } catch (e) {
    return { lastAck: ackedNow, outcome: { kind: "corrupt", detail: String(e) }, undone };
  }
  try {
    const committed = db.readLogState({ shardId: 1, replicaId: 1 }).state.commit;
    if (committed < ackedNow)
      return {
        lastAck: ackedNow,
        outcome: { kind: "lost", detail: `batch ${ackedNow} acknowledged, ${committed} on disk` },
        undone,
      };
    // Atomic: whole batches only, of those in flight (one; two queued with the writer Worker).
    if (committed > ackedNow + (mode === "async" ? 2 : 1))
      return {
        lastAck: ackedNow,
        outcome: { kind: "beyond", detail: `${committed} on disk, ${ackedNow} acknowledged` },
        undone,
      };
    try {
      verify(db, modelAfter(committed), committed);
    } catch (e) {
      return { lastAck: ackedNow, outcome: { kind: "corrupt", detail: String(e).slice(0, 300) }, undone };
    }
    return { lastAck: ackedNow, outcome: { kind: "ok", committed }, undone };
  } finally {
    db.close();
  }
}

async function powerLossRepeatedly(mode: "sync" | "async", kills: number, seed: number): Promise<void> {
  const env = new ManualEnv(seed);
  const run = freshRun(`synced-${mode}`);
  let acked = 0;
  const stats = { inFlightCommitted: 0, undone: 0 };
  const token = currentTest();
  for (let kill = 0; kill < kills; kill++) {
    await parkIfEnded(token); // a timed-out run must not go on killing children beside the next tests
    const r = await killOnce(run, env, acked, false, mode);
    if (r.outcome.kind !== "ok") throw new Error(`kill ${kill}: ${r.outcome.kind}: ${r.outcome.detail}`);
    if (r.outcome.committed > r.lastAck) stats.inFlightCommitted++;
    stats.undone += r.undone;
    acked = r.outcome.committed;
  }
  console.log(
    `power-loss test (${mode}): ${kills} kills, ${acked} batches committed, in-flight batch committed ${stats.inFlightCommitted}×, ${stats.undone} unsynced writes or names undone`,
  );
  // The layer did see unsynced writes to throw away (the batch in flight at each kill).
  expect(stats.undone).toBeGreaterThan(0);
}

test(
  `after ${KILLS} power losses at random moments every acknowledged batch is present, nothing beyond the one in flight, no corruption`,
  async () => {
    await powerLossRepeatedly("sync", KILLS, SEED);
  },
  Math.max(180_000, KILLS * KILL_WALL_MS_MAX),
);

test(
  `with the writer Worker (saveUpdatesAsync), after ${Math.ceil(KILLS / 2)} power losses every batch whose done ran is present`,
  async () => {
    await powerLossRepeatedly("async", Math.ceil(KILLS / 2), SEED + 2);
  },
  Math.max(180_000, Math.ceil(KILLS / 2) * KILL_WALL_MS_MAX),
);

test("a log database whose fsyncs are removed loses acknowledged batches here (the test can fail)", async () => {
  const env = new ManualEnv(SEED + 1);
  const run = freshRun("unsynced");
  let acked = 0;
  const failures: string[] = [];
  for (let kill = 0; kill < 10 && failures.length === 0; kill++) {
    const r = await killOnce(run, env, acked, true);
    if (r.outcome.kind === "ok") acked = r.outcome.committed;
    else failures.push(`${r.outcome.kind}: ${r.outcome.detail}`);
  }
  console.log(`power-loss self-test without fsync: ${failures[0] ?? "nothing lost"}`);
  expect(failures.length).toBeGreaterThan(0);
}, 120_000);
