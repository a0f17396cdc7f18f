/**
 * The deterministic simulator with drummers (docs/simulator.md, "Drummer seeds").
 *
 *   npx bun test test/sim/drummer.test.ts                                    # CI: the default seeds
 *   LONGBOAT_SIM_DRUMMER_SEEDS=1000 npx bun test test/sim/drummer.test.ts --timeout 0   # soak
 *   LONGBOAT_SIM_DRUMMER_SEED=12 npx bun test test/sim/drummer.test.ts       # one seed, trace on stderr
 */
import { expect, test } from "bun:test";
import { describeDrummerSwarm } from "./drummer-swarm.ts";
import {
  type DrummerRunResult,
  drummerReplayCommand,
  runDrummerSeed,
  summarizeDrummerRuns,
} from "./drummer-run.ts";

/** Drummer seeds CI runs. */
export const DRUMMER_SEED_COUNT = 10;

const single = process.env.LONGBOAT_SIM_DRUMMER_SEED;
const seedCount = Number(process.env.LONGBOAT_SIM_DRUMMER_SEEDS ?? DRUMMER_SEED_COUNT);
const firstSeed = Number(process.env.LONGBOAT_SIM_DRUMMER_FIRST_SEED ?? 1);

function failure(r: DrummerRunResult): string {
  return (
    `drummer seed ${r.seed} violated ${r.violation?.oracle}: ${r.violation?.message}\n` +
    `  swarm: ${describeDrummerSwarm(r.swarm)}\n  replay: ${drummerReplayCommand(r.seed)}`
  );
}

if (single !== undefined) {
  test(`drummer seed ${single} replays with a trace`, async () => {
    const r = await runDrummerSeed({
      seed: Number(single),
      trace: (line) => process.stderr.write(`${line}\n`),
    });
    process.stderr.write(`${summarizeDrummerRuns([r], 0)}\n`);
    if (r.violation) throw new Error(failure(r));
  }, 600_000);
} else {
  test("a drummer seed replays exactly: two runs give the same trace", async () => {
    const a = await runDrummerSeed({ seed: 5 });
    const b = await runDrummerSeed({ seed: 5 });
    expect(b.traceDigest).toBe(a.traceDigest);
    expect(b.workload).toEqual(a.workload);
  }, 120_000);

  test(
    `${seedCount} drummer seeds: a dead host's shards are rebuilt, the leader's crash mid-repair changes nothing, every oracle holds`,
    async () => {
      const t0 = performance.now();
      const results: DrummerRunResult[] = [];
      const failures: string[] = [];
      for (let seed = firstSeed; seed < firstSeed + seedCount; seed++) {
        const r = await runDrummerSeed({ seed });
        results.push(r);
        if (r.violation) {
          failures.push(failure(r));
          process.stderr.write(`${failure(r)}\n`);
        }
      }
      process.stderr.write(`${summarizeDrummerRuns(results, performance.now() - t0)}\n`);
      expect(failures).toEqual([]);
      expect(results.every((r) => r.world.hostKills === 1 && r.repairsDone > 0)).toBe(true);
      if (seedCount >= 10) expect(results.some((r) => r.world.drummerCrashesMidRepair > 0)).toBe(true);
    },
    Math.max(600_000, seedCount * 20_000),
  );
}
