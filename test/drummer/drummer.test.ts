import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseReport } from "../../src/drummer/api/report-parse.ts";
import { DrummerCallError } from "../../src/drummer/client.ts";
import { DrummerGroup } from "./group.ts";

const report = (raftAddress: string, extra: Record<string, unknown> = {}) => ({
  raftAddress,
  apiAddress: raftAddress.replace(":7001", ":8001"),
  region: "r1",
  deploymentId: 1,
  replicas: [],
  logsOnDisk: [],
  results: [],
  ...extra,
});

async function failure(p: Promise<unknown>): Promise<DrummerCallError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DrummerCallError) return e;
    throw e;
  }
  throw new Error("the call succeeded");
}

describe("three drummers", () => {
  const g = new DrummerGroup(5, 3, { deadTimeoutMs: 2000, reportIntervalMs: 500, passIntervalMs: 50 });
  let follower = 0;
  beforeAll(async () => {
    await g.startAll();
    await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
    await g.until(() => g.leader()!.db.state.drummers.size === 3, 5000, "every drummer registered");
    follower = g.members.find((m) => !m.drummer!.loop.leading)!.id;
  });
  afterAll(() => g.close());

  test("one leads; DrummerDB records its term, the deployment ID and every drummer's API address", () => {
    const leaders = g.members.filter((m) => m.drummer!.loop.leading);
    expect(leaders.length).toBe(1);
    const s = leaders[0]!.drummer!.db.state;
    expect(s.leaderDrummerId).toBe(leaders[0]!.id);
    expect(s.deploymentId).toBe(1);
    expect([...s.drummers.values()].map((d) => d.apiAddress).sort()).toEqual(
      g.members.map((m) => m.apiAddress),
    );
  });

  test("shards are defined through any drummer; an id in use and a bad app are refused naming the field", async () => {
    const r = await g.request(follower, "CreateShard", { shardId: 1, app: "kv", replicaCount: 3 });
    expect(r.shard).toMatchObject({ shardId: 1, app: "kv", replicaCount: 3 });
    const again = await failure(
      g.request(follower, "CreateShard", { shardId: 1, app: "kv", replicaCount: 3 }),
    );
    expect(again.code).toBe("already_exists");
    expect(again.detail).toBe("shard 1 is already defined (app kv, 3 replicas)");
    const badApp = await failure(
      g.request(follower, "CreateShard", { shardId: 2, app: "no such/app", replicaCount: 3 }),
    );
    expect(badApp.code).toBe("invalid_argument");
    expect(badApp.detail).toMatch(/^CreateShardRequest.app must be an app name/);
    const regions = await failure(
      g.request(follower, "CreateShard", {
        shardId: 2,
        app: "kv",
        replicaCount: 1,
        regions: [{ region: "eu", count: 2 }],
      }),
    );
    expect(regions.detail).toMatch(
      /CreateShardRequest.regions asks for 2 replicas in regions but the shard has 1/,
    );
  });

  test("bootstrap once; a second bootstrap is a clear failed_precondition", async () => {
    expect(await g.request(follower, "Bootstrap", {})).toMatchObject({ shardCount: 1 });
    const twice = await failure(g.request(follower, "Bootstrap", {}));
    expect(twice.code).toBe("failed_precondition");
    expect(twice.detail).toBe("the deployment is already bootstrapped");
  });

  test("a report to a follower reaches the leader; the reply says where the leader is and how often to report", async () => {
    const leader = g.leader()!;
    const r = await g.request(follower, "Report", report("h1:7001"));
    expect(r).toMatchObject({
      leaderDrummerId: leader.settings.drummerId,
      leaderApiAddress: leader.settings.apiAddress,
      reportIntervalMs: 500,
    });
    expect(leader.reports.hosts.has("h1:7001")).toBe(true);
    expect(g.members[follower - 1]!.drummer!.reports.hosts.size).toBe(0);
  });

  test("a reported replica's term and commit index come back from ListNodeHosts, also through a follower", async () => {
    const replica = {
      shardId: 9,
      replicaId: 2,
      app: "kv",
      isLeader: true,
      leaderReplicaId: 2,
      configChangeId: 3,
      members: [{ replicaId: 2, raftAddress: "h9:7001" }],
      appliedIndex: 40,
      pending: false,
      term: 5,
      commitIndex: 41,
    };
    await g.request(follower, "Report", report("h9:7001", { replicas: [replica] }));
    const listed = await g.request(follower, "ListNodeHosts", {});
    const host = (listed.nodehosts as { raftAddress: string; replicas: Record<string, unknown>[] }[]).find(
      (h) => h.raftAddress === "h9:7001",
    );
    expect(host?.replicas[0]).toMatchObject({ shardId: 9, appliedIndex: 40, term: 5, commitIndex: 41 });
    // A JSON report with a bad term is refused naming the field.
    expect(() =>
      parseReport(report("h9:7001", { replicas: [{ ...replica, term: "x" }] }), "ReportRequest"),
    ).toThrow("ReportRequest.replicas.0.term: expected uint64");
  });

  test("a report's live figures come back from ListNodeHosts with its host (the dashboard's charts); bad ones are refused", async () => {
    const figures = {
      sample: 3,
      intervalMs: 500,
      proposalsPerSecond: 120.5,
      proposalP99Ms: 25,
      fsyncsPerSecond: 40,
    };
    await g.request(follower, "Report", report("h8:7001", { figures }));
    const host = async () =>
      ((await g.request(follower, "ListNodeHosts", {})).nodehosts as Record<string, unknown>[]).find(
        (h) => h.raftAddress === "h8:7001",
      );
    expect((await host())?.figures).toEqual(figures);
    // A report without figures (an older NodeHost) keeps none.
    await g.request(follower, "Report", report("h8:7001"));
    expect((await host())?.figures ?? null).toBeNull();
    for (const [bad, message] of [
      [{ ...figures, proposalsPerSecond: -1 }, "figures.proposalsPerSecond: expected a finite number ≥ 0"],
      [{ ...figures, fsyncsPerSecond: "NaN" }, "figures.fsyncsPerSecond: expected a finite number ≥ 0"],
      [{ ...figures, intervalMs: 2 ** 33 }, "figures.intervalMs: 8589934592 exceeds the uint32 range"],
      [{ ...figures, cpu: 1 }, "figures.cpu: unknown field"],
    ] as const) {
      expect(() => parseReport(report("h8:7001", { figures: bad }), "ReportRequest")).toThrow(message);
    }
  });

  test("an app no live NodeHost runs is refused at CreateShard, also through a follower, naming the known apps", async () => {
    await g.request(follower, "Report", report("h2:7001", { apps: ["kv", "noop"] }));
    const nope = await failure(
      g.request(follower, "CreateShard", { shardId: 50, app: "nope", replicaCount: 3 }),
    );
    expect(nope.code).toBe("invalid_argument");
    expect(nope.detail).toBe('CreateShardRequest.app "nope" is run by no NodeHost (known: kv, noop)');
    expect(g.leader()!.db.state.shards.has(50)).toBe(false);
    // A known app passes the check (shard 1 exists: DrummerDB is what refuses it).
    const known = await failure(
      g.request(follower, "CreateShard", { shardId: 1, app: "kv", replicaCount: 3 }),
    );
    expect(known.code).toBe("already_exists");
  });

  test("bad reports are refused naming the field; another deployment's report is refused", async () => {
    const badAddress = await failure(g.request(follower, "Report", report("nowhere")));
    expect(badAddress).toMatchObject({ code: "invalid_argument" });
    expect(badAddress.detail).toMatch(/^ReportRequest.raftAddress must be host:port/);
    const app = g.members[follower - 1]!.app!;
    const res = await app.fetch(
      new Request("http://x/longboat.drummer.v1.DrummerService/Report", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(report("h1:7001", { replicas: [{ shardId: "x", colour: 1 }] })),
      }),
    );
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toMatch(/ReportRequest.replicas.0.shardId: expected uint64/);
    expect(body.message).toMatch(/ReportRequest.replicas.0.colour: unknown field/);
    const replica = { shardId: 4, replicaId: 1, app: "kv", configChangeId: 2, pending: true };
    const twice = await failure(
      g.request(follower, "Report", report("h1:7001", { replicas: [replica, { ...replica, replicaId: 2 }] })),
    );
    expect(twice).toMatchObject({ code: "invalid_argument" });
    expect(twice.detail).toBe("ReportRequest.replicas.1.shardId: shard 4 is listed twice");
    const other = await failure(g.request(follower, "Report", report("h9:7001", { deploymentId: 2 })));
    expect(other.code).toBe("failed_precondition");
    expect(other.detail).toBe("NodeHost h9:7001 belongs to deployment 2, these drummers to 1");
  });

  test("list shards answers the known ids and names the unknown ones, instead of failing (§11.11)", async () => {
    const r = await g.request(follower, "ListShards", { shardIds: [1, 99] });
    expect((r.shards as { definition: { shardId: number } }[]).map((s) => s.definition.shardId)).toEqual([1]);
    expect(r.unknownShardIds).toEqual([99]);
    expect(r.fromLeader).toBe(true);
  });

  test("get deployment, list drummers and /metrics answer on any drummer", async () => {
    const dep = await g.request(follower, "GetDeployment", {});
    expect(dep).toMatchObject({
      deploymentId: 1,
      bootstrapped: true,
      shardCount: 1,
      leaderDrummerId: g.leader()!.settings.drummerId,
    });
    const ds = await g.request(follower, "ListDrummers", {});
    expect((ds.drummers as unknown[]).length).toBe(3);
    const res = await g.members[follower - 1]!.app!.fetch(new Request("http://x/metrics"));
    const text = await res.text();
    expect(text).toContain("longboat_drummer_leader 0");
    expect(text).toContain('longboat_drummer_repairs_total{result="started"} 0');
  });

  test("add-drummer refuses an id already used or removed, and an address in use (§11.14)", async () => {
    const used = await failure(
      g.request(follower, "AddDrummer", { drummerId: 2, raftAddress: "10.9.0.9:9101" }),
    );
    expect(used).toMatchObject({ code: "already_exists", detail: "drummer 2 is a member already" });
    const at = await failure(
      g.request(follower, "AddDrummer", { drummerId: 7, raftAddress: "10.9.0.1:9101" }),
    );
    expect(at.detail).toBe("drummer 1 is at 10.9.0.1:9101 already");
  });

  test("SIGTERM's hand-over: the leader transfers DrummerDB leadership to a peer, which leads in a later term", async () => {
    const old = g.leader()!;
    const oldTerm = old.loop.leaderTerm;
    let handedOver: boolean | undefined;
    void old.handOverLeadership(5000).then((done) => {
      handedOver = done;
    });
    await g.until(() => handedOver !== undefined, 10_000, "the hand-over");
    expect(handedOver).toBe(true);
    await g.until(() => g.leader() !== undefined, 10_000, "a new leader");
    const now = g.leader()!;
    expect(now).not.toBe(old);
    expect(old.loop.leading).toBe(false);
    expect(now.loop.leaderTerm).toBeGreaterThan(oldTerm);
    expect(now.db.state.shards.has(1)).toBe(true);
  });

  test("the leader crashes: another drummer leads in a later term and continues", async () => {
    const old = g.leader()!;
    const oldTerm = old.loop.leaderTerm;
    await g.crash(old.settings.drummerId);
    await g.until(() => g.leader() !== undefined, 10_000, "a new leader");
    const now = g.leader()!;
    expect(now.loop.leaderTerm).toBeGreaterThan(oldTerm);
    expect(now.db.state.leaderTerm).toBe(now.loop.leaderTerm);
    expect(now.db.state.shards.has(1)).toBe(true);
  });
});

