// The leader's ReportBook: what a report changes (the dirty shards and hosts the next pass
// plans), progress kept current on an unchanged report, and members left out of a report
// reused only when the book holds them at the same config-change index.
import { describe, expect, test } from "bun:test";
import type { DrummerRequest } from "../../src/drummer/api/schemas.ts";
import { ReportBook } from "../../src/drummer/reports.ts";

type Report = DrummerRequest<"Report">;
type Replica = Report["replicas"][number];

const members = [
  { replicaId: 1, raftAddress: "h1:7001" },
  { replicaId: 2, raftAddress: "h2:7001" },
  { replicaId: 3, raftAddress: "h3:7001" },
];

function replica(shardId: number, over: Partial<Replica> = {}): Replica {
  return {
    shardId,
    replicaId: 1,
    app: "kv",
    isLeader: false,
    leaderReplicaId: 2,
    configChangeId: 5,
    members: members.map((m) => ({ ...m })),
    appliedIndex: 10,
    pending: false,
    ...over,
  };
}

function report(replicas: Replica[]): Report {
  return {
    raftAddress: "h1:7001",
    apiAddress: "h1:8001",
    region: "eu",
    deploymentId: 1,
    replicas,
    logsOnDisk: replicas.map((r) => ({ shardId: r.shardId, replicaId: r.replicaId })),
    results: [],
    apps: ["kv"],
  };
}

describe("ReportBook", () => {
  test("a first report marks its host and shards dirty; the same report again marks nothing", () => {
    const book = new ReportBook();
    expect(book.record(report([replica(1), replica(2)]), 1000)).toBe("ok");
    const first = book.takeDirty();
    expect([...first.shards].sort()).toEqual([1, 2]);
    expect([...first.hosts]).toEqual(["h1:7001"]);
    expect(book.record(report([replica(1), replica(2)]), 2000)).toBe("ok");
    const second = book.takeDirty();
    expect(second.shards.size).toBe(0);
    expect(second.hosts.size).toBe(0);
    expect(book.hosts.get("h1:7001")!.lastReportMs).toBe(2000);
  });

  test("an unchanged report still updates the applied index and the leader the book shows", () => {
    const book = new ReportBook();
    book.record(report([replica(1)]), 1000);
    book.takeDirty();
    book.record(report([replica(1, { appliedIndex: 99, leaderReplicaId: 3 })]), 2000);
    expect(book.takeDirty().shards.size).toBe(0);
    const seen = book.hosts.get("h1:7001")!.replicas[0]!;
    expect(seen.appliedIndex).toBe(99);
    expect(seen.leaderReplicaId).toBe(3);
    expect(book.index.get(1)!.get("h1:7001")!.appliedIndex).toBe(99);
  });

  test("a replica that left, changed its config-change index or its leadership marks its shard dirty", () => {
    const book = new ReportBook();
    book.record(report([replica(1), replica(2), replica(3)]), 1000);
    book.takeDirty();
    book.record(report([replica(1, { configChangeId: 6 }), replica(2, { isLeader: true })]), 2000);
    expect([...book.takeDirty().shards].sort()).toEqual([1, 2, 3]);
    expect(book.index.has(3)).toBe(false);
  });

  test("members left out are taken from the book at the same config-change index", () => {
    const book = new ReportBook();
    book.record(report([replica(1)]), 1000);
    expect(book.record(report([replica(1, { members: [] })]), 2000)).toBe("ok");
    expect(book.hosts.get("h1:7001")!.replicas[0]!.members).toEqual(members);
    expect(book.index.get(1)!.get("h1:7001")!.members).toEqual(members);
  });

  test("members left out that the book lacks (new leader, other index) ask the host to resend them", () => {
    const fresh = new ReportBook();
    expect(fresh.record(report([replica(1, { members: [] })]), 1000)).toBe("resend");
    const book = new ReportBook();
    book.record(report([replica(1)]), 1000);
    expect(book.record(report([replica(1, { members: [], configChangeId: 6 })]), 2000)).toBe("resend");
    // A pending replica has no members to send: nothing is missing.
    expect(book.record(report([replica(1, { members: [], pending: true })]), 3000)).toBe("ok");
  });
  test("members left out again after a resend the host never heard of are asked for again, not taken as none", () => {
    // A new leader lacks the members: "resend". That answer is lost, so the host leaves them out
    // once more; the book's copy of the replica has no members either and must not be reused.
    const book = new ReportBook();
    expect(book.record(report([replica(1, { members: [] })]), 1000)).toBe("resend");
    expect(book.record(report([replica(1, { members: [] })]), 2000)).toBe("resend");
    expect(book.record(report([replica(1)]), 3000)).toBe("ok");
    expect(book.record(report([replica(1, { members: [] })]), 4000)).toBe("ok");
    expect(book.index.get(1)!.get("h1:7001")!.members).toEqual(members);
  });
  test("a log that appears or goes (the replicas unchanged) marks its shard dirty; the same logs again do not", () => {
    const book = new ReportBook();
    const withLogs = (logs: number[]) => ({
      ...report([replica(1)]),
      logsOnDisk: logs.map((shardId) => ({ shardId, replicaId: 1 })),
    });
    book.record(withLogs([1]), 1000);
    book.takeDirty();
    book.record(withLogs([1]), 2000);
    expect(book.takeDirty().shards.size).toBe(0);
    book.record(withLogs([1, 9]), 3000);
    expect(book.takeDirty().shards.has(9)).toBe(true);
    expect(book.hosts.get("h1:7001")!.logsOnDisk.has("9:1")).toBe(true);
    book.record(withLogs([1]), 4000);
    expect(book.takeDirty().shards.has(9)).toBe(true);
    expect(book.hosts.get("h1:7001")!.logsOnDisk.has("9:1")).toBe(false);
  });
});
