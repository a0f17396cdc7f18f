/** The dashboard's views, filters and chart arithmetic: pure functions, checked on small inputs. */
import { describe, expect, test } from "bun:test";
import { chartPoint, parsePrometheus, quantileBetween, type Scrape } from "../../src/ui/metrics.ts";
import { DECISIONS_SHOWN, deploymentView, enumName, nodeHostView } from "../../src/ui/model.ts";
import { DEFAULT_UI, idMatches, shardRows, uiFromQuery, uiToQuery } from "../../src/ui/state.ts";

const member = (replicaId: number, raftAddress: string, state = "MEMBER_STATE_OK", isLeader = false) => ({
  replicaId: String(replicaId),
  raftAddress,
  apiAddress: "",
  state,
  isLeader,
});
const report = (shardId: number, replicaId: number, appliedIndex: number, isLeader = false) => ({
  shardId: String(shardId),
  replicaId: String(replicaId),
  app: "kv",
  isLeader,
  leaderReplicaId: "1",
  appliedIndex: String(appliedIndex),
  pending: false,
});

/** Connect JSON answers of a deployment: 3 hosts (h3 dead), shards 1 (ok) and 2 (repairing). */
function answers(finished = 0) {
  return {
    deployment: { deploymentId: "42", bootstrapped: true, shardCount: 2, leaderDrummerId: "2" },
    drummers: {
      drummers: [
        { drummerId: "2", raftAddress: "d2:6002", apiAddress: "d2:9002", isLeader: true },
        { drummerId: "1", raftAddress: "d1:6001", apiAddress: "d1:9001", isLeader: false },
      ],
      leaderDrummerId: "2",
    },
    nodehosts: {
      fromLeader: true,
      nodehosts: [
        {
          raftAddress: "h2:7002",
          apiAddress: "h2:8002",
          region: "b",
          state: "HOST_STATE_ALIVE",
          lastReportAgeMs: "300",
          reported: true,
          replicas: [report(1, 2, 90), report(2, 2, 50)],
          figures: { sample: "2", intervalMs: 500, proposalP99Ms: 9 },
        },
        {
          raftAddress: "h1:7001",
          apiAddress: "h1:8001",
          region: "a",
          state: "HOST_STATE_ALIVE",
          lastReportAgeMs: "100",
          reported: true,
          replicas: [report(1, 1, 100, true), report(2, 1, 60, true)],
          figures: {
            sample: "7",
            intervalMs: 500,
            proposalsPerSecond: 12.5,
            proposalP99Ms: 4,
            fsyncsPerSecond: "Infinity",
          },
        },
        {
          raftAddress: "h3:7003",
          apiAddress: "h3:8003",
          region: "a",
          state: "HOST_STATE_DEAD",
          lastReportAgeMs: "9000",
          reported: true,
          replicas: [report(1, 3, 10)],
        },
      ],
    },
    shards: {
      fromLeader: true,
      shards: [
        {
          definition: { shardId: "2", app: "kv", replicaCount: 3 },
          configChangeId: "7",
          leaderReplicaId: "1",
          health: "SHARD_HEALTH_REPAIRING",
          term: "4",
          commitIndex: "61",
          reason: "replica 3 on h3:7003 is dead",
          members: [member(2, "h2:7002"), member(1, "h1:7001", "MEMBER_STATE_OK", true)],
        },
        {
          definition: { shardId: "1", app: "counter", replicaCount: 3 },
          configChangeId: "3",
          leaderReplicaId: "1",
          health: "SHARD_HEALTH_OK",
          reason: "",
          members: [member(1, "h1:7001"), member(2, "h2:7002"), member(3, "h3:7003", "MEMBER_STATE_DEAD")],
        },
      ],
    },
    decisions: {
      inFlight: [
        {
          decisionId: "9",
          kind: "DECISION_KIND_ADD",
          shardId: "2",
          replicaId: "4",
          repair: true,
          state: "DECISION_STATE_IN_FLIGHT",
          createdMs: "1000",
        },
      ],
      finished: Array.from({ length: finished }, (_, i) => ({
        decisionId: String(i + 1),
        kind: "DECISION_KIND_CREATE",
        shardId: "1",
        state: "DECISION_STATE_DONE",
        endedMs: String(1000 + i),
      })),
      repairsStarted: "1",
      repairsDone: "0",
      repairsFailed: "0",
    },
  };
}

