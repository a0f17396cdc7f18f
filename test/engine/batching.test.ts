// Per-turn batching of the engine's per-shard work (issue #16, "48 shards ≥ 1 shard"): with many
// shards on a host, the work of a loop turn must be paid once per turn, not once per shard or
// once per phase.
import { afterEach, expect, test } from "bun:test";
import { longboat } from "../../src/pb/longboat.js";
import type { Engine } from "../../src/engine/engine.ts";
import type { NodeHost } from "../../src/nodehost.ts";
import { SimCluster } from "./cluster.ts";

const kv = longboat.nodehost.v1;
const put = (key: string, value: string) =>
  kv.KvCommand.encode({ put: { key, value: new TextEncoder().encode(value) } }).finish();
const T = { timeoutMs: 5000 };
const SHARDS = 12;

/** Watches a host's loop turns: how many had work, and the most frames one of them sent. */
function watchTurns(nh: NodeHost): { turns: number; maxFrames: number } {
  const seen = { turns: 0, maxFrames: 0 };
  const e = (nh as unknown as { engine: Engine }).engine as unknown as {
    ready: Set<unknown>;
    saved: unknown[];
    runIteration(): void;
  };
  const run = e.runIteration.bind(e);
  e.runIteration = () => {
    if (e.ready.size > 0 || e.saved.length > 0) seen.turns++;
    const before = nh.transportStats()!.batchesSent;
    run();
    seen.maxFrames = Math.max(seen.maxFrames, nh.transportStats()!.batchesSent - before);
  };
  return seen;
}

let cluster: SimCluster;
afterEach(async () => {
  await cluster?.close();
});

test("a loop turn sends at most one frame to each peer host, whatever the number of shards and phases", async () => {
  cluster = new SimCluster(3, { writerLatencyMs: 5 });
  for (const i of [1, 2, 3]) await cluster.startHost(i);
  for (let s = 1; s <= SHARDS; s++) await cluster.startShard(s, [1, 2, 3]);
  for (let s = 1; s <= SHARDS; s++) await cluster.waitLeader(s);
  await cluster.run(300);
  const watched = [1, 2, 3].map((i) => watchTurns(cluster.host(i)));
  // Writes to every shard at once, in waves: turns then carry acknowledgements released by the
  // writer, replication, and answers that need no write, for many shards together.
  for (let wave = 0; wave < 5; wave++) {
    const writes: Promise<unknown>[] = [];
    for (let s = 1; s <= SHARDS; s++) {
      const nh = cluster.host(cluster.leaderOf(s));
      for (let k = 0; k < 3; k++)
        writes.push(nh.syncPropose(nh.getNoOpSession(s), put(`k${wave}-${k}`, "v"), T));
    }
    await cluster.settle(Promise.all(writes));
  }
  for (const w of watched) {
    expect(w.turns).toBeGreaterThan(0);
    // Two peer hosts; the frame size bound is far from reached by these small messages.
    expect(w.maxFrames).toBeGreaterThan(0);
    expect(w.maxFrames).toBeLessThanOrEqual(2);
  }
});
