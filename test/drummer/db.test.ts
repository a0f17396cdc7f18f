import { describe, expect, test } from "bun:test";
import { DbCode } from "../../src/drummer/db/result.ts";
import { encodeUpdate, type DbUpdate } from "../../src/drummer/db/codec.ts";
import { DrummerDB } from "../../src/drummer/db/statemachine.ts";
import { DecisionKind, DecisionState } from "../../src/drummer/types.ts";
import { ManualEnv } from "../../src/env.ts";
import { longboat } from "../../src/pb/longboat.js";
import { decision, launch, members, step, TestDB } from "./helpers.ts";

/** A log exercising every update kind: definitions, launch, reports' views, a repair. */
function sampleLog(): DbUpdate[] {
  const m = members("h1:7001", "h2:7001", "h3:7001");
  return [
    { kind: "setDeployment", deploymentId: 9 },
    { kind: "registerDrummer", drummer: { drummerId: 1, apiAddress: "d1:9001" } },
    {
      kind: "createShard",
      shard: { shardId: 1, app: "kv", replicaCount: 3, regions: [{ region: "eu", count: 2 }] },
    },
    { kind: "createShard", shard: { shardId: 2, app: "noop", replicaCount: 1, regions: [] } },
    { kind: "bootstrap" },
    { kind: "leaderStarted", leaderTerm: 3, drummerId: 1 },
    {
      kind: "schedulerStep",
      step: step({
        leaderTerm: 3,
        nowMs: 500,
        hosts: [{ raftAddress: "h1:7001", apiAddress: "h1:8001", region: "eu" }],
        decisions: [...launch(1, "h1:7001", "h2:7001", "h3:7001"), ...launch(2, "h2:7001")],
      }),
    },
    {
      kind: "schedulerStep",
      step: step({
        leaderTerm: 3,
        nowMs: 900,
        ends: [1, 2, 3].map((id) => ({ decisionId: id, failed: false, outcome: "running" })),
      }),
    },
    {
      kind: "schedulerStep",
      step: step({ leaderTerm: 3, nowMs: 1200, views: [{ shardId: 1, configChangeId: 3, members: m }] }),
    },
    {
      kind: "schedulerStep",
      step: step({
        leaderTerm: 3,
        nowMs: 2000,
        decisions: [
          decision({
            kind: DecisionKind.Remove,
            shardId: 1,
            replicaId: 3,
            replicaAddress: "h3:7001",
            executorAddress: "h1:7001",
            configChangeId: 3,
            repair: true,
          }),
        ],
      }),
    },
  ];
}

describe("DrummerDB determinism and snapshots", () => {
  test("three replicas applying the same log, in different batches, have the same bytes and hash", () => {
    const log = sampleLog().map(encodeUpdate);
    const a = new DrummerDB();
    const b = new DrummerDB();
    const c = new DrummerDB();
    a.update(log.map((cmd, i) => ({ index: i + 1, cmd })));
    for (const [i, cmd] of log.entries()) b.update([{ index: i + 1, cmd }]);
    b.update([]);
    c.update(log.slice(0, 4).map((cmd, i) => ({ index: i + 1, cmd })));
    c.update(log.slice(4).map((cmd, i) => ({ index: i + 5, cmd })));
    expect(b.hash()).toBe(a.hash());
    expect(c.hash()).toBe(a.hash());
    expect(Buffer.from(b.lookup(new Uint8Array()))).toEqual(Buffer.from(a.lookup(new Uint8Array())));
    expect(a.state.inFlight.size).toBe(2); // shard 2's create and the removal
  });

  test("a snapshot round trip gives the same state and hash, and both go on alike", () => {
    const t = new TestDB();
    for (const u of sampleLog()) t.apply(u);
    const chunks: Uint8Array[] = [];
    t.db.saveSnapshot((c) => chunks.push(c));
    const copy = new DrummerDB();
    copy.recoverFromSnapshot(Buffer.concat(chunks));
    expect(copy.hash()).toBe(t.db.hash());
    expect(copy.state.views.get(1)).toEqual(t.state.views.get(1)!);
    expect([...copy.state.inFlight.keys()]).toEqual([...t.state.inFlight.keys()]);
    const next = encodeUpdate({
      kind: "schedulerStep",
      step: step({ leaderTerm: 3, nowMs: 3000, ends: [{ decisionId: 4, failed: true, outcome: "x" }] }),
    });
    t.db.update([{ index: 100, cmd: next }]);
    copy.update([{ index: 100, cmd: next }]);
    expect(copy.hash()).toBe(t.db.hash());
  });

  test("a snapshot of another schema version is refused with both versions named", () => {
    const bytes = longboat.drummer.v1.DrummerState.encode({ version: 99 }).finish();
    expect(() => new DrummerDB().recoverFromSnapshot(bytes)).toThrow(/schema version 99.*reads 1/);
  });

  test("lookup answers the empty query with the encoded state and refuses any other", () => {
    const t = TestDB.ready(1);
    const state = longboat.drummer.v1.DrummerState.decode(t.db.lookup(new Uint8Array()));
    expect(state.shards.map((s) => s.shardId)).toEqual([1]);
    expect(() => t.db.lookup(new Uint8Array([1]))).toThrow(/empty query/);
  });
});

