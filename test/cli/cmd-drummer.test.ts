// `longboat cmd` against real drummers and NodeHosts in master mode, in one process on a
// virtual clock (test/drummer/group.ts): the ops end to end through the Drummer API's Connect
// handlers, the exit codes, the failover to another drummer, bad input changing nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { RpcHandler } from "../../src/api/rpc/router.ts";
import { type DrummerIo, runDrummerCmd } from "../../src/cli/commands/cmd-drummer.ts";
import { resolveCmdConfig } from "../../src/cli/config.ts";
import { DrummerGroup } from "../drummer/group.ts";

const g = new DrummerGroup(Number(process.env.LONGBOAT_TEST_SEED ?? 15), 3, {
  deadTimeoutMs: 2000,
  reportIntervalMs: 200,
  passIntervalMs: 50,
});
const ALL = () => g.members.map((m) => m.apiAddress).join(",");

interface Ran {
  code: number;
  out: string;
  err: string;
  progress: string[];
}

/** Runs `longboat cmd <args…>` in process against the group while its clock runs. */
async function cmd(args: string[], flags: Record<string, string | boolean> = {}): Promise<Ran> {
  const config = resolveCmdConfig({ args, flags: { drummer: ALL(), ...flags }, env: {} });
  const ran: Ran = { code: -1, out: "", err: "", progress: [] };
  const io: DrummerIo = {
    out: (line) => (ran.out += `${line}\n`),
    err: (line) => (ran.err += `${line}\n`),
    progress: (text) => void ran.progress.push(text),
    progressEnd: () => {},
    clock: {
      nowMs: () => g.env.nowMs(),
      sleep: (ms) => new Promise((resolve) => g.env.setTimer(ms, resolve)),
    },
    fetch: g.fetch,
    timers: g.env,
  };
  let done = false;
  runDrummerCmd(config, io).then((code) => {
    ran.code = code;
    done = true;
  });
  await g.until(() => done, 120_000, `cmd ${args.join(" ")}`);
  return ran;
}

const json = (r: Ran) => JSON.parse(r.out) as Record<string, unknown>;

beforeAll(async () => {
  await g.startAll();
  await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
  await g.until(() => g.leader()!.db.state.drummers.size === 3, 5000, "every drummer registered");
}, 60_000);
afterAll(() => g.close());

