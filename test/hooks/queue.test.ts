// The ordering rules of leader-change hooks, on a virtual clock with a scripted runner.
import { describe, expect, test } from "bun:test";
import { ManualEnv } from "../../src/env.ts";
import {
  type HookOutcome,
  HookQueue,
  type HookQueueOptions,
  type LeaderChange,
} from "../../src/hooks/queue.ts";

const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Run {
  change: LeaderChange;
  attempt: number;
  signal: AbortSignal;
  startedMs: number;
  finish: (o: HookOutcome) => void;
}

/** A queue whose runner records each run and lets the test finish it. */
function setup(opts: Partial<HookQueueOptions> = {}) {
  const env = new ManualEnv(7);
  const runs: Run[] = [];
  const logs: Record<string, unknown>[] = [];
  const q = new HookQueue({
    name: "test",
    env,
    timeoutMs: 1000,
    maxAttempts: 1,
    run: (change, attempt, signal) =>
      new Promise((resolve) =>
        runs.push({ change, attempt, signal, startedMs: env.nowMs(), finish: resolve }),
      ),
    log: (e) => void logs.push(e),
    ...opts,
  });
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t++) {
      env.advance(1);
      await drain();
    }
    await drain();
  };
  return { env, q, runs, logs, advance };
}

const change = (shardId: number, term: number, role: LeaderChange["role"] = "leader"): LeaderChange => ({
  shardId,
  replicaId: 1,
  term,
  leaderId: role === "leader" ? 1 : role === "follower" ? 2 : 0,
  role,
});
const label = (r: Run) => `${r.change.shardId}:${r.change.role}/${r.change.term}#${r.attempt}`;

