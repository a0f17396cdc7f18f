// A client is told "done" only for its own request: a request is completed by the entry that
// carries its whole tag (proposer replica, engine epoch, key), never by another replica's entry
// or one replayed from the log after a restart, even when their keys are equal.
import { afterEach, describe, expect, test } from "bun:test";
import { type Env, ManualEnv } from "../../src/env.ts";
import { longboat } from "../../src/pb/longboat.js";
import type { RequestResult } from "../../src/engine/request.ts";
import { isSafeToRetry, LongboatError } from "../../src/engine/errors.ts";
import { hostAddress, RTT_MS, SimCluster } from "./cluster.ts";

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

describe("not applied or outcome unknown", () => {
  test("a proposal that never left the host when its replica stops is dropped (not applied)", async () => {
    cluster = new SimCluster(3);
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    await cluster.startShard(1, [1, 2, 3]);
    const leader = await cluster.waitLeader(1);
    const nh = cluster.host(leader);
    // Queued, not yet stepped into Raft: the engine cycle that would take it has not run.
    const queued = nh.propose(nh.getNoOpSession(1), put("q", "1"), T);
    nh.stopShard(1);
    const result = await cluster.settle(queued.result);
    expect(result.code).toBe("dropped");
    const error = await cluster
      .settle(nh.syncPropose(nh.getNoOpSession(1), put("q", "2"), T))
      .catch((e) => e);
    expect(error).toMatchObject({ code: "shardNotFound", outcomeUnknown: false });
  });

  test("a proposal handed to Raft when its replica stops is terminated: its outcome is unknown", async () => {
    cluster = new SimCluster(3);
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    await cluster.startShard(1, [1, 2, 3]);
    const leader = await cluster.waitLeader(1);
    const follower = cluster.host([1, 2, 3].find((i) => i !== leader)!);
    // Forwarded to the leader, which the network no longer reaches: it waits in Raft.
    cluster.net.isolate(hostAddress(leader));
    const pending = follower.syncPropose(follower.getNoOpSession(1), put("t", "1"), T).catch((e) => e);
    await cluster.run(5 * RTT_MS);
    follower.stopShard(1);
    const error = await cluster.settle(pending);
    expect(error).toBeInstanceOf(LongboatError);
    expect(error).toMatchObject({ code: "shardClosed", outcomeUnknown: true, temporary: true });
    expect(isSafeToRetry(error)).toBe(false);
  });
});

describe("commands the state machine refuses", () => {
  test("a command the app refuses as such is invalidCommand at once and never reaches the log", async () => {
    cluster = new SimCluster(5);
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    await cluster.startShard(1, [1, 2, 3]);
    const nh = cluster.host(await cluster.waitLeader(1));
    const lastBefore = nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!.commitIndex;
    const big = kv.KvCommand.encode({ put: { key: "big", value: new Uint8Array(3 * 1024 * 1024) } }).finish();
    for (const cmd of [big, put("", "v"), new Uint8Array([0xff, 0xff, 0xff])]) {
      let error: unknown;
      try {
        nh.propose(nh.getNoOpSession(1), cmd, T);
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: "invalidCommand", outcomeUnknown: false, temporary: false });
    }
    await cluster.run(20 * RTT_MS);
    expect(nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!.commitIndex).toBe(lastBefore);
  });

  test("syncPropose reports the log index its command was applied at", async () => {
    cluster = new SimCluster(5);
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    await cluster.startShard(1, [1, 2, 3]);
    const nh = cluster.host(await cluster.waitLeader(1));
    const first = await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("i", "1"), T));
    const second = await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("i", "2"), T));
    expect(first.index).toBeGreaterThan(3); // after the three bootstrap entries and a no-op
    expect(second.index).toBe(first.index + 1);
    expect(nh.stateHash(1).appliedIndex).toBeGreaterThanOrEqual(second.index);
  });
});
