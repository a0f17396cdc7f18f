// Quiesced replicas and the engine loop: an idle shard that quiesced only counts ticks, so it
// stays out of the loop's per-tick work, and wakes on the next request.
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { QUIESCED_TICK_BATCH } from "../../src/engine/engine.ts";
import { longboat } from "../../src/pb/longboat.js";
import { SIM_TEST_WALL_MS } from "../support/limits.ts";
import { RTT_MS, SimCluster } from "./cluster.ts";

// Simulated time: the wall clock is only a backstop (bun's 5 s default failed under load).
setDefaultTimeout(SIM_TEST_WALL_MS);

const kv = longboat.nodehost.v1;
const put = (key: string, value: string) =>
  kv.KvCommand.encode({ put: { key, value: new TextEncoder().encode(value) } }).finish();
const T = { timeoutMs: 3000 };
const SHARDS = 20;

let cluster: SimCluster;
afterEach(async () => {
  await cluster?.close();
});

/** Three hosts, SHARDS shards with quiesce on; returns once every replica has quiesced. */
async function quiescedCluster(): Promise<void> {
  cluster = new SimCluster(7);
  for (const i of [1, 2, 3]) await cluster.startHost(i);
  for (let s = 1; s <= SHARDS; s++) await cluster.startShard(s, [1, 2, 3], { quiesce: true, electionRtt: 5 });
  for (let s = 1; s <= SHARDS; s++) await cluster.waitLeader(s);
  await cluster.until(
    () =>
      [1, 2, 3].every((i) =>
        cluster
          .host(i)
          .getNodeHostInfo()
          .shards.every((sh) => sh.quiesced),
      ),
    30_000,
    "every replica quiesced",
  );
}

test("quiesced replicas with nothing pending stay out of the per-tick iterations", async () => {
  await quiescedCluster();
  const nh = cluster.host(1);
  const before = nh.stats.iterations;
  const ticks = 640;
  await cluster.run(ticks * RTT_MS);
  const iterations = nh.stats.iterations - before;
  // One iteration per tick when every replica is stepped each tick; now about one per batch.
  expect(iterations).toBeLessThanOrEqual(2 * Math.ceil(ticks / QUIESCED_TICK_BATCH) + 2);
  expect(nh.getNodeHostInfo().shards.every((sh) => sh.quiesced)).toBe(true);
});

test("a write to a quiesced shard wakes it and completes", async () => {
  await quiescedCluster();
  const leader = cluster.leaderOf(3);
  const nh = cluster.host(leader);
  await cluster.settle(nh.syncPropose(nh.getNoOpSession(3), put("k", "v"), T));
  expect(nh.getNodeHostInfo().shards.find((s) => s.shardId === 3)?.quiesced).toBe(false);
});

test("quiesced replicas whose leadership view time cannot change are not stepped at all until input", async () => {
  await quiescedCluster();
  // Quiesced leaders of these three-replica shards are stepped every QUIESCED_TICK_BATCH-th
  // tick until their lease runs out and they report "none"; then nothing but input steps them.
  await cluster.run(3 * QUIESCED_TICK_BATCH * RTT_MS);
  const hosts = [1, 2, 3].map((i) => cluster.host(i));
  const before = hosts.map((nh) => nh.stats.iterations);
  await cluster.run(10 * QUIESCED_TICK_BATCH * RTT_MS);
  expect(hosts.map((nh, i) => nh.stats.iterations - before[i]!)).toEqual([0, 0, 0]);
  // A write wakes a shard: it steps the ticks it missed, answers, and its leader leads again.
  const leader = cluster.leaderOf(5);
  const nh = cluster.host(leader);
  await cluster.settle(nh.syncPropose(nh.getNoOpSession(5), put("k", "v"), T));
  const info = nh.getNodeHostInfo().shards.find((s) => s.shardId === 5);
  expect(info?.isLeader).toBe(true);
  expect(info?.quiesced).toBe(false);
});