describe("deploymentView", () => {
  test("hosts by region, leader drummer, health counts, member lag from the live reports", () => {
    const v = deploymentView(answers());
    expect(v.deploymentId).toBe("42");
    expect(v.drummers.map((d) => [d.drummerId, d.isLeader])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect(v.nodehosts.map((h) => `${h.region}/${h.raftAddress}/${h.state}`)).toEqual([
      "a/h1:7001/alive",
      "a/h3:7003/dead",
      "b/h2:7002/alive",
    ]);
    expect(v.shards.map((s) => [s.shardId, s.health])).toEqual([
      [1, "ok"],
      [2, "repairing"],
    ]);
    expect(v.healthCounts.ok).toBe(1);
    expect(v.healthCounts.repairing).toBe(1);
    expect(v.healthCounts["no-quorum"]).toBe(0);
    const s1 = v.shards[0]!;
    // Leader 1 applied 100; replica 2 applied 90; replica 3's host is dead: its report is not used.
    expect(s1.members.map((m) => [m.replicaId, m.isLeader, m.appliedIndex, m.lag, m.state])).toEqual([
      [1, true, 100, 0, "ok"],
      [2, false, 90, 10, "ok"],
      [3, false, undefined, undefined, "dead"],
    ]);
    expect(v.inFlight.map((d) => [d.decisionId, d.kind, d.repair, d.state])).toEqual([
      [9, "add", true, "in-flight"],
    ]);
    expect(v.fromLeader).toBe(true);
    // Each host's live figures from its last report: a p99 only where proposals were answered;
    // a value that is not a finite number ≥ 0 reads as 0; no figures: undefined.
    const figures = Object.fromEntries(v.nodehosts.map((h) => [h.raftAddress, h.figures]));
    expect(figures).toEqual({
      "h1:7001": { sample: 7, intervalMs: 500, proposalsPerSecond: 12.5, p99Ms: 4, fsyncsPerSecond: 0 },
      "h2:7002": { sample: 2, intervalMs: 500, proposalsPerSecond: 0, p99Ms: undefined, fsyncsPerSecond: 0 },
      "h3:7003": undefined,
    });
    // The leader's term and commit index as ListShards gives them; absent: 0 (shown as "-").
    expect(v.shards.map((s) => [s.shardId, s.term, s.commitIndex])).toEqual([
      [1, 0, 0],
      [2, 4, 61],
    ]);
  });

  test("keeps the newest finished decisions only, newest first", () => {
    const v = deploymentView(answers(DECISIONS_SHOWN + 20));
    expect(v.finished.length).toBe(DECISIONS_SHOWN);
    expect(v.finished[0]!.decisionId).toBe(DECISIONS_SHOWN + 20);
    expect(v.finished.at(-1)!.decisionId).toBe(21);
  });

  test("answers missing or malformed give an empty view, not an exception", () => {
    const v = deploymentView({
      deployment: null,
      drummers: "x",
      nodehosts: { nodehosts: [1, null] },
      shards: {},
      decisions: [],
    });
    expect(v.shards).toEqual([]);
    expect(v.nodehosts.length).toBe(2);
    expect(v.nodehosts[0]!.state).toBe("unspecified");
    expect(nodeHostView(undefined).replicas).toEqual([]);
  });

  test("enum names from the JSON mapping or numbers", () => {
    expect(enumName("ROLE_PRE_VOTE_CANDIDATE", "ROLE_", [])).toBe("pre-vote-candidate");
    expect(enumName(2, "X_", ["a", "b", "c"])).toBe("c");
    expect(enumName(9, "X_", ["a"])).toBe("unknown");
    expect(enumName("", "X_", [])).toBe("unspecified");
  });
});

describe("filters and sorting", () => {
  const v = deploymentView(answers());
  test("id lists and ranges; an unreadable filter keeps all", () => {
    expect(idMatches("1,5-9", 7)).toBe(true);
    expect(idMatches("1,5-9", 4)).toBe(false);
    expect(idMatches("", 4)).toBe(true);
    expect(idMatches("abc", 4)).toBe(true);
  });
  test("by app, health and host; sorted by any column either way", () => {
    expect(shardRows(v.shards, { ...DEFAULT_UI, app: "COUNT" }).map((s) => s.shardId)).toEqual([1]);
    expect(shardRows(v.shards, { ...DEFAULT_UI, health: "repairing" }).map((s) => s.shardId)).toEqual([2]);
    expect(shardRows(v.shards, { ...DEFAULT_UI, host: "h3:7003" }).map((s) => s.shardId)).toEqual([1]);
    expect(shardRows(v.shards, { ...DEFAULT_UI, desc: true }).map((s) => s.shardId)).toEqual([2, 1]);
    expect(shardRows(v.shards, { ...DEFAULT_UI, sort: "lag", desc: true }).map((s) => s.shardId)).toEqual([
      1, 2,
    ]);
    expect(shardRows(v.shards, { ...DEFAULT_UI, sort: "app" }).map((s) => s.app)).toEqual(["counter", "kv"]);
  });
  test("the UI state survives the query string", () => {
    const ui = { ...DEFAULT_UI, sort: "health", desc: true, id: "1-3", host: "h1:7001" };
    expect(uiFromQuery(new URLSearchParams(uiToQuery(ui).slice(1)))).toEqual(ui);
    expect(uiToQuery(DEFAULT_UI)).toBe("");
    expect(uiFromQuery(new URLSearchParams("sort=<x>")).sort).toBe("shardId");
  });
});

describe("charts from /metrics", () => {
  const scrape = (atMs: number, proposals: number, fsyncs: number, buckets: [string, number][]): Scrape => ({
    atMs,
    samples: parsePrometheus(
      [
        "# HELP longboat_api_requests_total x",
        `longboat_api_requests_total{method="Propose",code="ok"} ${proposals}`,
        `longboat_api_requests_total{method="Status",code="ok"} 1000`,
        `longboat_logdb_saved_batches_total ${fsyncs}`,
        ...buckets.map(
          ([le, n]) => `longboat_api_request_duration_seconds_bucket{method="Propose",le="${le}"} ${n}`,
        ),
        'longboat_api_request_duration_seconds_bucket{method="Status",le="+Inf"} 500',
      ].join("\n"),
    ),
  });
  test("rates per second and the p99 of the interval's proposals", () => {
    const a = scrape(0, 100, 10, [
      ["0.001", 50],
      ["0.01", 100],
      ["+Inf", 100],
    ]);
    // 200 more proposals in 2 s: 190 under 1 ms, 8 under 10 ms, 2 over.
    const b = scrape(2000, 300, 30, [
      ["0.001", 240],
      ["0.01", 298],
      ["+Inf", 300],
    ]);
    const p = chartPoint(a, b);
    expect(p.proposals).toBe(100);
    expect(p.fsyncs).toBe(10);
    // rank 198 of 200: past the 1 ms bucket (190) and the 10 ms one (198 ≥ 198).
    expect(p.p99ms).toBe(10);
    expect(
      quantileBetween(
        a,
        b,
        "longboat_api_request_duration_seconds",
        0.5,
        (s) => s.labels.method === "Propose",
      ),
    ).toBe(0.001);
    // Nothing observed: no latency; a counter reset: no rate.
    expect(chartPoint(a, a).p99ms).toBeUndefined();
    expect(chartPoint(b, a).proposals).toBeUndefined();
  });
  test("label values with escapes and unreadable lines", () => {
    const s = parsePrometheus('a{x="q\\"uote",y="n\\nl"} 3\ngarbage line here\nb NaN\nc 1e3');
    expect(s).toEqual([
      { name: "a", labels: { x: 'q"uote', y: "n\nl" }, value: 3 },
      { name: "c", labels: {}, value: 1000 },
    ]);
  });
});
