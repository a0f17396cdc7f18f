/**
 * The simulator's self-test: each planted bug (src/engine/bugs.ts, passed to every NodeHost as
 * the test-only option expert.plantedBug) must be caught by some oracle within the default
 * seed budget, the seeds CI runs. A bug the simulator cannot catch means an oracle or a fault
 * is missing.
 *
 *   npx bun test test/sim/planted.test.ts
 *   LONGBOAT_SIM_BUG=stale-read LONGBOAT_SIM_SEED=<n> npx bun test test/sim/sim.test.ts   # replay a catch
 */
import { expect, test } from "bun:test";
import { PLANTED_BUGS, type PlantedBug } from "../../src/engine/bugs.ts";
import { SIM_SEED_WALL_MS } from "../support/limits.ts";
import { DEFAULT_SEED_COUNT, replayCommand, runSeed } from "./run.ts";

/** Runs seeds 1, 2, … with the bug on until an oracle fires; null when none did within the budget. */
async function firstCatch(bug: PlantedBug): Promise<{ seed: number; oracle: string } | null> {
  for (let seed = 1; seed <= DEFAULT_SEED_COUNT; seed++) {
    const r = await runSeed({ seed, bug });
    if (r.violation) {
      const replay = replayCommand(seed, bug);
      const first = r.violation.message.split("\n")[0];
      process.stderr.write(`planted bug ${bug}: caught by seed ${seed}: ${first}\n  replay: ${replay}\n`);
      return { seed, oracle: r.violation.oracle };
    }
  }
  return null;
}

for (const bug of PLANTED_BUGS) {
  test(
    `the simulator catches the planted bug ${bug} within ${DEFAULT_SEED_COUNT} seeds`,
    async () => {
      const caught = await firstCatch(bug);
      expect(caught).not.toBeNull();
    },
    DEFAULT_SEED_COUNT * SIM_SEED_WALL_MS,
  );
}