describe("DrummerDB refuses malformed proposals without changing state", () => {
  const refusals: [string, DbUpdate | Uint8Array, number, RegExp][] = [
    ["undecodable bytes", new Uint8Array([0xff, 0xff, 0xff]), DbCode.Invalid, /not a DrummerUpdate/],
    ["an update with nothing set", new Uint8Array(0), DbCode.Invalid, /not a DrummerUpdate/],
    [
      "deployment id 0",
      { kind: "setDeployment", deploymentId: 0 },
      DbCode.Invalid,
      /deploymentId must be a positive/,
    ],
    [
      "another deployment id",
      { kind: "setDeployment", deploymentId: 8 },
      DbCode.Precondition,
      /is 7 already/,
    ],
    [
      "shard id 0",
      { kind: "createShard", shard: { shardId: 0, app: "kv", replicaCount: 3, regions: [] } },
      DbCode.Invalid,
      /shard.shardId/,
    ],
    [
      "a bad app name",
      { kind: "createShard", shard: { shardId: 5, app: "k v", replicaCount: 3, regions: [] } },
      DbCode.Invalid,
      /shard.app/,
    ],
    [
      "10 replicas",
      { kind: "createShard", shard: { shardId: 5, app: "kv", replicaCount: 10, regions: [] } },
      DbCode.Invalid,
      /replicaCount must be an integer in 1..9/,
    ],
    [
      "regions above the replica count",
      {
        kind: "createShard",
        shard: {
          shardId: 5,
          app: "kv",
          replicaCount: 3,
          regions: [
            { region: "eu", count: 2 },
            { region: "us", count: 2 },
          ],
        },
      },
      DbCode.Invalid,
      /asks for 4 replicas in regions but the shard has 3/,
    ],
    [
      "a region named twice",
      {
        kind: "createShard",
        shard: {
          shardId: 5,
          app: "kv",
          replicaCount: 3,
          regions: [
            { region: "eu", count: 1 },
            { region: "eu", count: 1 },
          ],
        },
      },
      DbCode.Invalid,
      /names region eu twice/,
    ],
    [
      "a region count of 0",
      { kind: "setRegions", shardId: 1, regions: [{ region: "eu", count: 0 }] },
      DbCode.Invalid,
      /regions\[0\].count/,
    ],
    [
      "regions of an undefined shard",
      { kind: "setRegions", shardId: 42, regions: [] },
      DbCode.Precondition,
      /shard 42 is not defined/,
    ],
    ["a second bootstrap", { kind: "bootstrap" }, DbCode.Precondition, /already bootstrapped/],
    [
      "a stale leader term",
      { kind: "leaderStarted", leaderTerm: 1, drummerId: 2 },
      DbCode.Precondition,
      /not after the current term 1/,
    ],
    [
      "a drummer with a bad API address",
      { kind: "registerDrummer", drummer: { drummerId: 1, apiAddress: "nowhere" } },
      DbCode.Invalid,
      /apiAddress must be host:port/,
    ],
    [
      "a step of another leader term",
      { kind: "schedulerStep", step: step({ leaderTerm: 2 }) },
      DbCode.Precondition,
      /leader term 2 is refused: DrummerDB's leader term is 1/,
    ],
    [
      "a step with maxRepairs 0",
      { kind: "schedulerStep", step: step({ maxRepairs: 0 }) },
      DbCode.Invalid,
      /maxRepairs must be a positive/,
    ],
  ];
  for (const [name, update, code, message] of refusals) {
    test(`refuses ${name}`, () => {
      const t = TestDB.ready(1);
      const before = t.db.hash();
      const r = t.apply(update);
      expect(r.code).toBe(code);
      expect(r.message).toMatch(message);
      expect(t.db.hash()).toBe(before);
    });
  }

  test("a step's bad items are skipped and named; the good ones apply; only the counter and the time move", () => {
    const t = TestDB.ready(1, 2);
    const r = t.step({
      nowMs: 5000,
      hosts: [
        { raftAddress: "h1:7001", apiAddress: "", region: "eu" },
        { raftAddress: "not an address", apiAddress: "", region: "eu" },
      ],
      decisions: [
        decision({ kind: 77 as DecisionKind, shardId: 1 }),
        decision({ kind: DecisionKind.Join, shardId: 9 }),
        ...launch(2, "h1:7001", "h2:7001", "h3:7001"),
      ],
    });
    expect(r.code).toBe(DbCode.Ok);
    expect(r.message).toMatch(/4 items, 3 skipped/);
    expect(r.message).toMatch(/host.raftAddress must be host:port/);
    expect(r.message).toMatch(/unknown kind/);
    expect(r.message).toMatch(/shard 9 is not defined/);
    expect(t.state.hosts.size).toBe(1);
    expect(t.state.inFlight.size).toBe(3);
    expect(t.state.counters.itemsRejected).toBe(3);
    expect(t.state.timeMs).toBe(5000);
  });
});