describe("HookQueue", () => {
  test("one run at a time per shard, in order; shards run side by side", async () => {
    const { q, runs, advance } = setup();
    q.offer(change(1, 5, "follower"));
    q.offer(change(2, 3));
    q.offer(change(1, 6));
    expect(runs.map(label)).toEqual(["1:follower/5#1", "2:leader/3#1"]);
    runs[0]!.finish({ ok: true });
    await advance(1);
    expect(runs.map(label)).toEqual(["1:follower/5#1", "2:leader/3#1", "1:leader/6#1"]);
  });

  test("a newer event replaces the queued one (superseded); the running one finishes first", async () => {
    const { q, runs, logs, advance } = setup();
    q.offer(change(1, 5));
    q.offer(change(1, 5, "none"));
    q.offer(change(1, 6, "follower"));
    q.offer(change(1, 7));
    runs[0]!.finish({ ok: true });
    await advance(1);
    expect(runs.map(label)).toEqual(["1:leader/5#1", "1:leader/7#1"]);
    expect(q.stats.superseded).toBe(2);
    expect(logs.filter((l) => l.event === "hook-superseded").map((l) => l.term)).toEqual([5, 6]);
  });

  test("an event with a lower term than one already taken is dropped as stale", async () => {
    const { q, runs, advance } = setup();
    q.offer(change(1, 8));
    runs[0]!.finish({ ok: true });
    await advance(1);
    q.offer(change(1, 7, "follower"));
    expect(runs).toHaveLength(1);
    expect(q.stats.stale).toBe(1);
    q.offer(change(1, 8, "none")); // the same term is not stale
    expect(runs.map(label)).toEqual(["1:leader/8#1", "1:none/8#1"]);
  });

  test("a run past the timeout is aborted and the next one starts when it settles", async () => {
    const { q, runs, advance } = setup({ timeoutMs: 500 });
    q.offer(change(1, 5));
    q.offer(change(1, 6, "none"));
    await advance(499);
    expect(runs[0]!.signal.aborted).toBe(false);
    await advance(1);
    expect(runs[0]!.signal.aborted).toBe(true);
    expect(q.stats.timedOut).toBe(1);
    runs[0]!.finish({ ok: false, retry: false, detail: { signal: "SIGTERM" } });
    await advance(1);
    expect(runs.map(label)).toEqual(["1:leader/5#1", "1:none/6#1"]);
  });

  test("a run that ignores the abort is abandoned abandonAfterMs later, and the shard moves on", async () => {
    const { q, runs, logs, advance } = setup({ timeoutMs: 100, abandonAfterMs: 300 });
    q.offer(change(1, 5));
    q.offer(change(1, 6, "none"));
    await advance(399);
    expect(runs).toHaveLength(1);
    await advance(1);
    expect(runs.map(label)).toEqual(["1:leader/5#1", "1:none/6#1"]);
    expect(logs.find((l) => l.event === "hook-failed")?.error).toContain("abandoned");
    runs[0]!.finish({ ok: true }); // settling late changes nothing
    await advance(1);
    expect(runs).toHaveLength(2);
  });

  test("a failed run is retried with growing delays up to maxAttempts, then given up", async () => {
    const env = new ManualEnv(3);
    const startedMs: number[] = [];
    const logs: Record<string, unknown>[] = [];
    const q = new HookQueue({
      name: "t",
      env,
      timeoutMs: 1000,
      maxAttempts: 4,
      backoffMsInitial: 100,
      backoffMsMax: 250,
      run: async () => {
        startedMs.push(env.nowMs());
        return { ok: false, retry: true, detail: { status: 503 } };
      },
      log: (e) => void logs.push(e),
    });
    q.offer(change(1, 5));
    for (let t = 0; t < 2000; t++) {
      env.advance(1);
      await drain();
    }
    expect(startedMs).toHaveLength(4);
    const gaps = [1, 2, 3].map((i) => startedMs[i]! - startedMs[i - 1]!);
    // 100, 200, then capped at 250, each ±25 %.
    expect(gaps[0]).toBeGreaterThanOrEqual(75);
    expect(gaps[0]).toBeLessThanOrEqual(125);
    expect(gaps[1]).toBeGreaterThanOrEqual(150);
    expect(gaps[1]).toBeLessThanOrEqual(250);
    expect(gaps[2]).toBeGreaterThanOrEqual(187);
    expect(gaps[2]).toBeLessThanOrEqual(313);
    expect(logs.at(-1)).toMatchObject({ event: "hook-gave-up", attempts: 4 });
    expect(q.idle).toBe(true);
  });

  test("a failure that must not be retried is not", async () => {
    const { q, runs, advance } = setup({ maxAttempts: 5 });
    q.offer(change(1, 5));
    runs[0]!.finish({ ok: false, retry: false, detail: { status: 409 } });
    await advance(60_000);
    expect(runs).toHaveLength(1);
    expect(q.idle).toBe(true);
  });

  test("a newer event during a retry delay supersedes the retry and runs at once", async () => {
    const { q, runs, advance } = setup({ maxAttempts: 5, backoffMsInitial: 1000 });
    q.offer(change(1, 5));
    runs[0]!.finish({ ok: false, retry: true, detail: {} });
    await advance(10);
    q.offer(change(1, 5, "none"));
    expect(runs.map(label)).toEqual(["1:leader/5#1", "1:none/5#1"]);
    runs[1]!.finish({ ok: true });
    await advance(2000);
    expect(runs).toHaveLength(2);
  });

  test("a runner that throws counts as a failed run", async () => {
    const env = new ManualEnv(1);
    const logs: Record<string, unknown>[] = [];
    const q = new HookQueue({
      name: "t",
      env,
      timeoutMs: 100,
      maxAttempts: 1,
      run: () => {
        throw new Error("spawn failed");
      },
      log: (e) => void logs.push(e),
    });
    q.offer(change(1, 5));
    await drain();
    expect(logs.at(-1)).toMatchObject({ event: "hook-failed", error: "Error: spawn failed" });
    expect(q.idle).toBe(true);
  });

  test("whenIdle resolves after the last run settles", async () => {
    const { q, runs, advance } = setup();
    let idle = false;
    q.offer(change(1, 5));
    void q.whenIdle().then(() => {
      idle = true;
    });
    await advance(1);
    expect(idle).toBe(false);
    runs[0]!.finish({ ok: true });
    await advance(1);
    expect(idle).toBe(true);
  });

  test("bad options are refused", () => {
    const base = {
      name: "t",
      env: new ManualEnv(1),
      run: async () => ({ ok: true }) as const,
      log: () => {},
    };
    expect(() => new HookQueue({ ...base, timeoutMs: 0, maxAttempts: 1 })).toThrow("timeoutMs");
    expect(() => new HookQueue({ ...base, timeoutMs: 1, maxAttempts: 0 })).toThrow("maxAttempts");
  });
});
