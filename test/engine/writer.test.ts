// The engine with a slow log writer (MemoryLogDB's writer on the virtual clock): what waits for
// the writer, what does not, and what is written in the end (docs/durability.md).
import { afterEach, expect, test } from "bun:test";
import { longboat } from "../../src/pb/longboat.js";
import { SimCluster } from "./cluster.ts";

const kv = longboat.nodehost.v1;
const put = (key: string, value: string) =>
  kv.KvCommand.encode({ put: { key, value: new TextEncoder().encode(value) } }).finish();
const T = { timeoutMs: 3000 };
const WRITER_MS = 30;

let cluster: SimCluster;
afterEach(async () => {
  await cluster?.close();
});

async function threeHosts(): Promise<number> {
  cluster = new SimCluster(1, { writerLatencyMs: WRITER_MS });
  for (const i of [1, 2, 3]) await cluster.startHost(i);
  await cluster.startShard(1, [1, 2, 3]);
  return cluster.waitLeader(1);
}

test("a write waits for one writer round (leader and follower appends overlap), not also for the commit index", async () => {
  const leader = await threeHosts();
  await cluster.run(200); // the election's writes are done
  const nh = cluster.host(leader);
  const startMs = cluster.env.nowMs();
  await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("k", "v"), T));
  const elapsedMs = cluster.env.nowMs() - startMs;
  // The leader's Replicate leaves before its own write, so the follower's write overlaps it;
  // waiting for the commit-only hard state as well would add a second round (≥ 60 ms).
  expect(elapsedMs).toBeGreaterThanOrEqual(WRITER_MS);
  expect(elapsedMs).toBeLessThan(2 * WRITER_MS);
});

test("back-to-back writes (concurrency 1) wait for one writer round each, not also for the previous write's commit index", async () => {
  const leader = await threeHosts();
  await cluster.run(200);
  const nh = cluster.host(leader);
  const before = nh.stats.savedBatches;
  const startMs = cluster.env.nowMs();
  const n = 10;
  for (let i = 0; i < n; i++)
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`s${i}`, "v"), T));
  const perWriteMs = (cluster.env.nowMs() - startMs) / n;
  // Handing the commit-only hard state of write k to the writer alone made write k + 1 wait for
  // it: two leader rounds per write (≥ 60 ms each) instead of one.
  expect(perWriteMs).toBeLessThan(1.5 * WRITER_MS);
  expect(nh.stats.savedBatches - before).toBeLessThanOrEqual(n + 1);
});

test("the commit index nobody waited for still reaches every replica's disk", async () => {
  const leader = await threeHosts();
  const nh = cluster.host(leader);
  for (let i = 0; i < 5; i++)
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`k${i}`, "v"), T));
  const commit = nh.getNodeHostInfo().shards[0]!.commitIndex;
  await cluster.run(500); // heartbeats carry the commit index to the followers
  for (const i of [1, 2, 3]) {
    const ls = cluster.logdbs.get(i)!.readLogState({ shardId: 1, replicaId: i });
    expect(ls.state.commit).toBe(commit);
  }
});

test("proposals that arrive while the leader's Update is at the writer go out together in its next one", async () => {
  const leader = await threeHosts();
  await cluster.run(200);
  const nh = cluster.host(leader);
  const before = nh.stats.savedBatches;
  const writes = Array.from({ length: 40 }, (_, i) =>
    nh.syncPropose(nh.getNoOpSession(1), put(`b${i}`, "v"), T),
  );
  await cluster.settle(Promise.all(writes));
  // 40 proposals, one per loop turn as they arrive, fit in a handful of batches.
  expect(nh.stats.savedBatches - before).toBeLessThan(8);
});

test("a writer slower than an election timeout costs no leadership: heartbeats and their answers do not wait for it", async () => {
  // Election timeout: 10–20 ticks of 10 ms. Each batch below takes 250 ms, and writes keep the
  // leader's and the followers' Updates at the writer almost all the time.
  const opts = { writerLatencyMs: 0 };
  cluster = new SimCluster(7, opts);
  for (const i of [1, 2, 3]) await cluster.startHost(i);
  await cluster.startShard(1, [1, 2, 3]);
  const leader = await cluster.waitLeader(1);
  await cluster.run(200);
  const nh = cluster.host(leader);
  const term = nh.getLeaderId(1).term;
  opts.writerLatencyMs = 250;
  const startMs = cluster.env.nowMs();
  let written = 0;
  while (cluster.env.nowMs() - startMs < 4000) {
    const batch = Array.from({ length: 4 }, (_, k) =>
      nh.syncPropose(nh.getNoOpSession(1), put(`s${written + k}`, "v"), { timeoutMs: 5000 }),
    );
    await cluster.settle(Promise.all(batch));
    written += batch.length;
  }
  expect(written).toBeGreaterThan(0);
  for (const i of [1, 2, 3])
    expect(cluster.host(i).getLeaderId(1)).toEqual({ leaderId: leader, term, valid: true });
});
