import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualEnv } from "../../src/env.ts";
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { modelAfter } from "./crash-model.ts";
import { currentTest, parkIfEnded } from "../support/resources.ts";
import { CRASH_IDENTITY, KILL_WALL_MS_MAX, runAndKill, verify } from "./crash-run.ts";

/** Batches the child keeps queued in async mode (crash-child.ts). */
const ASYNC_AHEAD = 2;

/**
 * Real processes, real kill -9: a child writes batches and prints each acknowledged one;
 * the parent kills it at a random moment, reopens the database and checks that it holds
 * exactly the state after some batch c with c = last acknowledged or c = the one in flight.
 * LONGBOAT_CRASH_KILLS=500 runs a longer soak (default 50 kills, ~10 s).
 *
 * What this test cannot see: a missing fsync. kill -9 ends the process, not the machine: the
 * kernel's page cache keeps every write the child made, synced or not, so a database that
 * never called fsync passes here. powerloss.test.ts runs the same workload under a layer that
 * loses unsynced writes at the kill (faultfs.c), and fails when an fsync is missing.
 */
const KILLS = Number(process.env.LONGBOAT_CRASH_KILLS ?? 50);
const SEED = Number(process.env.LONGBOAT_CRASH_SEED ?? 20261124);
const root = mkdtempSync(join(tmpdir(), "longboat-crash-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * Kills the child `kills` times; after each kill the database must hold exactly the state after
 * some batch c with acked ≤ c ≤ acked + ahead (ahead: how many batches may be in flight).
 */
async function killRepeatedly(mode: "sync" | "async", kills: number, ahead: number, seed: number) {
  const env = new ManualEnv(seed);
  const dir = join(root, `db-${mode}`);
  let acked = 0;
  const outcomes = { inFlightCommitted: 0, inFlightLost: 0 };
  const token = currentTest();
  for (let kill = 0; kill < kills; kill++) {
    await parkIfEnded(token); // a timed-out run must not go on killing children beside the next tests
    // One kill in eight lands while the child is still opening the database.
    const early = env.nextInt(8) === 0;
    const lastAck = await runAndKill(dir, early ? 0 : 1, early ? env.nextInt(30) : env.nextInt(40), { mode });
    acked = Math.max(acked, lastAck);
    const db = openSqliteLogDB({ dir, identity: CRASH_IDENTITY });
    try {
      const committed = db.readLogState({ shardId: 1, replicaId: 1 }).state.commit;
      // Durable: every acknowledged batch. Atomic: only whole batches of those in flight beyond it.
      expect(committed >= acked && committed <= acked + ahead).toBe(true);
      if (committed > acked) outcomes.inFlightCommitted++;
      else outcomes.inFlightLost++;
      verify(db, modelAfter(committed), committed);
      acked = committed;
    } finally {
      db.close();
    }
  }
  console.log(
    `crash test (${mode}): ${kills} kills, ${acked} batches committed, in-flight batch committed ${outcomes.inFlightCommitted}×, lost ${outcomes.inFlightLost}×`,
  );
}

test(
  `after ${KILLS} kill -9s at random moments every acknowledged batch is present and nothing beyond the torn one`,
  async () => {
    await killRepeatedly("sync", KILLS, 1, SEED);
  },
  KILLS * KILL_WALL_MS_MAX,
);

test(
  `with the writer Worker (saveUpdatesAsync, ${ASYNC_AHEAD} batches queued), after ${Math.ceil(KILLS / 2)} kill -9s every batch whose done ran is present`,
  async () => {
    await killRepeatedly("async", Math.ceil(KILLS / 2), ASYNC_AHEAD, SEED + 1);
  },
  Math.ceil(KILLS / 2) * KILL_WALL_MS_MAX,
);
