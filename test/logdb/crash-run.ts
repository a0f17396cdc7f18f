import { expect } from "bun:test";
import { join } from "node:path";
import { LOGDB_FORMAT_VERSION, type LogDB } from "../../src/logdb/types.ts";
import { track } from "../support/resources.ts";
import { cmdOf, lastOf, type ShardModel } from "./crash-model.ts";

/** Shared by crash.test.ts (kill -9) and powerloss.test.ts (kill -9 plus a power loss). */
export const CRASH_IDENTITY = {
  raftAddress: "crash:1",
  deploymentId: 1,
  formatVersion: LOGDB_FORMAT_VERSION,
};
const CHILD = join(import.meta.dir, "crash-child.ts");
/**
 * Wall-clock bound per kill, for the tests' limits: a child's start (bun, transpiling, opening
 * SQLite) takes about 0.2 s on an idle 2-core machine and up to 20× that under load.
 */
export const KILL_WALL_MS_MAX = 5_000;
/** How long the parent waits for the child's acknowledgements before it kills it anyway. */
const ACK_WAIT_MS_MAX = 10_000;

/**
 * Runs crash-child.ts over dir until it printed minAcks acks, then waits delayMs and kills it
 * with SIGKILL; returns the last batch it acknowledged (or started from). mode "async" writes
 * through the writer Worker (saveUpdatesAsync); env is added to the child's environment.
 */
export async function runAndKill(
  dir: string,
  minAcks: number,
  delayMs: number,
  opts: { mode?: "sync" | "async"; env?: Record<string, string> } = {},
): Promise<number> {
  const env = opts.env ?? {};
  const proc = Bun.spawn([process.execPath, CHILD, dir, "1000000", opts.mode ?? "sync"], {
    stdout: "pipe",
    stderr: "inherit",
    env: { ...process.env, ...env },
  });
  const tracked = track(`crash child ${proc.pid}`, () => proc.kill(9));
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
  while (seen < minAcks && performance.now() - startMs < ACK_WAIT_MS_MAX && proc.exitCode === null)
    await Bun.sleep(1);
  await Bun.sleep(delayMs);
  proc.kill(9);
  await proc.exited;
  await pump;
  tracked.release();
  return acked;
}

/** The database holds exactly the model after batch `committed` (state, snapshot, entries). */
export function verify(db: LogDB, model: ShardModel[], committed: number): void {
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
