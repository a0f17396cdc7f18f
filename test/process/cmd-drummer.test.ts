// `longboat cmd` (the compiled binary) against three `longboat drummer` processes and three
// `longboat nodehost --master` processes: define, bootstrap, wait --healthy, status; bad input
// is a clear message with exit 1 or 2 and changes nothing; a drummer leader killed with
// kill -9 leaves the others answering and status exit 1 until it is back.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { BIN, ensureBinary, waitFor } from "./harness.ts";

const dir = mkdtempSync(join(tmpdir(), "longboat-cmd-drummer-"));
const procs = new Map<string, { args: string[]; proc: ReturnType<typeof Bun.spawn> | null }>();
const drummerApis: string[] = [];
const hostApis: string[] = [];

async function killAll(): Promise<void> {
  for (const p of procs.values()) {
    p.proc?.kill("SIGKILL");
    await p.proc?.exited;
    p.proc = null;
  }
}
track("cmd-drummer process test", killAll);

function start(name: string, args: string[]): void {
  const log = Bun.file(join(process.env.LONGBOAT_PROC_LOGS ?? dir, `${name}.log`));
  procs.set(name, { args, proc: Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: log }) });
}

/** Runs `longboat cmd <op> …` (async: the test's own event loop keeps running). */
async function cmd(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([BIN, "cmd", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

const D = () => ["--drummer", drummerApis.join(",")];

beforeAll(async () => {
  ensureBinary();
  const peers: string[] = [];
  for (const id of [1, 2, 3]) {
    peers.push(`${id}=127.0.0.1:${freePort()}`);
    drummerApis.push(`127.0.0.1:${freePort()}`);
  }
  for (const id of [1, 2, 3]) {
    start(`drummer-${id}`, [
      "drummer",
      ...["--id", String(id), "--peers", peers.join(","), "--api-address", drummerApis[id - 1]!],
      ...["--data-dir", join(dir, `drummer-${id}`), "--rtt-ms", "50"],
      ...["--dead-timeout", "3s", "--report-interval", "500ms"],
    ]);
  }
  for (const i of [1, 2, 3]) {
    const api = `127.0.0.1:${freePort()}`;
    hostApis.push(api);
    start(`nodehost-${i}`, [
      "nodehost",
      ...["--raft-address", `127.0.0.1:${freePort()}`, "--api-address", api],
      ...["--data-dir", join(dir, `host-${i}`), "--rtt-ms", "20", "--region", i === 1 ? "eu" : "us"],
      ...["--master", drummerApis.join(",")],
    ]);
  }
}, 60_000);

afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("longboat cmd --drummer against real processes", () => {
  test("nodehosts lists the NodeHosts as they report; wait --healthy exit 0", async () => {
    await waitFor(
      async () => {
        const r = await cmd("nodehosts", "--json", ...D());
        if (r.code !== 0) return false;
        const hosts = JSON.parse(r.out).nodehosts as { state: string; region: string }[];
        return hosts.length === 3 && hosts.every((h) => h.state === "alive");
      },
      60_000,
      "three NodeHosts alive in cmd nodehosts",
    );
    const n = await cmd("nodehosts", ...D());
    expect(n.code).toBe(0);
    expect(n.out).toMatch(/^127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+ +eu +alive +[0-9.]+s ago +0$/m);
    const w = await cmd("wait", "--healthy", "--timeout", "60s", ...D());
    expect(w.code).toBe(0);
    expect(w.out).toMatch(/^healthy after [0-9.]+s: .*NodeHosts: 3 alive; no shards; healthy\n$/);
  }, 90_000);

  test("bad input: a clear message, exit 2 for usage and 1 for a refusal, nothing changed", async () => {
    const noId = await cmd("create-shard", ...D());
    expect(noId).toMatchObject({ code: 2, out: "" });
    expect(noId.err).toBe("longboat: cmd create-shard needs --id N, the shard ID\n");
    const tooMany = await cmd("create-shard", "--id", "1", "--replicas", "4", ...D());
    expect(tooMany.code).toBe(1);
    expect(tooMany.err).toContain("shard 1 would need 4 NodeHosts but the drummers know 3 live one(s)");
    const region = await cmd("create-shard", "--id", "1", "--regions", "mars=1", ...D());
    expect(region.code).toBe(1);
    expect(region.err).toContain("no live NodeHost is in region mars (regions of the live NodeHosts: ");
    const app = await cmd("create-shard", "--id", "1", "--app", "nope", ...D());
    expect(app.code).toBe(1);
    expect(app.err).toContain('"nope"');
    const nodehost = await cmd("create-shard", "--id", "1", "--drummer", hostApis[0]!);
    expect(nodehost.code).toBe(1);
    expect(nodehost.err).toContain("this is not a drummer's API");
    const none = await cmd("shards", "--json", ...D());
    expect(none.code).toBe(0);
    expect(JSON.parse(none.out)).toMatchObject({ ok: true, shards: [] });
  }, 60_000);

  test("create-shard, bootstrap (twice is refused), wait --healthy, status exit 0 with every section", async () => {
    for (const id of ["1", "2"]) {
      const c = await cmd("create-shard", "--id", id, "--app", "kv", "--replicas", "3", ...D());
      expect(c.err).toBe("");
      expect(c.code).toBe(0);
    }
    const again = await cmd("create-shard", "--id", "1", ...D());
    expect(again.code).toBe(1);
    expect(again.err).toContain("shard 1 is already defined (app kv, 3 replicas)");
    expect((await cmd("bootstrap", ...D())).code).toBe(0);
    const twice = await cmd("bootstrap", ...D());
    expect(twice.code).toBe(1);
    expect(twice.err).toContain("the deployment is already bootstrapped");
    const w = await cmd("wait", "--healthy", "--timeout", "60s", ...D());
    expect(w.code).toBe(0);
    // A loaded machine may move the drummers' leadership at any time (the new leader then
    // listens a dead timeout before it vouches for states): status exits 0 once it is settled.
    let s = await cmd("status", ...D());
    await waitFor(
      async () => {
        s = await cmd("status", ...D());
        // Healthy can come a pass before the leader ends the creates it sees running.
        return s.code === 0 && s.out.includes("DECISIONS IN FLIGHT (0");
      },
      30_000,
      "cmd status exit 0 with no decision in flight",
    );
    for (const heading of [
      "DRUMMERS (3)",
      "NODEHOSTS (3: 3 alive)",
      "SHARDS (2: 2 ok)",
      "DECISIONS IN FLIGHT (0",
    ])
      expect(s.out).toContain(heading);
    expect(s.out.endsWith("\nhealthy\n")).toBe(true);
    const j = JSON.parse((await cmd("status", "--json", ...D())).out);
    expect(j).toMatchObject({ ok: true, healthy: true });
    expect(j.shards.map((x: { id: number; members: unknown[] }) => [x.id, x.members.length])).toEqual([
      [1, 3],
      [2, 3],
    ]);
    // One NodeHost's own view keeps working.
    const one = await cmd("status", "--nodehost", hostApis[0]!);
    expect(one.code).toBe(0);
    expect(one.out).toMatch(/^NodeHost 127\.0\.0\.1:\d+ \(API 127\.0\.0\.1:\d+\)\nSHARD/);
  }, 90_000);

  test("the drummer leader killed with kill -9: the others answer, status exits 1 naming it; back, healthy again", async () => {
    const ds = JSON.parse((await cmd("drummers", "--json", ...D())).out) as {
      drummers: { id: number; leader: boolean }[];
    };
    const leader = ds.drummers.find((d) => d.leader)!;
    const p = procs.get(`drummer-${leader.id}`)!;
    p.proc!.kill("SIGKILL");
    await p.proc!.exited;
    p.proc = null;
    // An election passes within --timeout-ms (retries included); generous for a loaded machine.
    const shards = await cmd("shards", "--id", "1", "--timeout-ms", "20000", ...D());
    expect(shards.code).toBe(0);
    expect(shards.out).toMatch(/^1 +kv +3 /m);
    const s = await cmd("status", ...D());
    expect(s.code).toBe(1);
    expect(s.out).toContain(`  - drummer ${leader.id} does not answer`);
    const gaveUp = await cmd("wait", "--healthy", "--timeout", "2s", ...D());
    expect(gaveUp.code).toBe(1);
    expect(gaveUp.err).toMatch(
      /^\[[0-9.]+s of 2\.0s\] drummers: 2\/3 answer; NodeHosts: \d alive; shards: .*; waiting \(/m,
    );
    expect(gaveUp.err).toContain("longboat cmd wait: not healthy within 2s\n");
    start(`drummer-${leader.id}`, p.args);
    const w = await cmd("wait", "--healthy", "--timeout", "60s", ...D());
    expect(w.code).toBe(0);
  }, 120_000);

  test("add-drummer, then the new drummer started with --join serves; remove-drummer takes it out again", async () => {
    const raft = `127.0.0.1:${freePort()}`;
    const api = `127.0.0.1:${freePort()}`;
    const add = await cmd("add-drummer", "--id", "4", "--raft-address", raft, ...D());
    expect(add.err).toBe("");
    expect(add.code).toBe(0);
    expect(add.out).toContain(`longboat drummer --id 4 --join --peers 4=${raft} --api-address <host:port>`);
    const before = await cmd("drummers", ...D());
    expect(before.code).toBe(1); // drummer 4 is a member that does not run yet
    expect(before.out).toMatch(/^4 +- +127\.0\.0\.1:\d+ +NO: it has not registered its API address$/m);
    start("drummer-4", [
      "drummer",
      ...["--id", "4", "--join", "--peers", `4=${raft}`, "--api-address", api],
      ...["--data-dir", join(dir, "drummer-4"), "--rtt-ms", "50"],
      ...["--dead-timeout", "3s", "--report-interval", "500ms"],
    ]);
    const w = await cmd("wait", "--healthy", "--timeout", "60s", ...D());
    expect(w.code).toBe(0);
    const four = JSON.parse((await cmd("drummers", "--json", "--drummer", api)).out);
    expect(four.drummers.map((d: { id: number; healthy: boolean }) => [d.id, d.healthy])).toEqual([
      [1, true],
      [2, true],
      [3, true],
      [4, true],
    ]);
    const rm = await cmd("remove-drummer", "--id", "4", ...D());
    expect(rm.code).toBe(0);
    const three = JSON.parse((await cmd("drummers", "--json", ...D())).out);
    expect(three.drummers.map((d: { id: number }) => d.id)).toEqual([1, 2, 3]);
  }, 120_000);
});