describe("a drummer removed from the group", () => {
  const g = new DrummerGroup(6, 3, { deadTimeoutMs: 2000, reportIntervalMs: 500, passIntervalMs: 50 });
  afterAll(() => g.close());

  test("answers every call unavailable, saying it was removed (cmd and NodeHosts then ask another drummer)", async () => {
    await g.startAll();
    await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
    await g.until(() => g.leader()!.db.state.drummers.size === 3, 5000, "every drummer registered");
    const leader = g.leader()!.settings.drummerId;
    const gone = g.members.find((m) => m.id !== leader)!.id;
    const left = await g.request(leader, "RemoveDrummer", { drummerId: gone });
    expect((left.drummers as { drummerId: number }[]).map((d) => d.drummerId)).not.toContain(gone);
    const removed = `drummer ${gone} was removed from the drummer group (remove-drummer) and serves nothing; ask another drummer`;
    // It stops its DrummerDB replica once it applies its own removal.
    await g.until(
      () => {
        try {
          g.members[gone - 1]!.drummer!.nodehost.getLeaderId(1);
          return false;
        } catch {
          return true;
        }
      },
      5000,
      `drummer ${gone} applied its removal`,
    );
    for (const [method, req] of [
      ["ListDrummers", {}],
      ["RemoveDrummer", { drummerId: leader }],
      ["GetDeployment", {}],
      ["ListShards", {}],
      ["CreateShard", { shardId: 5, app: "kv", replicaCount: 3 }],
      ["Report", report("10.0.0.1:7001")],
    ] as const) {
      const e = await failure(g.request(gone, method, req));
      expect([method, e.code, e.detail]).toEqual([method, "unavailable", removed]);
    }
    // The others serve on, without it.
    const ds = await g.request(leader, "ListDrummers", {});
    expect((ds.drummers as { drummerId: number }[]).map((d) => d.drummerId).sort()).toEqual(
      [1, 2, 3].filter((id) => id !== gone),
    );
    expect(g.leader()!.db.state.shards.has(5)).toBe(false);
  });
});