describe("DrummerDB operator updates", () => {
  test("create shard: a new id is defined, an id in use is refused naming its definition", () => {
    const t = new TestDB();
    const shard = { shardId: 4, app: "kv", replicaCount: 3, regions: [] };
    expect(t.apply({ kind: "createShard", shard }).code).toBe(DbCode.Ok);
    const again = t.apply({ kind: "createShard", shard: { ...shard, app: "noop" } });
    expect(again).toEqual({
      code: DbCode.Exists,
      message: "shard 4 is already defined (app kv, 3 replicas)",
    });
  });

  test("set regions of a placed shard applies to replacements and says so", () => {
    const t = TestDB.ready(1);
    t.step({ decisions: launch(1, "h1:7001", "h2:7001", "h3:7001") });
    const r = t.apply({ kind: "setRegions", shardId: 1, regions: [{ region: "us", count: 1 }] });
    expect(r.code).toBe(DbCode.Ok);
    expect(r.message).toMatch(/replacements follow the new regions/);
    expect(t.state.shards.get(1)!.regions).toEqual([{ region: "us", count: 1 }]);
  });

  test("drummer time only moves forward with the steps' stamps", () => {
    const t = TestDB.ready(1);
    t.step({ nowMs: 900 });
    t.step({ nowMs: 400 });
    expect(t.state.timeMs).toBe(900);
  });

  test("a new leader term refuses every step of the old one", () => {
    const t = TestDB.ready(1);
    expect(t.apply({ kind: "leaderStarted", leaderTerm: 5, drummerId: 2 }).code).toBe(DbCode.Ok);
    const old = t.step({ leaderTerm: 1, decisions: launch(1, "h1:7001", "h2:7001", "h3:7001") });
    expect(old.code).toBe(DbCode.Precondition);
    expect(t.state.inFlight.size).toBe(0);
    expect(t.step({ leaderTerm: 5, decisions: launch(1, "h1:7001", "h2:7001", "h3:7001") }).code).toBe(
      DbCode.Ok,
    );
    expect(t.state.inFlight.size).toBe(3);
  });
});

