import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualEnv } from "../../src/env.ts";
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import type { LogDB } from "../../src/logdb/types.ts";
import { cmdOf, lastOf, modelAfter, type ShardModel } from "./crash-model.ts";

/** Batches the child keeps queued in async mode (crash-child.ts). */
const ASYNC_AHEAD = 2;

/**
 * Real processes, real kill -9: a child writes batches and prints each acknowledged one;
 * the parent kills it at a random moment, reopens the database and checks that it holds
 * exactly the state after some batch c with c = last acknowledged or c = the one in flight.
 * LONGBOAT_CRASH_KILLS=500 runs a longer soak (default 50 kills, ~10 s).
 */
const KILLS = Number(process.env.LONGBOAT_CRASH_KILLS ?? 50);
const SEED = Number(process.env.LONGBOAT_CRASH_SEED ?? 20261124);
const root = mkdtempSync(join(tmpdir(), "longboat-crash-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const IDENTITY = { raftAddress: "crash:1", deploymentId: 1, formatVersion: 1 };
const CHILD = join(import.meta.dir, "crash-child.ts");

/** Runs the child until it printed `minAcks` acks, then waits delayMs and kills it with SIGKILL. */
async function runAndKill(dir: string, minAcks: number, delayMs: number, mode: string): Promise<number> {
  const proc = Bun.spawn([process.execPath, CHILD, dir, "1000000", mode], {
    stdout: "pipe",
    stderr: "inherit",
  });
  let text = "";
  let acked = -1;
  let seen = 0;
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  const pump = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      text += decoder.decode(value, { stream: true });
      const lines = text.split("\n");
      text = lines.pop() as string;
      for (const line of lines) {
        const [word, n] = line.split(" ");
        if (word === "ack" || word === "start") acked = Number(n);
        if (word === "ack") seen++;
      }
    }
  })();
  const startMs = performance.now();
  while (seen < minAcks && performance.now() - startMs < 10_000 && proc.exitCode === null) await Bun.sleep(1);
  await Bun.sleep(delayMs);
  proc.kill(9);
  await proc.exited;
  await pump;
  return acked;
}

function verify(db: LogDB, model: ShardModel[], committed: number): void {
  model.forEach((m, i) => {
    const key = { shardId: i + 1, replicaId: 1 };
    const ls = db.readLogState(key);
    expect(ls.state).toEqual(
      committed === 0 ? { term: 0, vote: 0, commit: 0 } : { term: committed, vote: i + 1, commit: committed },
    );
    expect(ls.snapshot?.index ?? 0).toBe(m.snapshotIndex);
    expect(ls.firstIndex).toBe(m.first);
    expect(ls.lastIndex).toBe(lastOf(m));
    // The tail holds every overwrite; a sample of the rest checks the older entries.
    const tailFrom = Math.max(m.first, lastOf(m) - 63);
    const want: number[] = [];
    for (let idx = m.first; idx <= lastOf(m); idx++) if (idx >= tailFrom || idx % 37 === 0) want.push(idx);
    for (const idx of want) {
      const e = db.entries(key, idx, idx + 1, 1 << 20)[0];
      const k = idx - m.first;
      expect(e?.term).toBe(m.terms[k] as number);
      expect(e?.cmd).toEqual(cmdOf(m.batches[k] as number, i + 1, idx));
    }
    expect(db.term(key, lastOf(m) + 1)).toBeUndefined();
  });
}

/**
 * Kills the child `kills` times; after each kill the database must hold exactly the state after
 * some batch c with acked ≤ c ≤ acked + ahead (ahead: how many batches may be in flight).
 */
async function killRepeatedly(mode: "sync" | "async", kills: number, ahead: number, seed: number) {
  const env = new ManualEnv(seed);
  const dir = join(root, `db-${mode}`);
  let acked = 0;
  const outcomes = { inFlightCommitted: 0, inFlightLost: 0 };
  for (let kill = 0; kill < kills; kill++) {
    // One kill in eight lands while the child is still opening the database.
    const early = env.nextInt(8) === 0;
    const lastAck = await runAndKill(dir, early ? 0 : 1, early ? env.nextInt(30) : env.nextInt(40), mode);
    acked = Math.max(acked, lastAck);
    const db = openSqliteLogDB({ dir, identity: IDENTITY });
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

test(`after ${KILLS} kill -9s at random moments every acknowledged batch is present and nothing beyond the torn one`, async () => {
  await killRepeatedly("sync", KILLS, 1, SEED);
}, 120_000);

test(`with the writer Worker (saveUpdatesAsync, ${ASYNC_AHEAD} batches queued), after ${Math.ceil(KILLS / 2)} kill -9s every batch whose done ran is present`, async () => {
  await killRepeatedly("async", Math.ceil(KILLS / 2), ASYNC_AHEAD, SEED + 1);
}, 120_000);
