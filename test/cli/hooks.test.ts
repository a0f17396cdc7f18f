// The process-level half of leader-change hooks: commands really spawned, webhooks really POSTed.
import { afterEach, describe, expect, test } from "bun:test";
import { withFreePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CommandLineError,
  commandRunner,
  HOOK_OUTPUT_BYTES_MAX,
  hookEnvironment,
  type RunningHooks,
  splitCommandLine,
  startHooks,
  webhookRunner,
} from "../../src/cli/hooks.ts";
import { realEnv } from "../../src/env.ts";
import { HookQueue, type LeaderChange } from "../../src/hooks/queue.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { builtinApps, encodeKvCommand } from "../../src/index.ts";

const leader: LeaderChange = { shardId: 3, replicaId: 2, term: 7, leaderId: 2, role: "leader" };
const never = new AbortController().signal;

/** Serves fetch on a port from the test allocator (below 32768); stopped when the test ends. */
async function serveLow(fetch: (req: Request) => Response | Promise<Response>) {
  const server = await withFreePort((port) => Bun.serve({ hostname: "127.0.0.1", port, fetch }));
  track(`hook receiver on ${server.port}`, () => server.stop(true));
  return server;
}

/** A NodeHost whose raft address has a port from the test allocator; stopped when the test ends. */
async function nodeHostOnLowPort(dir: string): Promise<NodeHost> {
  return withFreePort(async (port) => {
    const nh = new NodeHost({
      nodeHostDir: join(dir, `nh-${port}`),
      raftAddress: `127.0.0.1:${port}`,
      rttMs: 10,
    });
    const tracked = track(`NodeHost 127.0.0.1:${port}`, () => nh.stop());
    try {
      await nh.ready;
      return nh;
    } catch (error) {
      tracked.release();
      await nh.stop().catch(() => {});
      throw error;
    }
  });
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await Bun.sleep(5);
  }
}

describe("splitCommandLine", () => {
  test("splits on whitespace and keeps quoted words whole, expanding nothing", () => {
    expect(splitCommandLine('  ./hook.sh  --name \'a b\'  "c \\"d\\"" e\\ f $HOME *  ')).toEqual([
      "./hook.sh",
      "--name",
      "a b",
      'c "d"',
      "e f",
      "$HOME",
      "*",
    ]);
    expect(splitCommandLine("x ''")).toEqual(["x", ""]);
  });

  test("refuses an unclosed quote, a lone trailing backslash and an empty command", () => {
    expect(() => splitCommandLine("run 'oops")).toThrow(CommandLineError);
    expect(() => splitCommandLine("run 'oops")).toThrow("unclosed ' quote");
    expect(() => splitCommandLine("run \\")).toThrow("lone backslash");
    expect(() => splitCommandLine("   ")).toThrow("empty");
  });
});

