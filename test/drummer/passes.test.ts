/**
 * The leader's passes on a virtual clock: a placement larger than one pass may launch goes on
 * in bounded chunks back to back (CATCH_UP_GAP_MS apart, each letting reports in between), not
 * one chunk per pass interval; with nothing left over, passes come once per interval.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CATCH_UP_GAP_MS } from "../../src/drummer/leader.ts";
import { DrummerGroup } from "./group.ts";

const SHARDS = 12;

describe("leader passes", () => {
  const g = new DrummerGroup(Number(process.env.LONGBOAT_TEST_SEED ?? 33), 3, {
    deadTimeoutMs: 4000,
    reportIntervalMs: 500,
    passIntervalMs: 1000,
    launchesPerPassMax: 1,
  });
  beforeAll(async () => {
    await g.startAll();
    await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
    for (const i of [1, 2, 3]) await g.startHost(i);
    await g.run(600); // every host reported once
  }, 60_000);
  afterAll(() => g.close());

  test("a placement beyond one pass's launches goes on at once, in chunks, not one per pass interval", async () => {
    for (let shardId = 1; shardId <= SHARDS; shardId++)
      await g.request(1, "CreateShard", { shardId, app: "kv", replicaCount: 3 });
    await g.request(1, "Bootstrap", {});
    const startMs = g.env.nowMs();
    // One shard a pass: SHARDS pass intervals (12 s) without catching up.
    await g.until(() => g.leader()?.db.state.views.size === SHARDS, 4000, "every shard placed");
    expect(g.env.nowMs() - startMs).toBeLessThan(SHARDS * 1000 * 0.4);
    expect(CATCH_UP_GAP_MS).toBeLessThan(1000);
  }, 60_000);

  test("with nothing left over, passes come once per pass interval", async () => {
    await g.run(3000); // every create seen running
    const leader = g.leader()!;
    const passes = leader.loop.counts.passes;
    await g.run(5000);
    const ran = leader.loop.counts.passes - passes;
    // Catching up would be one every CATCH_UP_GAP_MS (hundreds); a pass's own proposal may
    // stretch an interval, never shorten it.
    expect(ran).toBeLessThanOrEqual(6);
  }, 60_000);
});
