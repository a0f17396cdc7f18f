// The leader's Focus: what a scheduling pass plans, bounded so that a pass does not hold the
// thread (and the DrummerDB replica's heartbeats) for long; the bound adapts to how long passes
// take on this machine, and what a pass could not take is planned first by the next.
import { describe, expect, test } from "bun:test";
import { DrummerDB } from "../../src/drummer/db/statemachine.ts";
import {
  Focus,
  PASS_BUDGET_MS,
  PLAN_SHARDS_PER_PASS_MAX,
  PLAN_SHARDS_PER_PASS_MIN,
} from "../../src/drummer/focus.ts";
import { ReportBook } from "../../src/drummer/reports.ts";
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerInput } from "../../src/drummer/scheduler/types.ts";

/** A report book where one host reports `count` replicas (shards 1..count): all of them dirty. */
function bookWith(count: number): ReportBook {
  const book = new ReportBook();
  const replicas = Array.from({ length: count }, (_, i) => ({
    shardId: i + 1,
    replicaId: 1,
    app: "kv",
    isLeader: true,
    leaderReplicaId: 1,
    configChangeId: 1,
    members: [{ replicaId: 1, raftAddress: "h1:7001" }],
    appliedIndex: 1,
    pending: false,
  }));
  book.record(
    {
      raftAddress: "h1:7001",
      apiAddress: "",
      region: "r",
      deploymentId: 1,
      replicas,
      logsOnDisk: [],
      results: [],
      apps: [],
    },
    0,
  );
  return book;
}

function input(book: ReportBook): SchedulerInput {
  return {
    state: new DrummerDB().state,
    hosts: book.hosts,
    nowMs: 0,
    listeningSinceMs: 0,
    index: book.index,
    config: DEFAULT_SCHEDULER_CONFIG,
  };
}

describe("Focus", () => {
  test("a new leader starts small; quick passes double it up to the maximum; a pass over the budget halves it, down to the minimum", () => {
    const f = new Focus();
    expect(f.limit).toBe(PLAN_SHARDS_PER_PASS_MIN);
    for (let i = 0; i < 20; i++) f.took(0);
    expect(f.limit).toBe(PLAN_SHARDS_PER_PASS_MAX);
    f.took(PASS_BUDGET_MS + 1);
    expect(f.limit).toBe(PLAN_SHARDS_PER_PASS_MAX / 2);
    for (let i = 0; i < 20; i++) f.took(10 * PASS_BUDGET_MS);
    expect(f.limit).toBe(PLAN_SHARDS_PER_PASS_MIN);
    f.took(PASS_BUDGET_MS / 2); // within budget, not quick: unchanged
    expect(f.limit).toBe(PLAN_SHARDS_PER_PASS_MIN);
    for (let i = 0; i < 20; i++) f.took(0);
    expect(f.limit).toBe(PLAN_SHARDS_PER_PASS_MAX);
  });

  test("what a pass cannot take waits in the backlog and is planned next, none lost", () => {
    const book = bookWith(300);
    const f = new Focus();
    expect(f.limit).toBe(PLAN_SHARDS_PER_PASS_MIN);
    const seen = new Set<number>();
    for (let pass = 0; pass < 5; pass++) {
      const focus = f.next(input(book), book);
      expect(focus.shards.size).toBeLessThanOrEqual(PLAN_SHARDS_PER_PASS_MIN);
      for (const id of focus.shards) seen.add(id);
    }
    expect(seen.size).toBe(300);
  });
  test("the rolling sweep takes only the room a pass has: it never leaves a backlog, and covers every shard", () => {
    const book = new ReportBook();
    const f = new Focus();
    const base = input(book);
    const views = new Map(
      Array.from({ length: 3000 }, (_, i) => [i + 1, { shardId: i + 1, members: [] }] as const),
    );
    const state = { ...base.state, views } as unknown as SchedulerInput["state"];
    const seen = new Set<number>();
    const passes = Math.ceil(3000 / PLAN_SHARDS_PER_PASS_MIN);
    for (let pass = 0; pass < passes; pass++) {
      const focus = f.next({ ...base, state }, book);
      expect(focus.shards.size).toBeLessThanOrEqual(PLAN_SHARDS_PER_PASS_MIN);
      expect(f.behind).toBe(false); // nothing waits: no reason to plan again at once
      for (const id of focus.shards) seen.add(id);
    }
    expect(seen.size).toBe(3000);
  });
});
