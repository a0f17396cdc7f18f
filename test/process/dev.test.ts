// `longboat dev` with the compiled binary: the managed deployment it starts, how it stops,
// what it does with a taken port, with a child that dies and when it is killed itself.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROCESS_TEST_WALL_MS, REAL_WAIT_MS } from "../support/limits.ts";
import { freePortRange } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { alive, DRUMMERS, DevDeployment, HEALTH_OK, HOST_ALIVE, NODEHOSTS, ours } from "./dev-harness.ts";
import { BIN, cmd, ensureBinary, waitFor } from "./harness.ts";

// A deployment start waits for the drummers to listen for a dead timeout: twice the usual limit.
setDefaultTimeout(PROCESS_TEST_WALL_MS * 2);

beforeAll(() => ensureBinary());

const names = [...DRUMMERS.map((j) => `drummer-${j}`), ...NODEHOSTS.map((i) => `nodehost-${i}`)];

describe("longboat dev", () => {
  test("starts 3 drummers and 4 NodeHosts, the drummers place the shards, cmd works, SIGTERM stops all in parallel", async () => {
    const dev = new DevDeployment({ shards: 3 });
    await dev.start();
    // What runs where, as printed.
    for (const j of DRUMMERS) expect(dev.stdout).toContain(`API ${dev.drummerApi(j)}`);
    for (const i of NODEHOSTS) expect(dev.stdout).toContain(`API ${dev.nodehostApi(i)}`);
    expect(dev.stdout).toContain(`  N=${dev.nodehostApis()}\n`);
    expect(dev.stdout).toContain(`  D=${DRUMMERS.map((j) => dev.drummerApi(j)).join(",")}\n`);
    expect(dev.stdout).toContain("cmd put --nodehost $N --shard 1 greeting hello");
    expect(dev.stdout).toContain("cmd status --drummer $D");
    // The drummers' view: three kv shards of three replicas, healthy, on three of the four hosts each.
    const shards = await dev.shards();
    expect(shards.map((s) => [s.definition.shardId, s.definition.app, s.health, s.members.length])).toEqual([
      [1, "kv", HEALTH_OK, 3],
      [2, "kv", HEALTH_OK, 3],
      [3, "kv", HEALTH_OK, 3],
    ]);
    expect((await dev.hosts()).map((h) => h.state)).toEqual([HOST_ALIVE, HOST_ALIVE, HOST_ALIVE, HOST_ALIVE]);
    // The printed commands, with every NodeHost given: the client finds the hosts of the shard.
    const put = cmd(["put", "--nodehost", dev.nodehostApis(), "--shard", "1", "greeting", "hello"]);
    expect(put).toMatchObject({ code: 0 });
    expect(put.stdout).toMatch(/^ok, committed at index [0-9]+\n$/);
    for (const s of [2, 3]) {
      const other = cmd(["put", "--nodehost", dev.nodehostApis(), "--shard", String(s), "k", `v${s}`]);
      expect(other.code).toBe(0);
    }
    const got = cmd(["get", "--nodehost", dev.nodehostApis(), "--shard", "1", "greeting"]);
    expect(got).toMatchObject({ code: 0, stdout: "hello\n" });

    // cmd against the drummers sees the whole deployment healthy (exit 0).
    const status = cmd(["status", "--drummer", DRUMMERS.map((j) => dev.drummerApi(j)).join(",")]);
    expect({ code: status.code, stdout: status.stdout }).toMatchObject({ code: 0 });
    expect(status.stdout).toContain("NODEHOSTS (4: 4 alive)");
    expect(status.stdout).toContain("SHARDS (3: 3 ok)");

    const pids = names.map((n) => dev.pid(n)!);
    expect(pids.every((p) => p > 0 && alive(p))).toBe(true);
    // A second dev on the same data directory is refused; the first runs on undisturbed.
    const second = Bun.spawnSync(
      [BIN, "dev", "--data-dir", dev.dir, "--base-port", String(freePortRange(34))],
      { stdout: "pipe", stderr: "pipe", timeout: REAL_WAIT_MS },
    );
    expect([second.exitCode, second.stderr.toString()]).toEqual([
      1,
      `longboat dev: --data-dir ${dev.dir} is in use by another longboat dev (pid ${dev.proc!.pid}); stop it, or give another --data-dir\n`,
    ]);
    expect(names.map((n) => dev.pid(n))).toEqual(pids);
    expect(pids.every(alive)).toBe(true);
    expect(await dev.stop()).toBe(0);
    // Every child stopped, each reported as it ended, pid files gone.
    expect(dev.stderr).toContain(`longboat dev: stopping ${names.join(", ")}…`);
    for (const n of names) expect(dev.stderr).toMatch(new RegExp(`  ${n} stopped after \\d+\\.\\d s`));
    expect(dev.stderr).toMatch(/longboat dev: all stopped in \d+\.\d s/);
    expect(pids.filter(alive)).toEqual([]);
    expect(names.filter((n) => existsSync(join(dev.dir, `${n}.pid`)))).toEqual([]);
    // The full logs are kept per process.
    for (const n of names) expect(existsSync(join(dev.dir, `${n}.log`))).toBe(true);
    await dev.kill();
  });

  test("kill -9 of dev: its children notice and stop, freeing their ports", async () => {
    const dev = new DevDeployment({ shards: 1 });
    await dev.start();
    const pids = names.map((n) => dev.pid(n)!);
    expect(pids.every(alive)).toBe(true);
    dev.proc!.kill("SIGKILL");
    await dev.proc!.exited;
    await waitFor(() => pids.every((p) => !ours(p, dev.dir)), REAL_WAIT_MS, "dev's children to exit");
    // Every port of the layout can be listened on again.
    const ports = [
      ...NODEHOSTS.flatMap((i) => [dev.base + i, dev.base + 10 + i]),
      ...DRUMMERS.flatMap((j) => [dev.base + 20 + j, dev.base + 30 + j]),
    ];
    for (const port of ports) expect(await canListen(port)).toBe(true);
    // The next dev takes the data directory over from the one killed (here to stop at a taken port).
    const server = await listen(dev.base + 1);
    track(`listener on ${dev.base + 1}`, () => new Promise((r) => server.close(r)));
    const next = Bun.spawnSync([BIN, "dev", "--data-dir", dev.dir, "--base-port", String(dev.base)], {
      stdout: "pipe",
      stderr: "pipe",
      timeout: REAL_WAIT_MS,
    });
    expect([next.exitCode, next.stderr.toString()]).toEqual([
      1,
      expect.stringContaining(`longboat dev: port ${dev.base + 1} (raft port of nodehost-1) is in use`),
    ]);
    await dev.kill();
  });

  test("a NodeHost killed with kill -9 is restarted by dev; --verbose shows every line after its process's name", async () => {
    const dev = new DevDeployment({ shards: 1, extra: ["--verbose"] });
    await dev.start();
    const before = dev.pid("nodehost-3")!;
    process.kill(before, "SIGKILL");
    await waitFor(
      () => {
        const now = dev.pid("nodehost-3");
        return now !== null && now !== before && alive(now);
      },
      REAL_WAIT_MS,
      "nodehost-3 restarted",
    );
    expect(dev.stdout).toContain("longboat dev: nodehost-3 killed by SIGKILL; restarting it in 1 s");
    expect(dev.stdout).toMatch(/longboat dev: nodehost-3 restarted, pid \d+/);
    await waitFor(
      () =>
        new RegExp(`\\[nodehost-3\\] info nodehost-started .*raftAddress=${dev.nodehostRaft(3)}`).test(
          dev.stderr,
        ),
      REAL_WAIT_MS,
      "the restarted host's start-up line, after its name",
    );
    // It reports to the drummers again.
    await waitFor(
      async () => (await dev.hosts().catch(() => [])).filter((h) => h.state === HOST_ALIVE).length === 4,
      REAL_WAIT_MS,
      "four NodeHosts alive",
    );
    expect(await dev.stop()).toBe(0);
    await dev.kill();
  });

  test("a port of its layout taken: exit 1 naming the port, nothing started", async () => {
    const base = freePortRange(34);
    const server = await listen(base + 12);
    track(`listener on ${base + 12}`, () => new Promise((r) => server.close(r)));
    const dir = mkdtempSync(join(tmpdir(), "longboat-dev-"));
    try {
      const p = Bun.spawnSync([BIN, "dev", "--data-dir", dir, "--base-port", String(base)], {
        stdout: "pipe",
        stderr: "pipe",
        timeout: REAL_WAIT_MS,
      });
      expect(p.exitCode).toBe(1);
      expect(p.stderr.toString()).toBe(
        `longboat dev: port ${base + 12} (API port of nodehost-2) is in use by another program; is another longboat dev running? Stop it, or give other ports with --base-port (dev uses base+1 … base+33)\n`,
      );
      expect(existsSync(join(dir, "nodehost-1.pid"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("bad options: exit 2 with the reason, nothing started", () => {
    const dir = mkdtempSync(join(tmpdir(), "longboat-dev-"));
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    try {
      const cases: [string[], number, string][] = [
        [["--base-port", "65503"], 2, "--base-port must be at most 65502 (the highest port used is base+33)"],
        [["--shards", "0"], 2, "--shards must be a positive integer"],
        [["--dead-timeout", "1s"], 2, "--dead-timeout must be at least 2s"],
        [["--dead-timeout", "soon"], 2, "--dead-timeout must be a duration like 500ms, 5s, 2m or 1h"],
        [["--restart"], 2, "unknown option --restart for longboat dev"],
        [["--data-dir", file], 1, `--data-dir ${file} cannot be used: it is a file`],
      ];
      for (const [args, code, message] of cases) {
        const p = Bun.spawnSync([BIN, "dev", ...args], { stdout: "pipe", stderr: "pipe", cwd: dir });
        expect({ args, code: p.exitCode, stderr: p.stderr.toString() }).toMatchObject({
          args,
          code,
          stderr: expect.stringContaining(message),
        });
      }
      expect(existsSync(join(dir, ".longboat-dev"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

async function canListen(port: number): Promise<boolean> {
  try {
    const s = await listen(port);
    await new Promise((r) => s.close(r));
    return true;
  } catch {
    return false;
  }
}
