// A client is told "done" only for its own request: a request is completed by the entry that
// carries its whole tag (proposer replica, engine epoch, key), never by another replica's entry
// or one replayed from the log after a restart, even when their keys are equal.
import { afterEach, describe, expect, test } from "bun:test";
import { type Env, ManualEnv } from "../../src/env.ts";
import { longboat } from "../../src/pb/longboat.js";
import type { RequestResult } from "../../src/engine/request.ts";
import { SimCluster } from "./cluster.ts";

const kv = longboat.nodehost.v1;
const text = new TextEncoder();
const put = (key: string, value: string) =>
  kv.KvCommand.encode({ put: { key, value: text.encode(value) } }).finish();
const add = (key: string, delta: number) => kv.KvCommand.encode({ add: { key, delta } }).finish();
const get = (key: string) => kv.KvQuery.encode({ get: { key } }).finish();
const readValue = (bytes: Uint8Array) => {
  const r = kv.KvQueryResult.decode(bytes);
  return r.found ? new TextDecoder().decode(r.value) : null;
};
const T = { timeoutMs: 3000 };

/**
 * The cluster's clock and timers with a random stream of its own: every host given the same
 * seed draws the same numbers (request keys, epochs, election timeouts) as the others.
 */
function sameDraws(clock: ManualEnv, seed: number): Env {
  const rng = new ManualEnv(seed);
  return {
    nowMs: () => clock.nowMs(),
    setTimer: (delayMs, fn) => clock.setTimer(delayMs, fn),
    defer: (fn) => clock.defer(fn),
    random: () => rng.random(),
    nextInt: (n) => rng.nextInt(n),
  };
}

const SEED = 4242;
let cluster: SimCluster;
afterEach(async () => {
  await cluster?.close();
});

/** Hosts 1 and 2 draw the same numbers; host 3 (the cluster's own stream) leads shard 1. */
async function twinHosts(): Promise<void> {
  cluster = new SimCluster(7);
  await cluster.startHost(1, { env: sameDraws(cluster.env, SEED) });
  await cluster.startHost(2, { env: sameDraws(cluster.env, SEED) });
  await cluster.startHost(3);
  await cluster.startShard(1, [1, 2, 3]);
  let leader = await cluster.waitLeader(1);
  if (leader !== 3) {
    cluster.host(leader).requestLeaderTransfer(1, 3);
    await cluster.until(() => cluster.leaderOf(1) === 3, 5000, "leadership on host 3");
    leader = await cluster.waitLeader(1);
  }
  expect(leader).toBe(3);
}

describe("request acknowledgement", () => {
  test("two hosts that draw the same numbers each get their own request's result", async () => {
    await twinHosts();
    const one = cluster.host(1);
    const two = cluster.host(2);
    // Equal draws give both hosts' first requests equal keys; both are forwarded to host 3.
    const fromOne = one.syncPropose(one.getNoOpSession(1), add("counter", 1), T);
    const fromTwo = two.syncPropose(two.getNoOpSession(1), add("counter", 100), T);
    const [a, b] = await cluster.settle(Promise.all([fromOne, fromTwo]));
    const result = (r: { data: Uint8Array }) => Number(new TextDecoder().decode(r.data));
    // Whatever the order, host 1 saw its own +1 applied and host 2 its own +100.
    expect([result(a), result(b)]).toContainEqual(101);
    expect([1, 101]).toContain(result(a));
    expect([100, 101]).toContain(result(b));
    expect(result(a)).not.toBe(result(b));
  });

  test("a restarted host replaying another host's entries with equal keys completes none of its requests with them", async () => {
    await twinHosts();
    const two = cluster.host(2);
    const count = 20;
    for (let i = 0; i < count; i++) {
      await cluster.settle(two.syncPropose(two.getNoOpSession(1), put(`two-${i}`, "x"), T));
    }
    await cluster.until(
      () => cluster.host(1).getNodeHostInfo({ skipLogInfo: true }).shards[0]!.appliedIndex >= count + 4,
      5000,
      "host 1 applies host 2's writes",
    );
    // Host 1 restarts drawing the same numbers again: its keys restart where host 2's started.
    await cluster.crashHost(1);
    const one = await cluster.startHost(1, { env: sameDraws(cluster.env, SEED) });
    await cluster.settle(
      one.startReplica({}, false, cluster.kv, { shardId: 1, replicaId: 1 }, { app: "kv" }),
    );
    // Proposed before host 1's first engine cycle, which replays host 2's committed entries.
    const mine = Array.from({ length: count }, (_, i) =>
      one.propose(one.getNoOpSession(1), put(`one-${i}`, "mine"), T),
    );
    const results: RequestResult[] = await cluster.settle(Promise.all(mine.map((m) => m.result)));
    const leader = await cluster.waitLeader(1);
    for (let i = 0; i < count; i++) {
      const r = results[i]!;
      if (r.code !== "completed") continue; // dropped (no leader yet): not applied, and said so
      // "Completed" must mean this request's own write was applied.
      const value = await cluster.settle(cluster.host(leader).syncRead(1, get(`one-${i}`), T));
      expect({ i, value: readValue(value) }).toEqual({ i, value: "mine" });
    }
  });
});
