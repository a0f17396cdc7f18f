// The compiled binary as a user meets it: output through pipes, exit codes, messages.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import packageJson from "../../package.json" with { type: "json" };
import { parsePrometheusText } from "../api/prom-text.ts";
import { PROCESS_TEST_WALL_MS } from "../support/limits.ts";
import { BIN, cmd, ensureBinary, freePort, ProcessCluster, waitFor } from "./harness.ts";

beforeAll(() => ensureBinary());
// Each test spawns the binary several times; on a loaded machine that takes seconds.
setDefaultTimeout(PROCESS_TEST_WALL_MS);

/** One NodeHost process with one single-member kv shard (shard 1). */
class OneHost {
  readonly dir = mkdtempSync(join(tmpdir(), "longboat-cli-"));
  raft = "";
  api = "";
  proc: ReturnType<typeof Bun.spawn> | undefined;
  log = "";

  async start(extra: string[] = []): Promise<void> {
    this.raft = `127.0.0.1:${await freePort()}`;
    this.api = `127.0.0.1:${await freePort()}`;
    const args = [
      "nodehost",
      "--data-dir",
      join(this.dir, "data"),
      "--raft-address",
      this.raft,
      "--api-address",
      this.api,
      "--rtt-ms",
      "20",
      "--shard",
      `id=1,app=kv,replica=1,members=1@${this.raft}`,
      ...extra,
    ];
    const proc = Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: "pipe" });
    this.proc = proc;
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) this.log += decoder.decode(chunk);
    })();
    await waitFor(
      async () => (await fetch(`http://${this.api}/readyz`).catch(() => null))?.ok === true,
      30_000,
      "the NodeHost ready",
    );
  }

  async stop(): Promise<void> {
    this.proc?.kill("SIGKILL");
    await this.proc?.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs the binary with its stdout into a pipe that a shell reader leaves unread until the
 * binary has exited (or `readAfterMs` passed): a process that exits before its output has
 * drained loses what did not fit the pipe (64 KiB). The reader is a shell, not this test:
 * Bun reads a child's pipe at once, whether the test reads it or not.
 */
async function runIntoSlowReader(args: string[], readAfterMs = 3000) {
  const dir = mkdtempSync(join(tmpdir(), "longboat-pipe-"));
  const codeFile = join(dir, "code");
  const polls = Math.ceil(readAfterMs / 50);
  const script = `f=$1; shift; { "$@"; echo $? > "$f"; } | { i=0; while [ ! -s "$f" ] && [ $i -lt ${polls} ]; do sleep 0.05; i=$((i+1)); done; cat; }`;
  try {
    const proc = Bun.spawn(["sh", "-c", script, "sh", codeFile, BIN, ...args], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr] = await Promise.all([
      new Response(proc.stdout).arrayBuffer(),
      new Response(proc.stderr).text(),
    ]);
    await proc.exited;
    const code = Number((await Bun.file(codeFile).text()).trim());
    return { code, stdout: new Uint8Array(stdout), stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `runs` runs at once (most of each is waiting for the reader). */
function concurrently<T>(runs: number, fn: (run: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: runs }, (_, run) => fn(run)));
}

describe("cmd output through a pipe", () => {
  const host = new OneHost();
  const value = "v".repeat(119_999); // with the newline 120,000 bytes: more than a pipe holds
  beforeAll(async () => {
    await host.start();
    expect(cmd(["put", "--nodehost", host.api, "--shard", "1", "big", value]).code).toBe(0);
  }, 60_000);
  afterAll(() => host.stop());

  test("every JSON log line names its host (raft address); start-up logs no leader-updated with leader 0", async () => {
    await waitFor(async () => host.log.includes('"event":"leader-updated"'), 30_000, "a leader-updated line");
    const lines = host.log
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(line.host, JSON.stringify(line)).toBe(host.raft);
    const updates = lines.filter((l) => l.event === "leader-updated");
    expect(updates.length).toBeGreaterThan(0);
    expect(updates.filter((l) => l.leaderId === 0)).toEqual([]);
    expect(updates[0]).toMatchObject({ shard: 1, replica: 1, leaderId: 1 });
  });

  test("cmd get of a 120,000-byte value delivers every byte to a slow reader, run after run", async () => {
    const runs = await concurrently(4, async (run) => {
      const got = await runIntoSlowReader(["cmd", "get", "--nodehost", host.api, "--shard", "1", "big"]);
      return { run, code: got.code, stderr: got.stderr, bytes: got.stdout.byteLength };
    });
    expect(runs).toEqual([0, 1, 2, 3].map((run) => ({ run, code: 0, stderr: "", bytes: 120_000 })));
  }, 60_000);

  test("cmd get --json of a 120,000-byte value delivers the whole JSON line, run after run", async () => {
    const runs = await concurrently(4, (run) =>
      runIntoSlowReader(["cmd", "get", "--json", "--nodehost", host.api, "--shard", "1", "big"]).then(
        (got) => ({
          run,
          code: got.code,
          bytes: got.stdout.byteLength,
          text: new TextDecoder().decode(got.stdout),
        }),
      ),
    );
    const line = `${JSON.stringify({ ok: true, found: true, value })}\n`;
    for (const r of runs)
      expect({ run: r.run, code: r.code, bytes: r.bytes }).toEqual({
        run: r.run,
        code: 0,
        bytes: line.length,
      });
    for (const r of runs) expect(r.text).toBe(line);
  }, 60_000);
});

describe("cmd against a deployment of three NodeHosts", () => {
  const cluster = new ProcessCluster(1);
  // A loaded machine (other test files are the load) can take seconds to answer: the wait is
  // generous, what is checked is the answer.
  const run = (...args: string[]) =>
    cmd(args.includes("--timeout-ms") ? args : [...args, "--timeout-ms", "30000"]);
  beforeAll(async () => {
    await cluster.init();
    await cluster.startAll();
  }, 120_000);
  afterAll(() => cluster.stop());

  test("put prints the log index it committed at; a later put commits at a higher index", () => {
    const first = run("put", "--nodehost", cluster.api(), "--shard", "1", "k", "v1");
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const index = Number(/^ok, committed at index ([0-9]+)\n$/.exec(first.stdout)?.[1]);
    expect(index).toBeGreaterThan(0);
    const second = run("put", "--json", "--nodehost", cluster.api(), "--shard", "1", "k", "v2");
    expect(second.code).toBe(0);
    const json = JSON.parse(second.stdout) as { ok: boolean; index: number };
    expect(json.ok).toBe(true);
    expect(json.index).toBeGreaterThan(index);
  });

  test("put reads the value from stdin with - and from --file, byte for byte", () => {
    const bytes = new Uint8Array([0x68, 0x69, 0x0a, 0x00, 0xff]);
    const dir = mkdtempSync(join(tmpdir(), "longboat-put-"));
    try {
      const p = Bun.spawnSync(
        [BIN, "cmd", "put", "--nodehost", cluster.api(), "--shard", "1", "from-stdin", "-"],
        {
          stdin: bytes,
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      expect(p.exitCode).toBe(0);
      writeFileSync(join(dir, "value"), bytes);
      const f = run(
        "put",
        "--nodehost",
        cluster.api(),
        "--shard",
        "1",
        "from-file",
        "--file",
        join(dir, "value"),
      );
      expect(f.code).toBe(0);
      for (const key of ["from-stdin", "from-file"]) {
        const got = Bun.spawnSync(
          [BIN, "cmd", "get", "--nodehost", cluster.api(), "--shard", "1", key, "--timeout-ms", "30000"],
          {
            stdout: "pipe",
          },
        );
        expect(got.exitCode).toBe(0);
        // get prints the value as text and a newline; compare the value's bytes that survive UTF-8
        expect(got.stdout.toString()).toBe(`${new TextDecoder().decode(bytes)}\n`);
      }
      const both = run(
        "put",
        "--nodehost",
        cluster.api(),
        "--shard",
        "1",
        "k",
        "v",
        "--file",
        join(dir, "value"),
      );
      expect(both.code).toBe(2);
      expect(both.stderr).toContain("give the value as <value> or with --file, not both");
      const missing = run(
        "put",
        "--nodehost",
        cluster.api(),
        "--shard",
        "1",
        "k",
        "--file",
        join(dir, "none"),
      );
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`--file ${join(dir, "none")}: no such file`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("scan --prefix lists exactly the keys with that prefix, in byte order, page after page", () => {
    const keys = ["user/b", "user/a", "user0", "use", "user/é", "users"];
    for (const k of keys)
      expect(run("put", "--nodehost", cluster.api(), "--shard", "1", k, `v-${k}`).code).toBe(0);
    const got = run("scan", "--nodehost", cluster.api(), "--shard", "1", "--prefix", "user/");
    expect(got.code).toBe(0);
    expect(got.stdout).toBe("user/a\tv-user/a\nuser/b\tv-user/b\nuser/é\tv-user/é\n");
    const limited = run(
      "scan",
      "--json",
      "--nodehost",
      cluster.api(),
      "--shard",
      "1",
      "--prefix",
      "user",
      "--limit",
      "2",
    );
    expect(JSON.parse(limited.stdout)).toEqual({
      ok: true,
      pairs: [
        { key: "user/a", value: "v-user/a" },
        { key: "user/b", value: "v-user/b" },
      ],
      more: true,
    });
    const none = run("scan", "--nodehost", cluster.api(), "--shard", "1", "--prefix", "nothing/");
    expect(none.code).toBe(0);
    expect(none.stderr).toBe('no keys with prefix "nothing/" in shard 1\n');
  });

  test("a missing key exits 1; with --json it prints found: false", () => {
    const plain = run("get", "--nodehost", cluster.api(), "--shard", "1", "absent");
    expect(plain).toEqual({ code: 1, stdout: "", stderr: 'key "absent" not found in shard 1\n' });
    const json = run("get", "--json", "--nodehost", cluster.api(), "--shard", "1", "absent");
    expect(json).toEqual({ code: 1, stdout: '{"ok":true,"found":false}\n', stderr: "" });
  });

  test("/metrics passes a strict text-format check and has transport, snapshot, process and build metrics", async () => {
    const first = cluster.hosts[0]!;
    const snap = run("snapshot", "--nodehost", first.api, "--shard", "1");
    expect(snap.stderr).toBe("");
    expect(snap.code).toBe(0);
    for (const h of cluster.hosts) {
      const families = parsePrometheusText(await (await fetch(`http://${h.api}/metrics`)).text());
      const value = (name: string, labels: Record<string, string> = {}) =>
        families.get(name)?.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))
          ?.value;
      expect(value("longboat_transport_bytes_total", { direction: "received" }), h.api).toBeGreaterThan(0);
      expect(value("longboat_transport_bytes_total", { direction: "sent" }), h.api).toBeGreaterThan(0);
      expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
      expect(value("process_resident_memory_bytes")).toBeGreaterThan(1_000_000);
      expect(value("process_open_fds")).toBeGreaterThan(3);
      expect(value("process_start_time_seconds")).toBeGreaterThan(1_600_000_000);
      const build = families.get("longboat_build_info")!.samples;
      expect(build).toHaveLength(1);
      expect(build[0]!.value).toBe(1);
      expect(build[0]!.labels.version).toBe(packageJson.version);
      expect(build[0]!.labels.commit).toMatch(/^([0-9a-f]{7,40}|unknown)$/);
      expect(build[0]!.labels.bun).toMatch(/^[0-9]+\.[0-9]+\.[0-9]+/);
      const created = value("longboat_snapshots_created_total");
      expect(created).toBe(h === first ? 1 : 0);
      if (h === first) expect(value("longboat_snapshot_created_bytes_total")).toBeGreaterThan(0);
      // The snapshot's duration is one observation of a histogram (the strict parser has
      // checked its buckets are cumulative and end at +Inf = _count).
      const durations = families.get("longboat_snapshot_create_duration_seconds")!;
      expect(durations.type).toBe("histogram");
      const count = durations.samples.find((x) => x.name.endsWith("_count"))!.value;
      expect(count, h.api).toBe(h === first ? 1 : 0);
      const sum = durations.samples.find((x) => x.name.endsWith("_sum"))!.value;
      if (h === first) expect(sum).toBeGreaterThan(0);
      else expect(sum).toBe(0);
      expect(families.get("longboat_transport_snapshots_total")?.type ?? "counter").toBe("counter");
    }
  });

  test("status asks every host: each one's replica, health, and the leader by id and raft address", async () => {
    const leader = await cluster.waitLeader(1);
    const leaderRaft = cluster.hosts[leader - 1]!.raft;
    const got = run("status", "--json", "--nodehost", cluster.api());
    expect(got.code).toBe(0);
    const body = JSON.parse(got.stdout) as {
      hosts: {
        address: string;
        raftAddress: string;
        health: string;
        replicas: { replica: number; role: string; leader: number; leaderAddress: string }[];
      }[];
    };
    expect(body.hosts.map((h) => [h.address, h.raftAddress, h.health])).toEqual(
      cluster.hosts.map((h) => [h.api, h.raft, "ok"]),
    );
    for (const [i, h] of body.hosts.entries()) {
      expect(h.replicas).toHaveLength(1);
      expect(h.replicas[0]!.replica).toBe(i + 1);
      expect(h.replicas[0]!.leader).toBe(leader);
      expect(h.replicas[0]!.leaderAddress).toBe(leaderRaft);
      expect(h.replicas[0]!.role).toBe(i + 1 === leader ? "leader" : "follower");
    }
    const table = run("status", "--nodehost", cluster.api());
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^HOST +RAFT +HEALTH +SHARD +REPLICA +APP +ROLE +TERM +LEADER +COMMIT +APPLIED +MEMBERS$/,
    );
    expect(lines).toHaveLength(4);
    for (const h of cluster.hosts) expect(table.stdout).toContain(h.api);
  });

  test("health exits 0 while every host is healthy, 1 naming the host once one is down; status shows it unreachable", async () => {
    const healthy = run("health", "--nodehost", cluster.api());
    expect(healthy.code).toBe(0);
    expect(healthy.stdout.trimEnd().split("\n")).toEqual(
      cluster.hosts.map((h) => `${h.api} (raft ${h.raft}): healthy, 1 replica(s), each with a leader`),
    );
    // A follower goes down: the others keep their leader, so only it is unhealthy.
    const leader = await cluster.waitLeader(1);
    const down = cluster.hosts.find((h) => h.index !== leader)!;
    await cluster.kill(down.index);
    const health = run("health", "--nodehost", cluster.api(), "--timeout-ms", "8000");
    expect(health.code).toBe(1);
    expect(health.stdout).toContain(
      `${down.api}: unhealthy, unreachable: unavailable: cannot reach the NodeHost API`,
    );
    const status = run("status", "--json", "--nodehost", cluster.api(), "--timeout-ms", "8000");
    expect(status.code).toBe(0); // the others answered
    const hosts = (JSON.parse(status.stdout) as { hosts: { address: string; health: string }[] }).hosts;
    expect(hosts.map((h) => h.health.split(":")[0])).toEqual(
      cluster.hosts.map((h) => (h === down ? "unreachable" : "ok")),
    );
  });
});