describe("commandRunner", () => {
  test("the command gets LONGBOAT_SHARD, _REPLICA, _TERM, _LEADER, _ROLE; output and exit code come back", async () => {
    const run = commandRunner({
      command:
        'echo "$LONGBOAT_SHARD $LONGBOAT_REPLICA $LONGBOAT_TERM $LONGBOAT_LEADER $LONGBOAT_ROLE"; echo oops >&2',
      shell: true,
      raftAddress: "h1:7001",
    });
    const outcome = await run(leader, 1, never);
    expect(outcome).toEqual({
      ok: true,
      detail: { exitCode: 0, signal: undefined, stdout: "3 2 7 2 leader\n", stderr: "oops\n" },
    });
  });

  test("without --on-leader-change-shell the words are arguments: nothing is expanded", async () => {
    const run = commandRunner({
      command: "/bin/echo '$LONGBOAT_TERM' a\\ b",
      shell: false,
      raftAddress: "h1",
    });
    const outcome = await run(leader, 1, never);
    expect(outcome.detail?.stdout).toBe("$LONGBOAT_TERM a b\n");
  });

  test("a non-zero exit is a failure that is not retried", async () => {
    const run = commandRunner({ command: "echo bad >&2; exit 3", shell: true, raftAddress: "h1" });
    expect(await run(leader, 1, never)).toMatchObject({
      ok: false,
      retry: false,
      detail: { exitCode: 3, stderr: "bad\n" },
    });
  });

  test("a command that cannot start is a failure naming it", async () => {
    const run = commandRunner({ command: "/no/such/hook", shell: false, raftAddress: "h1" });
    await expect(run(leader, 1, never)).rejects.toThrow();
  });

  test(`output beyond ${HOOK_OUTPUT_BYTES_MAX} bytes is cut and counted`, async () => {
    const run = commandRunner({
      command: "head -c 10000 /dev/zero | tr '\\0' x",
      shell: true,
      raftAddress: "h1",
    });
    const stdout = String((await run(leader, 1, never)).detail?.stdout);
    expect(stdout.startsWith("x".repeat(HOOK_OUTPUT_BYTES_MAX))).toBe(true);
    expect(stdout).toContain(`(${10000 - HOOK_OUTPUT_BYTES_MAX} more bytes)`);
  });

  test("a hanging command and what it started are stopped when the timeout aborts it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "longboat-hook-"));
    try {
      const pidFile = join(dir, "child.pid");
      const run = commandRunner({
        command: `sleep 60 & echo $! > ${pidFile}; wait`,
        shell: true,
        raftAddress: "h1",
      });
      const controller = new AbortController();
      const started = performance.now();
      const outcome = run(leader, 1, controller.signal);
      await until(
        () => existsSync(pidFile) && Bun.file(pidFile).size > 0,
        5000,
        "the background child's pid",
      );
      const childPid = Number((await Bun.file(pidFile).text()).trim());
      controller.abort();
      expect(await outcome).toMatchObject({ ok: false, retry: false, detail: { signal: "SIGTERM" } });
      expect(performance.now() - started).toBeLessThan(10_000);
      // The sleep got the SIGTERM too (the whole process group): it is gone.
      await until(
        () => {
          try {
            process.kill(childPid, 0);
            return false;
          } catch {
            return true;
          }
        },
        5000,
        "the background sleep to exit",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the environment adds the raft address", () => {
    expect(hookEnvironment({ ...leader, role: "none", leaderId: 0 }, "h9:7001")).toEqual({
      LONGBOAT_SHARD: "3",
      LONGBOAT_REPLICA: "2",
      LONGBOAT_TERM: "7",
      LONGBOAT_LEADER: "0",
      LONGBOAT_ROLE: "none",
      LONGBOAT_RAFT_ADDRESS: "h9:7001",
    });
  });
});

describe("webhookRunner", () => {
  const answer =
    (status: number, body = "") =>
    async () =>
      new Response(body, { status });

  test("POSTs JSON with the term in the body and the Longboat-Term header; 2xx is success", async () => {
    let seen: { url: string; init: RequestInit } | undefined;
    const run = webhookRunner({
      url: "http://lb/leader",
      raftAddress: "h1:7001",
      fetch: async (url, init) => {
        seen = { url, init };
        return new Response(null, { status: 204 });
      },
    });
    expect(await run(leader, 1, never)).toEqual({ ok: true, detail: { status: 204 } });
    expect(seen!.url).toBe("http://lb/leader");
    expect(seen!.init.method).toBe("POST");
    expect((seen!.init.headers as Record<string, string>)["longboat-term"]).toBe("7");
    expect(JSON.parse(String(seen!.init.body))).toEqual({
      shardId: 3,
      replicaId: 2,
      term: 7,
      leaderId: 2,
      role: "leader",
      raftAddress: "h1:7001",
    });
  });

  test("5xx, 429, 408 and network errors are retried; other 4xx (a stale term's 409) are final", async () => {
    const outcome = (fetch: (u: string, i: RequestInit) => Promise<Response>) =>
      webhookRunner({ url: "http://lb", raftAddress: "h1", fetch })(leader, 1, never);
    for (const status of [500, 503, 429, 408])
      expect(await outcome(answer(status))).toMatchObject({ retry: true });
    expect(await outcome(answer(409, "stale term 7 < 9"))).toEqual({
      ok: false,
      retry: false,
      detail: { status: 409, body: "stale term 7 < 9" },
    });
    expect(
      await outcome(async () => {
        throw new TypeError("connection refused");
      }),
    ).toMatchObject({ ok: false, retry: true, detail: { error: "TypeError: connection refused" } });
  });

  test("a failing webhook is retried with backoff until it answers; changes arrive in order", async () => {
    const received: { term: number; role: string }[] = [];
    let failures = 2;
    const server = await serveLow(async (req) => {
      const body = (await req.json()) as { term: number; role: string };
      if (failures > 0) {
        failures--;
        return new Response("busy", { status: 503 });
      }
      received.push({ term: body.term, role: body.role });
      return new Response(null, { status: 200 });
    });
    try {
      const logs: Record<string, unknown>[] = [];
      const q = new HookQueue({
        name: "webhook",
        env: realEnv(),
        timeoutMs: 2000,
        maxAttempts: 10,
        backoffMsInitial: 10,
        run: webhookRunner({ url: `http://127.0.0.1:${server.port}/leader`, raftAddress: "h1" }),
        log: (e) => void logs.push(e),
      });
      q.offer(leader);
      await q.whenIdle();
      expect(logs.filter((l) => l.event === "hook-failed").map((l) => [l.attempt, l.status])).toEqual([
        [1, 503],
        [2, 503],
      ]);
      expect(logs.at(-1)).toMatchObject({ event: "hook-done", attempt: 3, status: 200 });
      q.offer({ ...leader, term: 8, role: "follower", leaderId: 1 });
      await q.whenIdle();
      expect(received).toEqual([
        { term: 7, role: "leader" },
        { term: 8, role: "follower" },
      ]);
    } finally {
      await server.stop(true);
    }
  });
});

describe("hooks on a running NodeHost", () => {
  let nh: NodeHost | undefined;
  let dir: string | undefined;
  let hooks: RunningHooks | null = null;
  afterEach(async () => {
    await hooks?.close();
    await nh?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("a hanging hook command never holds up the engine: it keeps committing", async () => {
    dir = mkdtempSync(join(tmpdir(), "longboat-hooks-nh-"));
    const marker = join(dir, "hook-ran");
    nh = await nodeHostOnLowPort(dir);
    const logs: Record<string, unknown>[] = [];
    hooks = startHooks(
      nh,
      { onLeaderChange: `touch ${marker}; sleep 60`, onLeaderChangeShell: true, hookTimeoutMs: 60_000 },
      (e) => void logs.push(e),
    );
    expect(hooks).not.toBeNull();
    await nh.startReplica(
      { 1: nh.raftAddress },
      false,
      builtinApps().get("kv"),
      { shardId: 1, replicaId: 1 },
      { app: "kv" },
    );
    await until(() => existsSync(marker), 10_000, "the hook command to start");
    const session = nh.getNoOpSession(1);
    for (let i = 0; i < 50; i++) {
      const cmd = encodeKvCommand({ op: "put", key: `k${i}`, value: new Uint8Array([i]) });
      await nh.syncPropose(session, cmd, { timeoutMs: 2000 });
    }
    expect(nh.getNodeHostInfo().shards[0]!.appliedIndex).toBeGreaterThanOrEqual(50);
    expect(logs.filter((l) => l.event === "hook-done" || l.event === "hook-failed")).toEqual([]);
  });
});