describe("DrummerDB decisions", () => {
  test("a launch creates the view; creates end when their replicas run", () => {
    const t = TestDB.ready(1);
    t.step({ decisions: launch(1, "h1:7001", "h2:7001", "h3:7001") });
    const view = t.state.views.get(1)!;
    expect(view.members.map((m) => m.raftAddress)).toEqual(["h1:7001", "h2:7001", "h3:7001"]);
    expect(view.unstartedReplicaIds).toEqual([1, 2, 3]);
    expect(view.nextReplicaId).toBe(4);
    t.step({ ends: [{ decisionId: 1, failed: false, outcome: "runs" }] });
    expect(t.state.views.get(1)!.unstartedReplicaIds).toEqual([2, 3]);
    expect(t.state.finished.map((d) => [d.decisionId, d.state])).toEqual([[1, DecisionState.Done]]);
  });

  test("a launch before bootstrap is refused", () => {
    const t = new TestDB();
    t.apply({ kind: "createShard", shard: { shardId: 1, app: "kv", replicaCount: 3, regions: [] } });
    t.apply({ kind: "leaderStarted", leaderTerm: 1, drummerId: 1 });
    const r = t.step({ decisions: launch(1, "h1:7001", "h2:7001", "h3:7001") });
    expect(r.message).toMatch(/not bootstrapped/);
    expect(t.state.views.size).toBe(0);
  });

  test("one change per shard at a time: a second change of a shard in flight is refused", () => {
    const t = placed();
    const remove = decision({
      kind: DecisionKind.Remove,
      shardId: 1,
      replicaId: 3,
      replicaAddress: "h3:7001",
      configChangeId: 3,
    });
    const add = decision({
      kind: DecisionKind.Add,
      shardId: 1,
      replicaAddress: "h4:7001",
      configChangeId: 3,
    });
    const r = t.step({ decisions: [remove, add] });
    expect(r.message).toMatch(/decision 4 \(remove replica 3\) is in flight; one change per shard at a time/);
    expect(t.state.inFlight.size).toBe(1);
  });

  test("an add allocates a replica id never used before; the view's new membership ends it", () => {
    const t = placed();
    t.step({
      decisions: [
        decision({ kind: DecisionKind.Add, shardId: 1, replicaAddress: "h4:7001", configChangeId: 3 }),
      ],
    });
    const add = [...t.state.inFlight.values()][0]!;
    expect(add.replicaId).toBe(4);
    const m = [...members("h1:7001", "h2:7001", "h3:7001"), { replicaId: 4, raftAddress: "h4:7001" }];
    t.step({ views: [{ shardId: 1, configChangeId: 10, members: m }] });
    expect(t.state.inFlight.size).toBe(0);
    expect(t.state.finished.at(-1)!.state).toBe(DecisionState.Done);
    expect(t.state.views.get(1)!.unstartedReplicaIds).toEqual([4]);
    expect(t.state.views.get(1)!.nextReplicaId).toBe(5);
  });

  test("a decision quoting a stale config-change index is refused at apply (§11.7)", () => {
    const t = placed();
    const r = t.step({
      decisions: [
        decision({
          kind: DecisionKind.Remove,
          shardId: 1,
          replicaId: 3,
          replicaAddress: "h3:7001",
          configChangeId: 2,
        }),
      ],
    });
    expect(r.message).toMatch(/quotes config-change index 2 but the shard's view is at 3/);
    expect(t.state.inFlight.size).toBe(0);
  });

  test("a removal ends when the membership drops the replica and records its region for the replacement", () => {
    const t = placed();
    t.step({ hosts: [{ raftAddress: "h3:7001", apiAddress: "", region: "eu-west" }] });
    t.step({
      decisions: [
        decision({
          kind: DecisionKind.Remove,
          shardId: 1,
          replicaId: 3,
          replicaAddress: "h3:7001",
          configChangeId: 3,
          repair: true,
        }),
      ],
    });
    t.step({ views: [{ shardId: 1, configChangeId: 8, members: members("h1:7001", "h2:7001") }] });
    const view = t.state.views.get(1)!;
    expect(view.removedReplicaIds).toEqual([3]);
    expect(view.wantedRegion).toBe("eu-west");
    expect(t.state.finished.at(-1)!.state).toBe(DecisionState.Done);
    expect(t.state.repairing.has(1)).toBe(true);
  });

  test("equal config-change index with different members is refused, not a crash (§11.8)", () => {
    const t = placed();
    const r = t.step({ views: [{ shardId: 1, configChangeId: 3, members: members("h1:7001", "h2:7001") }] });
    expect(r.message).toMatch(
      /at config-change index 3 reported as \[1,2\] but DrummerDB has \[1,2,3\]; DrummerDB's is kept/,
    );
    expect(t.state.views.get(1)!.members.length).toBe(3);
  });

  test("a member whose address changed is refused, not a crash (§11.8)", () => {
    const t = placed();
    const r = t.step({
      views: [{ shardId: 1, configChangeId: 9, members: members("h1:7001", "h2:7001", "h9:7001") }],
    });
    expect(r.message).toMatch(/replica 3 moved from h3:7001 to h9:7001; refused/);
  });

  test("two members at one address are refused, not a crash (§11.8)", () => {
    const t = placed();
    const r = t.step({
      views: [{ shardId: 1, configChangeId: 9, members: members("h1:7001", "h1:7001", "h3:7001") }],
    });
    expect(r.message).toMatch(/puts two replicas at h1:7001/);
  });

  test("at most maxRepairs shards are repaired at once; a shard already in repair keeps going", () => {
    const t = TestDB.ready(1, 2, 3);
    for (const s of [1, 2, 3]) t.step({ decisions: launch(s, "h1:7001", "h2:7001", "h3:7001") });
    t.step({
      ends: [...t.state.inFlight.keys()].map((decisionId) => ({ decisionId, failed: false, outcome: "" })),
    });
    const remove = (shardId: number) =>
      decision({ kind: DecisionKind.Remove, shardId, replicaId: 3, replicaAddress: "h3:7001", repair: true });
    const r = t.step({ maxRepairs: 2, decisions: [remove(1), remove(2), remove(3)] });
    expect(r.message).toMatch(/2 shards are being repaired already \(--max-repairs 2\)/);
    expect([...t.state.repairing]).toEqual([1, 2]);
    t.step({ views: [{ shardId: 1, configChangeId: 5, members: members("h1:7001", "h2:7001") }] });
    const add = decision({
      kind: DecisionKind.Add,
      shardId: 1,
      replicaAddress: "h4:7001",
      configChangeId: 5,
      repair: true,
    });
    expect(t.step({ maxRepairs: 2, decisions: [add] }).message).not.toMatch(/skipped/);
    expect(t.step({ repairsDoneShardIds: [2] }).code).toBe(DbCode.Ok);
    expect(t.state.counters).toMatchObject({ repairsStarted: 2, repairsDone: 1 });
  });

  test("a zombie is killed only once its removal is committed", () => {
    const t = placed();
    const kill = decision({
      kind: DecisionKind.Kill,
      shardId: 1,
      replicaId: 3,
      replicaAddress: "h3:7001",
      executorAddress: "h3:7001",
    });
    expect(t.step({ decisions: [kill] }).message).toMatch(
      /replica 3 is a member; only replicas whose removal is committed/,
    );
    t.step({ views: [{ shardId: 1, configChangeId: 8, members: members("h1:7001", "h2:7001") }] });
    expect(t.step({ decisions: [kill] }).message).not.toMatch(/skipped/);
    const committed = [...t.state.inFlight.values()].at(-1)!;
    expect(committed).toMatchObject({ configChangeId: 8, currentMembers: members("h1:7001", "h2:7001") });
    expect(t.step({ decisions: [kill] }).message).toMatch(/one change per shard/);
    const never = decision({
      kind: DecisionKind.Kill,
      shardId: 1,
      replicaId: 50,
      replicaAddress: "h3:7001",
      executorAddress: "h3:7001",
    });
    expect(t.step({ decisions: [never] }).message).toMatch(/replica 50 was never part of the shard/);
  });

  test("finished decisions are bounded; the oldest go first", () => {
    const t = placed();
    const kill = (replicaAddress: string) =>
      decision({
        kind: DecisionKind.Kill,
        shardId: 1,
        replicaId: 3,
        replicaAddress,
        executorAddress: replicaAddress,
      });
    t.step({ views: [{ shardId: 1, configChangeId: 8, members: members("h1:7001", "h2:7001") }] });
    for (let i = 0; i < 1005; i++) {
      t.step({ decisions: [kill(`k${i}:7001`)] });
      t.step({ ends: [{ decisionId: t.state.nextDecisionId - 1, failed: false, outcome: "" }] });
    }
    expect(t.state.finished.length).toBe(1000);
    expect(t.state.finished[0]!.replicaAddress).toBe("k5:7001");
  });
});

/** Shard 1 launched on h1..h3, every replica running, the view at config-change index 3. */
function placed(): TestDB {
  const t = TestDB.ready(1);
  t.step({ decisions: launch(1, "h1:7001", "h2:7001", "h3:7001") });
  t.step({ ends: [1, 2, 3].map((decisionId) => ({ decisionId, failed: false, outcome: "" })) });
  t.step({ views: [{ shardId: 1, configChangeId: 3, members: members("h1:7001", "h2:7001", "h3:7001") }] });
  return t;
}

describe("DrummerDB never throws on input", () => {
  test("random bytes and bit-flipped valid updates are applied or refused, never thrown", () => {
    const env = new ManualEnv(11);
    const db = new DrummerDB();
    const valid = sampleLog().map(encodeUpdate);
    let index = 0;
    for (let i = 0; i < 3000; i++) {
      let cmd: Uint8Array;
      if (i % 2 === 0) {
        cmd = new Uint8Array(env.nextInt(64)).map(() => env.nextInt(256));
      } else {
        cmd = valid[env.nextInt(valid.length)]!.slice();
        for (let f = 0; f < 1 + env.nextInt(4); f++) {
          const at = env.nextInt(cmd.length);
          cmd[at] = cmd[at]! ^ (1 << env.nextInt(8));
        }
      }
      expect(() => db.update([{ index: ++index, cmd }])).not.toThrow();
    }
    expect(() => db.hash()).not.toThrow();
  });
});
