// What `cmd status`, `wait --healthy` and the list ops print against the drummers, and the
// health verdict that decides status's exit code, from hand-made snapshots.
import { describe, expect, test } from "bun:test";
import {
  decisionsOf,
  drummersOf,
  nodeHostsOf,
  type Snapshot,
  shardsOf,
} from "../../src/cli/commands/cmd-drummer-client.ts";
import {
  age,
  assess,
  progressText,
  shardsTable,
  statusJson,
  statusText,
} from "../../src/cli/commands/cmd-drummer-output.ts";

const h = (i: number) => `10.0.0.${i}:7001`;

function healthy(): Snapshot {
  return {
    deployment: { id: 1, bootstrapped: true, leaderDrummerId: 2 },
    drummers: [1, 2, 3].map((id) => ({
      id,
      raftAddress: `10.1.0.${id}:9101`,
      apiAddress: `10.1.0.${id}:9001`,
      leader: id === 2,
      healthy: true,
    })),
    nodehosts: [1, 2, 3, 4].map((i) => ({
      raftAddress: h(i),
      apiAddress: `10.0.0.${i}:8001`,
      region: i <= 2 ? "eu" : "us",
      state: "alive" as const,
      lastReportAgeMs: 400 * i,
      replicas: i === 4 ? 0 : 1,
    })),
    shards: [
      {
        id: 1,
        app: "kv",
        replicas: 3,
        regions: [{ region: "eu", count: 2 }],
        members: [1, 2, 3].map((r) => ({
          replicaId: r,
          raftAddress: h(r),
          state: "ok" as const,
          leader: r === 1,
        })),
        leaderReplicaId: 1,
        health: "ok" as const,
        reason: "",
      },
    ],
    unknownShardIds: [],
    inFlight: [],
    repairs: { started: 0, done: 0, failed: 0 },
    fromLeader: true,
    listening: false,
    errors: [],
  };
}

describe("the health verdict (status's exit code, wait's goal)", () => {
  test("every drummer answers, a leader, the leader's settled view, every shard ok: healthy", () => {
    expect(assess(healthy())).toEqual({ healthy: true, problems: [], notes: [] });
  });

  test("each way to be unhealthy is named", () => {
    const s = healthy();
    s.drummers[2]!.healthy = false;
    s.drummers[2]!.error = "connection refused";
    s.shards[0]!.health = "repairing";
    s.shards[0]!.reason = "add replica 4 (decision 9)";
    s.listening = true;
    expect(assess(s).problems).toEqual([
      "drummer 3 does not answer (connection refused)",
      "the drummer leader is new and still listening for NodeHosts (states are provisional)",
      "shard 1 repairing: add replica 4 (decision 9)",
    ]);
    const t = healthy();
    for (const d of t.drummers) d.leader = false;
    t.fromLeader = false;
    expect(assess(t).problems).toEqual([
      "the drummers have no leader",
      "the leader's live view could not be read (only committed records are shown)",
    ]);
    const u = healthy();
    u.errors.push("ListShards: no drummer could answer");
    expect(assess(u)).toMatchObject({ healthy: false, problems: ["ListShards: no drummer could answer"] });
  });

  test("a dead NodeHost that holds no member is a note, not a problem; one that holds a member makes its shard unhealthy", () => {
    const s = healthy();
    s.nodehosts[3]!.state = "dead";
    expect(assess(s)).toEqual({
      healthy: true,
      problems: [],
      notes: ["NodeHost 10.0.0.4:7001 is dead and holds no member of any shard"],
    });
    s.nodehosts[0]!.state = "dead";
    expect(assess(s).notes).toEqual(["NodeHost 10.0.0.4:7001 is dead and holds no member of any shard"]);
  });
});