describe("cmd against three drummers and four NodeHosts", () => {
  test("before any NodeHost: status shows the drummers and says it is not healthy yet (exit 1)", async () => {
    const r = await cmd(["status"]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("DRUMMERS (3)");
    expect(r.out).toContain("(no NodeHost has reported yet");
    expect(r.out).toContain("NOT bootstrapped");
  });

  test("create-shard checks what the NodeHosts can hold, refuses without changing anything, and defines", async () => {
    for (const i of [1, 2, 3, 4]) await g.startHost(i, i <= 2 ? "eu" : "us");
    await g.run(g.settings.deadTimeoutMs! + 500); // the new leader's listening period ends
    const tooMany = await cmd(["create-shard"], { id: "1", replicas: "5" });
    expect(tooMany.code).toBe(1);
    expect(tooMany.err).toBe(
      "longboat cmd create-shard: shard 1 would need 5 NodeHosts but the drummers know 4 live one(s) (4 in all); nothing was changed (start more NodeHosts with --master, or give fewer --replicas)\n",
    );
    const region = await cmd(["create-shard"], { id: "1", regions: "asia=1" });
    expect(region.code).toBe(1);
    expect(region.err).toMatch(
      /no live NodeHost is in region asia \(regions of the live NodeHosts: eu, us\)/,
    );
    const crowded = await cmd(["create-shard"], { id: "1", regions: "eu=3" });
    expect(crowded.err).toMatch(/--regions asks for 3 replicas in eu, which has 2 live NodeHost\(s\)/);
    const app = await cmd(["create-shard"], { id: "1", app: "nope" });
    expect(app.code).toBe(1);
    expect(app.err).toMatch(
      /^longboat cmd create-shard: .*"nope".*kv.* \(invalid_argument, drummer 10\.9\.0\.\d:9001\)\n$/,
    );
    expect(g.leader()!.db.state.shards.size).toBe(0);

    const ok = await cmd(["create-shard"], { id: "1", regions: "eu=1,us=1" });
    expect(ok).toMatchObject({ code: 0, err: "" });
    expect(ok.out).toBe(
      "shard 1 defined: app kv, 3 replicas, regions eu=1,us=1; it is placed once the deployment is bootstrapped (longboat cmd bootstrap)\n",
    );
    expect((await cmd(["create-shard"], { id: "2" })).code).toBe(0);
    const again = await cmd(["create-shard"], { id: "1", app: "noop" });
    expect(again.code).toBe(1);
    expect(again.err).toMatch(
      /^longboat cmd create-shard: shard 1 is already defined \(app kv, 3 replicas\) \(already_exists, drummer 10\.9\.0\.\d:9001\)\n$/,
    );
    expect(g.leader()!.db.state.shards.get(1)).toMatchObject({ app: "kv", replicaCount: 3 });
  });

  test("bootstrap once (a second is exit 1 saying so), then wait --healthy prints progress and exits 0", async () => {
    const b = await cmd(["bootstrap"]);
    expect(b.code).toBe(0);
    expect(b.out).toContain("the drummers place the 2 defined shard(s) now");
    const twice = await cmd(["bootstrap"]);
    expect(twice.code).toBe(1);
    expect(twice.err).toContain("the deployment is already bootstrapped");
    const w = await cmd(["wait"], { healthy: true, timeout: "60s" });
    expect(w.code).toBe(0);
    expect(w.progress.length).toBeGreaterThan(0);
    expect(w.progress[0]).toMatch(/^\[[0-9.]+s of 1m\] drummers: 3\/3 answer; NodeHosts: 4 alive; shards: /);
    expect(w.out).toMatch(/^healthy after [0-9.]+s: /);
    const s = await cmd(["status"], { json: true });
    expect(s.code).toBe(0);
    const j = json(s);
    expect(j).toMatchObject({ ok: true, healthy: true, problems: [] });
    expect((j.shards as { health: string }[]).map((x) => x.health)).toEqual(["ok", "ok"]);
    expect((j.drummers as { healthy: boolean }[]).every((d) => d.healthy)).toBe(true);
    const placed = (j.shards as { members: { raftAddress: string }[] }[])[0]!.members.map(
      (m) => m.raftAddress,
    );
    const eu = ["10.8.0.1:7001", "10.8.0.2:7001"];
    expect(placed.filter((a) => eu.includes(a)).length).toBeGreaterThanOrEqual(1);
  });

  test("nodehosts, shards and shards --id list what the drummers know", async () => {
    const n = await cmd(["nodehosts"]);
    expect(n.code).toBe(0);
    expect(n.out.split("\n")[0]).toBe("RAFT           API            REGION  STATE  LAST REPORT  REPLICAS");
    expect(n.out).toMatch(/10\.8\.0\.4:7001 +10\.8\.0\.4:8001 +us +alive/);
    const one = await cmd(["shards"], { id: "2", json: true });
    expect(json(one)).toMatchObject({
      ok: true,
      shards: [{ id: 2, app: "kv", health: "ok" }],
      unknownShardIds: [],
    });
    const missing = await cmd(["shards"], { id: "9" });
    expect(missing).toMatchObject({ code: 1, out: "" });
    expect(missing.err).toBe(
      "longboat cmd shards: shard 9 is not defined (see cmd shards for the defined ones)\n",
    );
  });

  test("a NodeHost dies: status turns unhealthy (exit 1) naming the shard, wait --healthy sees the repair through", async () => {
    const victim = g.hosts.find((h) =>
      g
        .leader()!
        .db.state.views.get(1)!
        .members.some((m) => m.raftAddress === h.raftAddress),
    )!;
    await g.crashHost(victim.index);
    await g.run(g.settings.deadTimeoutMs! + 300);
    const s = await cmd(["status"]);
    expect(s.code).toBe(1);
    expect(s.out).toMatch(new RegExp(`${victim.raftAddress.replaceAll(".", "\\.")} .* dead`));
    expect(s.out).toMatch(/NOT healthy:\n {2}- shard 1 (under-replicated|repairing)/);
    const w = await cmd(["wait"], { healthy: true, timeout: "60s" });
    expect(w.code).toBe(0);
    expect(w.progress.some((p) => /repairing|under-replicated/.test(p))).toBe(true);
    const after = json(await cmd(["status"], { json: true }));
    expect(after.healthy).toBe(true);
    expect(after.notes).toEqual([`NodeHost ${victim.raftAddress} is dead and holds no member of any shard`]);
  });

  test("wait --healthy gives up at --timeout with exit 1 and the problems", async () => {
    const s = await cmd(["set-regions"], { id: "2", regions: "eu=1" });
    expect(s).toMatchObject({ code: 0 });
    expect(s.out).toContain("shard 2 regions: eu=1");
    // Two of shard 1's three members die: no quorum, which the drummers never touch.
    const members = g
      .leader()!
      .db.state.views.get(1)!
      .members.map((m) => m.raftAddress);
    for (const h of g.hosts.filter((x) => members.includes(x.raftAddress)).slice(0, 2))
      await g.crashHost(h.index);
    await g.run(g.settings.deadTimeoutMs! + 300);
    const w = await cmd(["wait"], { healthy: true, timeout: "2s" });
    expect(w.code).toBe(1);
    expect(w.err).toMatch(/^longboat cmd wait: not healthy within 2s\nNOT healthy:\n/);
    expect(w.err).toContain("  - shard 1 no quorum");
    expect(w.progress.length).toBeGreaterThanOrEqual(2);
  });
});

describe("the drummers themselves", () => {
  test("a drummer down: the others answer (failover), status marks it unhealthy and exits 1", async () => {
    const down = g.members.find((m) => !m.drummer!.loop.leading)!;
    await g.crash(down.id);
    const r = await cmd(["drummers"], { drummer: `${down.apiAddress},${ALL()}` });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`^${down.id} +${down.apiAddress.replaceAll(".", "\\.")} .* NO: `, "m"));
    const shards = await cmd(["shards"], { drummer: `${down.apiAddress},${ALL()}` });
    expect(shards.code).toBe(0);
    await g.start(down.id);
    await g.until(() => g.members.every((m) => m.drummer !== null), 1000, "restarted");
  });

  test("remove-drummer and add-drummer change the group; removing twice is not_found", async () => {
    await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
    const leader = g.leader()!.settings.drummerId;
    const gone = g.members.find((m) => m.id !== leader)!.id;
    const rm = await cmd(["remove-drummer"], { id: String(gone) });
    expect(rm.code).toBe(0);
    expect(rm.out).toBe(
      `drummer ${gone} removed from the group; stop its process (its data directory can then be deleted)\n`,
    );
    const again = await cmd(["remove-drummer"], { id: String(gone) });
    expect(again.code).toBe(1);
    expect(again.err).toContain(`drummer ${gone} is not a member`);
    const add = await cmd(["add-drummer"], { id: "7", "raft-address": "10.9.0.7:9101", json: true });
    expect(add.code).toBe(0);
    expect((json(add).drummers as { id: number }[]).map((d) => d.id)).toContain(7);
    const reused = await cmd(["add-drummer"], { id: String(gone), "raft-address": "10.9.0.8:9101" });
    expect(reused.code).toBe(1);
    expect(reused.err).toContain("ids never return");
  });

  test("an address that is not a drummer (a NodeHost's API) is a clear error, exit 1", async () => {
    const nodehostApi = new Hono();
    nodehostApi.notFound((c) =>
      c.json({ code: "unimplemented", message: `no such path ${c.req.method} ${c.req.path}` }, 404),
    );
    g.extraApps.set("10.8.0.1:8001", nodehostApi as unknown as RpcHandler);
    const r = await cmd(["create-shard"], { drummer: "10.8.0.1:8001", id: "5" });
    expect(r.code).toBe(1);
    expect(r.err).toContain("this is not a drummer's API");
    expect(r.err).toContain("is it a NodeHost's --api-address?");
    const w = await cmd(["wait"], { drummer: "10.8.0.1:8001", healthy: true, timeout: "30s" });
    expect(w.code).toBe(1);
    expect(w.err).toContain("this is not a drummer's API");
    expect(g.leader()!.db.state.shards.has(5)).toBe(false);
  });
});
