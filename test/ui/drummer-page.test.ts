/**
 * The drummers' dashboard rendered on the server, on drummers and NodeHosts in one process on a
 * virtual clock (test/drummer/group.ts): the page shows the hosts and shards the Drummer API
 * answers, the leader drummer, and after a NodeHost crash the dead host, the repair and then
 * every shard healthy again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createDrummerApi } from "../../src/drummer/api/app.ts";
import { DrummerGroup } from "../drummer/group.ts";

const SHARDS = [1, 2, 3];
const g = new DrummerGroup(Number(process.env.LONGBOAT_TEST_SEED ?? 31), 3, {
  deadTimeoutMs: 2000,
  reportIntervalMs: 200,
  passIntervalMs: 50,
  maxRepairs: 2,
});

/** GET path on drummer id's API while the virtual clock runs. */
async function get(id: number, path = "/"): Promise<string> {
  const p = g.members[id - 1]!.app!.request(path);
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let t = 0; t < 5000 && !settled; t += 5) await g.run(5);
  const res = await p;
  expect(res.status).toBe(200);
  return res.text();
}

const attrs = (html: string, re: RegExp) => [...html.matchAll(re)].map((m) => m.slice(1));
const hostsOf = (html: string) => attrs(html, /<tr data-host="([^"]+)" data-state="([^"]+)"/g);
const shardsOf = (html: string) =>
  attrs(html, /<tr data-shard="(\d+)" data-health="([^"]+)"/g).map(([id, h]) => [Number(id), h]);

const members = (shardId: number) =>
  g
    .leader()
    ?.db.state.views.get(shardId)
    ?.members.map((m) => m.raftAddress) ?? [];
const whole = () =>
  SHARDS.every((s) => members(s).length === 3) &&
  g.leader()?.db.state.repairing.size === 0 &&
  SHARDS.every((s) => members(s).every((a) => g.hosts.some((h) => h.raftAddress === a && h.nodehost)));

describe("the drummers' page", () => {
  beforeAll(async () => {
    await g.startAll();
    await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
    for (const i of [1, 2, 3, 4]) await g.startHost(i, i <= 2 ? "eu" : "us");
    for (const shardId of SHARDS) await g.request(1, "CreateShard", { shardId, app: "kv", replicaCount: 3 });
    await g.request(2, "Bootstrap", {});
    await g.until(() => whole(), 20_000, "every shard placed");
    await g.run(1000); // a report or two after placement: every member reported
  }, 60_000);
  afterAll(() => g.close());

  test("shows the hosts by region, the shards and the leader drummer the API answers", async () => {
    const html = await get(3);
    const hostsApi = (await g.request(3, "ListNodeHosts", {})).nodehosts as {
      raftAddress: string;
      state: number;
    }[];
    const shardsApi = (await g.request(3, "ListShards", {})).shards as {
      definition: { shardId: number };
      health: number;
    }[];
    expect(
      hostsOf(html)
        .map(([a]) => a)
        .sort(),
    ).toEqual(hostsApi.map((h) => h.raftAddress).sort());
    expect(hostsOf(html).every(([, s]) => s === "alive")).toBe(true);
    expect(html).toContain('data-region="eu"');
    expect(html).toContain('data-region="us"');
    expect(shardsOf(html)).toEqual(shardsApi.map((s) => [Number(s.definition.shardId), "ok"]));
    expect(shardsApi.every((s) => s.health === 1)).toBe(true);
    const leaderId = Number((await g.request(1, "GetDeployment", {})).leaderDrummerId);
    expect(leaderId).toBeGreaterThan(0);
    expect(html).toMatch(
      new RegExp(
        `<li data-drummer="${leaderId}"><strong>drummer ${leaderId}</strong>[^<]*<span class="badge b-leader"`,
      ),
    );
    expect(attrs(html, /<li data-drummer="(\d+)"/g).length).toBe(3);
  });

  test("each shard row shows its leader's term and commit index, as ListShards answers them", async () => {
    const shardsApi = (await g.request(2, "ListShards", {})).shards as {
      definition: { shardId: number };
      leaderReplicaId: number;
      term: number;
      commitIndex: number;
    }[];
    for (const s of shardsApi) {
      // The leader's NodeHost runs the leader replica at that term, committed at least that far.
      const host = g.hosts.find((h) =>
        h.nodehost
          ?.getNodeHostInfo({ skipLogInfo: true })
          .shards.some((r) => r.shardId === s.definition.shardId && r.isLeader),
      );
      const info = host!
        .nodehost!.getNodeHostInfo({ skipLogInfo: true })
        .shards.find((r) => r.shardId === s.definition.shardId)!;
      expect(info.replicaId).toBe(s.leaderReplicaId);
      expect(s.term).toBe(info.term);
      expect(s.term).toBeGreaterThan(0);
      expect(s.commitIndex).toBeGreaterThan(0);
      expect(s.commitIndex).toBeLessThanOrEqual(info.commitIndex);
    }
    const html = await get(1);
    const rows = attrs(
      html,
      /<tr data-shard="(\d+)" data-health="[^"]+">.*?<td data-col="term">([^<]*)<\/td><td data-col="commit">([^<]*)<\/td>/g,
    );
    const now = (await g.request(2, "ListShards", {})).shards as typeof shardsApi;
    expect(rows).toEqual(
      now.map((s) => [String(s.definition.shardId), String(s.term), String(s.commitIndex)]),
    );
  });

  test("a crashed NodeHost is shown dead, its repair in flight, then every shard healthy again", async () => {
    const victim = g.hosts.find((h) => SHARDS.some((s) => members(s).includes(h.raftAddress)))!;
    await g.crashHost(victim.index);
    await g.until(() => (g.leader()?.db.state.repairing.size ?? 0) > 0, 20_000, "a repair started");
    const during = await get(1);
    expect(hostsOf(during).find(([a]) => a === victim.raftAddress)?.[1]).toBe("dead");
    expect(during).toMatch(/<table id="in-flight">.*data-repair="1"/s);
    expect(shardsOf(during).some(([, h]) => h !== "ok")).toBe(true);
    await g.until(
      () => whole() && SHARDS.every((s) => !members(s).includes(victim.raftAddress)),
      60_000,
      "the repair",
    );
    await g.run(1000);
    const after = await get(2, "/?health=ok");
    expect(shardsOf(after)).toEqual(SHARDS.map((s) => [s, "ok"]));
    expect(after).toMatch(/<table id="finished">.*data-repair="1"/s);
    expect(after).not.toMatch(
      new RegExp(
        `<li data-replica="\\d+" data-state="ok">(<strong>)?\\d+(★</strong>)? ${victim.raftAddress}`,
      ),
    );
  }, 120_000);

  test("with the drummer API's token the page and script are open but carry no data; the data calls need it", async () => {
    const d = g.members[0]!.drummer!;
    const api = createDrummerApi({ service: d.service, metrics: d.metrics, env: g.env, token: "s3cret" });
    const page = await api.request("/");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('"tokenRequired":true');
    expect(html).toContain('<form id="login" class="login">');
    expect(hostsOf(html)).toEqual([]);
    expect(shardsOf(html)).toEqual([]);
    expect((await api.request(/<script src="([^"]+)"/.exec(html)![1]!)).status).toBe(200);
    const list = (authorization?: string) =>
      api.request("/longboat.drummer.v1.DrummerService/ListShards", {
        method: "POST",
        headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
        body: "{}",
      });
    expect((await list()).status).toBe(401);
    expect((await list("Bearer wrong")).status).toBe(401);
  });
});