describe("rendering", () => {
  test("status: one screen with drummers, NodeHosts, shards, decisions and the verdict", () => {
    const s = healthy();
    expect(statusText(s, assess(s))).toBe(
      [
        "deployment 1, bootstrapped, leader drummer 2 (10.1.0.2:9001)",
        "",
        "DRUMMERS (3)",
        "ID  API            RAFT           LEADER  HEALTHY",
        "1   10.1.0.1:9001  10.1.0.1:9101          yes",
        "2   10.1.0.2:9001  10.1.0.2:9101  yes     yes",
        "3   10.1.0.3:9001  10.1.0.3:9101          yes",
        "",
        "NODEHOSTS (4: 4 alive)",
        "RAFT           API            REGION  STATE  LAST REPORT  REPLICAS",
        "10.0.0.1:7001  10.0.0.1:8001  eu      alive  0.4s ago     1",
        "10.0.0.2:7001  10.0.0.2:8001  eu      alive  0.8s ago     1",
        "10.0.0.3:7001  10.0.0.3:8001  us      alive  1.2s ago     1",
        "10.0.0.4:7001  10.0.0.4:8001  us      alive  1.6s ago     0",
        "",
        "SHARDS (1: 1 ok)",
        "SHARD  APP  REPLICAS  REGIONS  LEADER  HEALTH  MEMBERS",
        "1      kv   3         eu=2     1       ok      1@10.0.0.1:7001* 2@10.0.0.2:7001 3@10.0.0.3:7001",
        "",
        "DECISIONS IN FLIGHT (0; repairs so far: 0 started, 0 done, 0 failed)",
        "(none)",
        "",
        "healthy",
      ].join("\n"),
    );
  });

  test("a member that does not run shows its state; an empty deployment says what to do", () => {
    const s = healthy();
    s.shards[0]!.members[2]!.state = "dead";
    expect(shardsTable(s.shards)).toContain("3@10.0.0.3:7001(dead)");
    const empty: Snapshot = { ...healthy(), nodehosts: [], shards: [] };
    const text = statusText(empty, assess(empty));
    expect(text).toContain(
      "(no NodeHost has reported yet: start them with --master and these drummers' API addresses)",
    );
    expect(text).toContain("(no shards defined: longboat cmd create-shard --id 1 --app kv --replicas 3)");
  });

  test("no drummer answered: the screen says so and lists the problems", () => {
    const s: Snapshot = {
      ...healthy(),
      deployment: null,
      drummers: [
        { id: 0, raftAddress: "", apiAddress: "d1:9001", leader: false, healthy: false, error: "refused" },
      ],
      nodehosts: [],
      shards: [],
      repairs: null,
      fromLeader: false,
      errors: ["no drummer could answer ListDrummers"],
    };
    const text = statusText(s, assess(s));
    expect(text.split("\n")[0]).toBe("deployment unknown: no drummer answered");
    expect(text).toContain("d1:9001  -     ");
    expect(text).toContain("NO: refused");
    expect(text.endsWith("  - the drummers have no leader")).toBe(true);
  });

  test("--json: one object with the verdict and every list", () => {
    const s = healthy();
    const j = statusJson(s, assess(s));
    expect(j).toMatchObject({ ok: true, healthy: true, problems: [], deployment: { id: 1 } });
    expect((j.shards as unknown[]).length).toBe(1);
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });

  test("the progress line of wait says how long, what runs and the first problem", () => {
    const s = healthy();
    s.shards[0]!.health = "repairing";
    s.shards[0]!.reason = "join replica 4";
    s.drummers[0]!.healthy = false;
    expect(progressText(s, assess(s), 12_500, 60_000)).toBe(
      "[12s of 1m] drummers: 2/3 answer; NodeHosts: 4 alive; shards: 1 repairing; waiting (drummer 1 does not answer (unknown) +1 more)",
    );
  });

  test("ages", () => {
    expect([age(null), age(400), age(12_500), age(61_000), age(3_600_000 + 120_000)]).toEqual([
      "never",
      "0.4s",
      "12s",
      "1m1s",
      "1h2m",
    ]);
  });
});

describe("reading the API's answers (numbers and enums as the client decodes them)", () => {
  test("enums become words; an unknown enum value is 'unknown', never a crash", () => {
    const shards = shardsOf({
      shards: [
        {
          definition: { shardId: 4, app: "kv", replicaCount: 3, regions: [] },
          members: [{ replicaId: 1, raftAddress: "a:1", state: 4, isLeader: false }],
          leaderReplicaId: 0,
          health: 99,
          reason: "x",
        },
      ],
    });
    expect(shards[0]).toMatchObject({ id: 4, health: "unknown", members: [{ state: "dead" }] });
    expect(
      nodeHostsOf({ nodehosts: [{ raftAddress: "a:1", state: 2, reported: false, replicas: [{}] }] }),
    ).toEqual([
      { raftAddress: "a:1", apiAddress: "", region: "", state: "dead", lastReportAgeMs: null, replicas: 1 },
    ]);
    expect(drummersOf({})).toEqual([]);
    expect(
      decisionsOf({ inFlight: [{ decisionId: 5, kind: 2, shardId: 1, repair: true }] })[0],
    ).toMatchObject({
      id: 5,
      kind: "add",
      repair: true,
    });
  });
});
