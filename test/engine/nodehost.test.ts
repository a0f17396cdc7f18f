import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { LongboatError } from "../../src/engine/errors.ts";
import { KvStateMachine } from "../../src/statemachine/kv.ts";
import type { CreateStateMachine, IOnDiskStateMachine, IStateMachine } from "../../src/statemachine/types.ts";
import { longboat } from "../../src/pb/longboat.js";
import { SIM_TEST_WALL_MS } from "../support/limits.ts";
import { hostAddress, SimCluster } from "./cluster.ts";

// Simulated time: every wait is bounded in simulated ms; the wall clock is only a backstop.
setDefaultTimeout(SIM_TEST_WALL_MS);

const kv = longboat.nodehost.v1;
const text = new TextEncoder();
const put = (key: string, value: string) =>
  kv.KvCommand.encode({ put: { key, value: text.encode(value) } }).finish();
const get = (key: string) => kv.KvQuery.encode({ get: { key } }).finish();
const readValue = (bytes: Uint8Array) => {
  const r = kv.KvQueryResult.decode(bytes);
  return r.found ? new TextDecoder().decode(r.value) : null;
};
const T = { timeoutMs: 3000 };

// Each test's cluster registers itself and is closed after the test however it ends.
let cluster: SimCluster;

async function threeHosts(shardId = 1, config = {}): Promise<number> {
  cluster = new SimCluster();
  for (const i of [1, 2, 3]) await cluster.startHost(i);
  await cluster.startShard(shardId, [1, 2, 3], config);
  return cluster.waitLeader(shardId);
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  let error: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(LongboatError);
  expect((error as LongboatError).code).toBe(code as LongboatError["code"]);
}

describe("three NodeHosts over the simulated network", () => {
  test("elect a leader, propose through it and read the value back from every host", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), T));
    for (const i of [1, 2, 3]) {
      const value = await cluster.settle(cluster.host(i).syncRead(1, get("a"), T));
      expect(readValue(value)).toBe("1");
    }
  });

  test("a stalled leader runs nothing until the stall ends, while the others elect a new leader", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    const termBefore = nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!.term;
    nh.stallForTest(600);
    let done = false;
    const pending = nh.syncPropose(nh.getNoOpSession(1), put("s", "1"), T).then(() => {
      done = true;
    });
    const others = [1, 2, 3].filter((i) => i !== leader);
    await cluster.until(
      () => others.some((i) => cluster.host(i).getNodeHostInfo({ skipLogInfo: true }).shards[0]!.isLeader),
      590,
      "a new leader among the hosts that are not stalled",
    );
    expect(done).toBe(false);
    // Nothing ran on the stalled host: it still believes it leads in its old term.
    const info = nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!;
    expect(info.isLeader).toBe(true);
    expect(info.term).toBe(termBefore);
    await cluster.settle(pending.catch(() => {}));
    await cluster.run(200);
    expect(nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!.isLeader).toBe(false);
    expect(() => nh.stallForTest(-1)).toThrow("Engine.stall: ms must be finite and ≥ 0, got -1");
  });

  test("a proposal made on a follower is forwarded to the leader and completes", async () => {
    const leader = await threeHosts();
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    const nh = cluster.host(follower);
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("f", "x"), T));
    expect(readValue(await cluster.settle(cluster.host(leader).syncRead(1, get("f"), T)))).toBe("x");
  });

  test("a session applies a retried proposal once and returns the first result", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    const session = await cluster.settle(nh.getNewSession(1, T));
    const cas = kv.KvCommand.encode({
      cas: { key: "c", expectedAbsent: true, value: text.encode("v1") },
    }).finish();
    const first = await cluster.settle(nh.syncPropose(session, cas, T));
    // The retry carries the same series id: it must not apply again (a second CAS would fail).
    const retry = await cluster.settle(nh.syncPropose(session, cas, T));
    expect(retry.value).toBe(first.value);
    expect(first.value).toBe(1);
    session.proposalCompleted();
    const second = await cluster.settle(nh.syncPropose(session, cas, T));
    expect(second.value).toBe(0);
  });

  test("leader transfer moves leadership to the requested replica", async () => {
    const leader = await threeHosts();
    const target = [1, 2, 3].find((i) => i !== leader)!;
    cluster.host(leader).requestLeaderTransfer(1, target);
    await cluster.until(() => cluster.leaderOf(1) === target, 5000, "leadership on the target");
    expect(cluster.host(target).getLeaderId(1).leaderId).toBe(target);
  });

  test("a full member, a non-voting and a witness can be added and a member removed", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    for (const i of [4, 5, 6]) await cluster.startHost(i);
    let m = await cluster.settle(nh.syncGetShardMembership(1, T));
    await cluster.settle(nh.syncRequestAddReplica(1, 4, hostAddress(4), m.configChangeId, T));
    await cluster.settle(
      cluster.host(4).startReplica({}, true, cluster.kv, { shardId: 1, replicaId: 4 }, { app: "kv" }),
    );
    m = await cluster.settle(nh.syncGetShardMembership(1, T));
    await cluster.settle(nh.syncRequestAddNonVoting(1, 5, hostAddress(5), m.configChangeId, T));
    await cluster.settle(
      cluster
        .host(5)
        .startReplica({}, true, cluster.kv, { shardId: 1, replicaId: 5, isNonVoting: true }, { app: "kv" }),
    );
    m = await cluster.settle(nh.syncGetShardMembership(1, T));
    await cluster.settle(nh.syncRequestAddWitness(1, 6, hostAddress(6), m.configChangeId, T));
    await cluster.settle(
      cluster
        .host(6)
        .startReplica({}, true, cluster.kv, { shardId: 1, replicaId: 6, isWitness: true }, { app: "kv" }),
    );
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("after", "adds"), T));
    // Followers learn the commit index lazily, each from its next Replicate or heartbeat
    // (docs/architecture.md): the non-voting and the new full member apply, not necessarily at once.
    await cluster.until(
      () =>
        readValue(cluster.host(5).staleRead(1, get("after"))) === "adds" &&
        readValue(cluster.host(4).staleRead(1, get("after"))) === "adds",
      5000,
      "the non-voting replica and the new member to apply",
    );
    m = await cluster.settle(nh.syncGetShardMembership(1, T));
    expect(m.addresses.map((a) => a.replicaId).sort()).toEqual([1, 2, 3, 4]);
    expect(m.nonVotings.map((a) => a.replicaId)).toEqual([5]);
    expect(m.witnesses.map((a) => a.replicaId)).toEqual([6]);
    const victim = [1, 2, 3, 4].find((i) => i !== leader)!;
    await cluster.settle(nh.syncRequestDeleteReplica(1, victim, m.configChangeId, T));
    m = await cluster.settle(nh.syncGetShardMembership(1, T));
    expect(m.addresses.map((a) => a.replicaId)).not.toContain(victim);
    expect(m.removed).toContain(victim);
  });

  test("a config change quoting a stale configChangeId is rejected", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    const m = await cluster.settle(nh.syncGetShardMembership(1, T));
    await expectCode(
      cluster.settle(nh.syncRequestAddReplica(1, 9, "10.0.0.9:7001", m.configChangeId + 7, T)),
      "rejected",
    );
  });

  test("snapshots compact the log and a follower that was away catches up by snapshot", async () => {
    const leader = await threeHosts(1, { snapshotEntries: 20, compactionOverhead: 5 });
    const nh = cluster.host(leader);
    const lagging = [1, 2, 3].find((i) => i !== leader)!;
    await cluster.crashHost(lagging);
    for (let i = 0; i < 80; i++)
      await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`k${i}`, `${i}`), T));
    const snapDir = join(cluster.root, `host-${leader}`, "snapshots");
    expect(existsSync(snapDir)).toBe(true);
    await cluster.startHost(lagging);
    await cluster.settle(
      cluster.host(lagging).startReplica(
        cluster.members([1, 2, 3]),
        false,
        cluster.kv,
        {
          shardId: 1,
          replicaId: lagging,
          snapshotEntries: 20,
          compactionOverhead: 5,
        },
        { app: "kv" },
      ),
    );
    await cluster.until(
      () => readValue(cluster.host(lagging).staleRead(1, get("k79"))) === "79",
      10_000,
      "the lagging replica to catch up",
    );
    const a = cluster.host(leader).stateHash(1);
    await cluster.until(
      () => cluster.host(lagging).stateHash(1).appliedIndex === a.appliedIndex,
      5000,
      "equal applied",
    );
    expect(cluster.host(lagging).stateHash(1).hash).toBe(cluster.host(leader).stateHash(1).hash);
  });

  test("a host restarted from its durable log keeps every acknowledged write", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    for (let i = 0; i < 10; i++)
      await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`r${i}`, `${i}`), T));
    for (const i of [1, 2, 3]) await cluster.crashHost(i);
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    for (const i of [1, 2, 3]) {
      await cluster.settle(
        cluster.host(i).startReplica({}, false, cluster.kv, { shardId: 1, replicaId: i }, { app: "kv" }),
      );
    }
    const newLeader = await cluster.waitLeader(1);
    for (let i = 0; i < 10; i++) {
      expect(readValue(await cluster.settle(cluster.host(newLeader).syncRead(1, get(`r${i}`), T)))).toBe(
        `${i}`,
      );
    }
  });

  test("100 shards on three hosts all elect leaders and accept writes", async () => {
    cluster = new SimCluster();
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    for (let s = 1; s <= 100; s++) await cluster.startShard(s, [1, 2, 3]);
    await cluster.until(
      () => {
        for (let s = 1; s <= 100; s++) if (cluster.leaderOf(s) === 0) return false;
        return true;
      },
      30_000,
      "leaders for 100 shards",
    );
    const writes: Promise<unknown>[] = [];
    for (let s = 1; s <= 100; s++) {
      const nh = cluster.host(cluster.leaderOf(s));
      writes.push(nh.syncPropose(nh.getNoOpSession(s), put("k", `${s}`), T));
    }
    await cluster.settle(Promise.all(writes));
    for (let s = 1; s <= 100; s++)
      expect(readValue(cluster.host(cluster.leaderOf(s)).staleRead(s, get("k")))).toBe(`${s}`);
  });
});

describe("error values", () => {
  test("shardNotFound for a shard this host does not run", async () => {
    await threeHosts();
    await expectCode(() => cluster.host(1).syncRead(99, get("a"), T), "shardNotFound");
  });

  test("timeoutTooSmall for a timeout shorter than one tick", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    await expectCode(
      () => nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), { timeoutMs: 1 }),
      "timeoutTooSmall",
    );
  });

  test("invalidDeadline for a non-positive timeout", async () => {
    const leader = await threeHosts();
    await expectCode(() => cluster.host(leader).syncRead(1, get("a"), { timeoutMs: 0 }), "invalidDeadline");
  });

  test("payloadTooBig for a proposal over maxProposalBytes", async () => {
    const leader = await threeHosts(1, { maxProposalBytes: 1024 });
    const nh = cluster.host(leader);
    await expectCode(() => nh.propose(nh.getNoOpSession(1), new Uint8Array(2048), T), "payloadTooBig");
  });

  test("invalidSession for a session of another shard", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    const session = await cluster.settle(nh.getNewSession(1, T));
    const foreign = Object.assign(Object.create(Object.getPrototypeOf(session)), session, { shardId: 2 });
    await expectCode(() => foreign.validateForProposal(1), "invalidSession");
  });

  test("systemBusy when the proposal queue is full", async () => {
    const leader = await threeHosts(1, { maxProposalQueue: 2 });
    const nh = cluster.host(leader);
    nh.propose(nh.getNoOpSession(1), put("a", "1"), T);
    nh.propose(nh.getNoOpSession(1), put("a", "2"), T);
    await expectCode(() => nh.propose(nh.getNoOpSession(1), put("a", "3"), T), "systemBusy");
  });

  test("systemBusy when reads awaiting confirmation reach maxPendingReads", async () => {
    const leader = await threeHosts(1, { checkQuorum: false, maxPendingReads: 2 });
    for (const i of [1, 2, 3]) if (i !== leader) await cluster.crashHost(i);
    const nh = cluster.host(leader);
    const waiting = [nh.syncRead(1, get("a"), T), nh.syncRead(1, get("a"), T)];
    for (const w of waiting) w.catch(() => {});
    await cluster.run(20); // no quorum: both stay unconfirmed
    await expectCode(() => nh.syncRead(1, get("a"), T), "systemBusy");
  });

  test("timeout when no quorum can be reached", async () => {
    const leader = await threeHosts(1, { checkQuorum: false });
    for (const i of [1, 2, 3]) if (i !== leader) await cluster.crashHost(i);
    const nh = cluster.host(leader);
    await expectCode(
      cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), { timeoutMs: 200 })),
      "timeout",
    );
  });

  test("shardNotReady when a read reaches a replica that knows no leader", async () => {
    const leader = await threeHosts();
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    for (const i of [1, 2, 3]) if (i !== follower) await cluster.crashHost(i);
    await cluster.run(1000);
    await expectCode(cluster.settle(cluster.host(follower).syncRead(1, get("a"), T)), "shardNotReady");
  });

  test("shardClosed for requests pending when the replica stops", async () => {
    const leader = await threeHosts(1, { checkQuorum: false });
    for (const i of [1, 2, 3]) if (i !== leader) await cluster.crashHost(i);
    const nh = cluster.host(leader);
    const pending = nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), T);
    await cluster.run(20);
    nh.stopShard(1);
    await expectCode(cluster.settle(pending), "shardClosed");
  });

  test("shardAlreadyExist when a shard is started twice on one host", async () => {
    await threeHosts();
    await expectCode(
      cluster
        .host(1)
        .startReplica(cluster.members([1, 2, 3]), false, cluster.kv, { shardId: 1, replicaId: 1 }),
      "shardAlreadyExist",
    );
  });

  test("shardAlreadyExist when a new shard is started twice at once (the first still writing its bootstrap record)", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    const nh = cluster.host(1);
    const start = () =>
      nh.startReplica(cluster.members([1]), false, cluster.kv, { shardId: 6, replicaId: 1 });
    const results = await Promise.allSettled([start(), start()]);
    expect(results[0]!.status).toBe("fulfilled");
    await expectCode(() => {
      if (results[1]!.status === "rejected") throw results[1]!.reason;
    }, "shardAlreadyExist");
    expect(nh.getNodeHostInfo({ skipLogInfo: true }).shards.filter((s) => s.shardId === 6)).toHaveLength(1);
  });

  test("replicas started together all start and elect (their bootstrap records written together)", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    const nh = cluster.host(1);
    const ids = Array.from({ length: 20 }, (_, i) => 10 + i);
    await cluster.settle(
      Promise.all(
        ids.map((shardId) =>
          nh.startReplica(cluster.members([1]), false, cluster.kv, { shardId, replicaId: 1 }),
        ),
      ),
    );
    for (const shardId of ids) await cluster.waitLeader(shardId);
    expect(nh.getNodeHostInfo().logsOnDisk).toHaveLength(20);
  });

  test("shardNotBootstrapped for a first start without members or join", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    await expectCode(
      cluster.host(1).startReplica({}, false, cluster.kv, { shardId: 5, replicaId: 1 }),
      "shardNotBootstrapped",
    );
  });

  test("invalidShardSettings for initial members that share an address", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    const p = cluster.host(1).startReplica({ 1: hostAddress(1), 2: hostAddress(1) }, false, cluster.kv, {
      shardId: 5,
      replicaId: 1,
    });
    await expect(p).rejects.toThrow(`address ${hostAddress(1)} is used by two initial members`);
  });

  test("invalidShardSettings for a replica that is not among its initial members", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    const p = cluster
      .host(1)
      .startReplica({ 2: hostAddress(2) }, false, cluster.kv, { shardId: 5, replicaId: 1 });
    await expect(p).rejects.toThrow("replica 1 is not among the initial members");
  });

  test("invalidShardSettings for a joining replica given initial members", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    const p = cluster
      .host(1)
      .startReplica(cluster.members([1]), true, cluster.kv, { shardId: 5, replicaId: 1 });
    await expect(p).rejects.toThrow("a joining replica takes no initial members");
  });

  test("invalidShardSettings for a restart with other initial members than its bootstrap", async () => {
    await threeHosts();
    await cluster.crashHost(1);
    await cluster.startHost(1);
    const p = cluster
      .host(1)
      .startReplica(cluster.members([1, 2]), false, cluster.kv, { shardId: 1, replicaId: 1 });
    await expect(p).rejects.toThrow("replica 1 of shard 1 was bootstrapped with other initial members");
  });

  test("invalidShardSettings for a config that breaks a rule, naming it", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    const p = cluster.host(1).startReplica(cluster.members([1]), false, cluster.kv, {
      shardId: 5,
      replicaId: 1,
      electionRtt: 2,
      heartbeatRtt: 1,
    });
    await expect(p).rejects.toThrow("electionRtt must be > 2 × heartbeatRtt, got 2 and 1");
  });

  test("invalidAddress for a member address that is not host:port", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    await expectCode(cluster.settle(nh.syncRequestAddReplica(1, 4, "nohost", 0, T)), "invalidAddress");
  });

  test("invalidTarget for a leader transfer to replica 0", async () => {
    const leader = await threeHosts();
    await expectCode(() => cluster.host(leader).requestLeaderTransfer(1, 0), "invalidTarget");
  });

  test("invalidTarget naming the members for a leader transfer to a replica that is not a member", async () => {
    const leader = await threeHosts();
    let error: unknown;
    try {
      cluster.host(leader).requestLeaderTransfer(1, 9);
    } catch (e) {
      error = e;
    }
    expect((error as LongboatError).code).toBe("invalidTarget");
    expect((error as Error).message).toContain(
      "replica 9 is not a member of shard 1 (voting members: 1,2,3)",
    );
  });

  test("invalidTarget for removing a replica that is not a member; the membership is unchanged", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    const before = await cluster.settle(nh.syncGetShardMembership(1, T));
    let error: unknown;
    try {
      await cluster.settle(nh.syncRequestDeleteReplica(1, 9, before.configChangeId, T));
    } catch (e) {
      error = e;
    }
    expect((error as LongboatError).code).toBe("invalidTarget");
    expect((error as Error).message).toContain("replica 9 is not a member of shard 1");
    const after = await cluster.settle(nh.syncGetShardMembership(1, T));
    expect(after.removed).toEqual(before.removed);
    expect(after.removed).not.toContain(9);
    expect(after.configChangeId).toBe(before.configChangeId);
  });

  test("invalidOperation for a read on a witness", async () => {
    cluster = new SimCluster();
    await cluster.startHost(1);
    await cluster.settle(
      cluster.host(1).startReplica({}, true, cluster.kv, { shardId: 3, replicaId: 7, isWitness: true }),
    );
    await expectCode(() => cluster.host(1).syncRead(3, get("a"), T), "invalidOperation");
  });

  test("rejected for a snapshot request when nothing was applied since the last one", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), T));
    await cluster.settle(nh.syncRequestSnapshot(1, T));
    await expectCode(cluster.settle(nh.syncRequestSnapshot(1, T)), "rejected");
  });

  test("a snapshot can be exported to an existing directory", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), T));
    const dir = join(cluster.root, "export");
    mkdirSync(dir);
    const index = await cluster.settle(nh.syncRequestSnapshot(1, { ...T, exportPath: dir }));
    expect(index).toBeGreaterThan(0);
    expect(readdirSync(dir).length).toBe(1);
  });

  test("replicaRemoved for calls on a host whose replica was removed from the shard", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    const victim = [1, 2, 3].find((i) => i !== leader)!;
    const m = await cluster.settle(nh.syncGetShardMembership(1, T));
    await cluster.settle(nh.syncRequestDeleteReplica(1, victim, m.configChangeId, T));
    await cluster.until(
      () =>
        !cluster
          .host(victim)
          .getNodeHostInfo()
          .shards.some((s) => s.shardId === 1),
      5000,
      "the removed replica to stop",
    );
    await expectCode(() => cluster.host(victim).staleRead(1, get("a")), "replicaRemoved");
  });

  test("a host whose replica was removed can run a new replica id of the shard, never the removed one", async () => {
    const leader = await threeHosts();
    const nh = cluster.host(leader);
    const victim = [1, 2, 3].find((i) => i !== leader)!;
    const m = await cluster.settle(nh.syncGetShardMembership(1, T));
    await cluster.settle(nh.syncRequestDeleteReplica(1, victim, m.configChangeId, T));
    const gone = () =>
      !cluster
        .host(victim)
        .getNodeHostInfo()
        .shards.some((s) => s.shardId === 1);
    await cluster.until(gone, 5000, "the removed replica to stop");
    const config = (replicaId: number) => ({ shardId: 1, replicaId, electionRtt: 10, heartbeatRtt: 1 });
    await expectCode(
      () => cluster.host(victim).startReplica({}, true, cluster.kv, config(victim)),
      "replicaRemoved",
    );
    const m2 = await cluster.settle(nh.syncGetShardMembership(1, T));
    await cluster.settle(
      nh.syncRequestAddReplica(1, 9, cluster.host(victim).raftAddress, m2.configChangeId, T),
    );
    await cluster.host(victim).startReplica({}, true, cluster.kv, config(9), { app: "kv" });
    await cluster.until(
      () =>
        cluster
          .host(victim)
          .getNodeHostInfo()
          .shards.some((s) => s.shardId === 1 && s.replicaId === 9 && s.appliedIndex > 0),
      5000,
      "the new replica to catch up",
    );
  });

  test("dirNotExist for a snapshot export into a missing directory", async () => {
    const leader = await threeHosts();
    await expectCode(
      () => cluster.host(leader).syncRequestSnapshot(1, { ...T, exportPath: join(cluster.root, "missing") }),
      "dirNotExist",
    );
  });

  test("invalidOption for a NodeHost with a zero rttMs", async () => {
    cluster = new SimCluster();
    await expectCode(() => cluster.startHost(1, { rttMs: 0 }), "invalidOption");
  });

  test("aborted when the state machine fails to save a snapshot, and the replica keeps serving", async () => {
    cluster = new SimCluster();
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    const failing: CreateStateMachine = (shardId, replicaId) => {
      const sm = cluster.kv(shardId, replicaId) as IStateMachine;
      sm.saveSnapshot = () => {
        throw new Error("disk full");
      };
      // The kv writes its snapshot in steps off the engine loop: fail after the first chunk.
      sm.snapshotChunks = function* () {
        yield new Uint8Array(8);
        throw new Error("disk full");
      };
      return sm;
    };
    for (const i of [1, 2, 3]) {
      await cluster.settle(
        cluster
          .host(i)
          .startReplica(
            cluster.members([1, 2, 3]),
            false,
            failing,
            { shardId: 1, replicaId: i },
            { app: "kv" },
          ),
      );
    }
    const leader = await cluster.waitLeader(1);
    const nh = cluster.host(leader);
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), T));
    await expectCode(cluster.settle(nh.syncRequestSnapshot(1, T)), "aborted");
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("a", "2"), T));
    expect(readValue(await cluster.settle(nh.syncRead(1, get("a"), T)))).toBe("2");
  });

  test("closed for any call after stop()", async () => {
    await threeHosts();
    const nh = cluster.host(1);
    await cluster.settle(nh.stop());
    await expectCode(() => nh.staleRead(1, get("a")), "closed");
  });
});

describe("48 shards on three hosts", () => {
  test("survive the loss and return of any one host with every acknowledged write intact", async () => {
    cluster = new SimCluster(7);
    const shards = 48;
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    for (let s = 1; s <= shards; s++) await cluster.startShard(s, [1, 2, 3]);
    for (let s = 1; s <= shards; s++) await cluster.waitLeader(s);
    const acked = new Map<string, string>();
    const writeRound = async (round: number, hosts: number[]) => {
      const writes: Promise<void>[] = [];
      for (let s = 1; s <= shards; s++) {
        const nh = cluster.host(hosts[s % hosts.length]!);
        const key = `s${s}-r${round}`;
        writes.push(
          nh.syncPropose(nh.getNoOpSession(s), put(key, `${round}`), T).then(
            () => void acked.set(`${s}/${key}`, `${round}`),
            () => {},
          ),
        );
      }
      await cluster.settle(Promise.all(writes));
    };
    for (const victim of [1, 2, 3]) {
      await writeRound(victim * 10, [1, 2, 3]);
      await cluster.crashHost(victim);
      const alive = [1, 2, 3].filter((i) => i !== victim);
      for (let s = 1; s <= shards; s++) await cluster.waitLeader(s);
      await writeRound(victim * 10 + 1, alive);
      await cluster.startHost(victim);
      for (let s = 1; s <= shards; s++) {
        await cluster.settle(
          cluster
            .host(victim)
            .startReplica({}, false, cluster.kv, { shardId: s, replicaId: victim }, { app: "kv" }),
        );
      }
      for (let s = 1; s <= shards; s++) await cluster.waitLeader(s);
    }
    expect(acked.size).toBeGreaterThan(shards * 5);
    for (const [k, v] of acked) {
      const [s, key] = k.split("/") as [string, string];
      for (const i of [1, 2, 3]) {
        const got = await cluster.settle(cluster.host(i).syncRead(Number(s), get(key), T));
        expect(readValue(got)).toBe(v);
      }
    }
  });
});

/** An on-disk kv for tests: the "disk" is an object that outlives the host (a crash keeps it). */
class DiskKv implements IOnDiskStateMachine {
  readonly type = "on-disk";
  private readonly kv = new KvStateMachine();
  private lastIndex = 0;
  constructor(private readonly disk: { data: Uint8Array | null; index: number }) {}
  open(): number {
    if (this.disk.data) this.kv.recoverFromSnapshot(this.disk.data);
    this.lastIndex = this.disk.index;
    return this.disk.index;
  }
  update(entries: { index: number; cmd: Uint8Array }[]) {
    this.lastIndex = entries.at(-1)?.index ?? this.lastIndex;
    return this.kv.update(entries);
  }
  lookup(query: Uint8Array) {
    return this.kv.lookup(query);
  }
  sync(): void {
    const chunks: Uint8Array[] = [];
    this.kv.saveSnapshot((c) => chunks.push(c));
    this.disk.data = Buffer.concat(chunks);
    this.disk.index = this.lastIndex;
  }
  prepareSnapshot(): null {
    return null;
  }
  saveSnapshot(_ctx: unknown, sink: (chunk: Uint8Array) => void): void {
    this.kv.saveSnapshot(sink);
  }
  recoverFromSnapshot(payload: Uint8Array): void {
    this.kv.recoverFromSnapshot(payload);
  }
  hash(): string {
    return this.kv.hash();
  }
  close(): void {}
}

describe("an on-disk state machine", () => {
  test("a follower that missed compacted entries catches up by a streamed snapshot, and hosts restart", async () => {
    cluster = new SimCluster(3);
    const disks = new Map<string, { data: Uint8Array | null; index: number }>();
    const create = (host: number) => (shardId: number, replicaId: number) => {
      const k = `${host}/${shardId}/${replicaId}`;
      if (!disks.has(k)) disks.set(k, { data: null, index: 0 });
      return new DiskKv(disks.get(k)!);
    };
    const cfg = (i: number) => ({ shardId: 1, replicaId: i, snapshotEntries: 10, compactionOverhead: 2 });
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    for (const i of [1, 2, 3]) {
      await cluster.settle(
        cluster.host(i).startReplica(cluster.members([1, 2, 3]), false, create(i), cfg(i)),
      );
    }
    const leader = await cluster.waitLeader(1);
    const lagging = [1, 2, 3].find((i) => i !== leader)!;
    await cluster.crashHost(lagging);
    const nh = cluster.host(leader);
    for (let i = 0; i < 40; i++)
      await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`d${i}`, `${i}`), T));
    await cluster.startHost(lagging);
    await cluster.settle(cluster.host(lagging).startReplica({}, false, create(lagging), cfg(lagging)));
    await cluster.until(
      () => readValue(cluster.host(lagging).staleRead(1, get("d39"))) === "39",
      10_000,
      "the lagging on-disk replica to catch up",
    );
    expect(readValue(cluster.host(lagging).staleRead(1, get("d0")))).toBe("0");
    // Every host restarts over its disk and its own (full) snapshots: nothing is lost or re-ordered.
    for (const i of [1, 2, 3]) await cluster.crashHost(i);
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    for (const i of [1, 2, 3])
      await cluster.settle(cluster.host(i).startReplica({}, false, create(i), cfg(i)));
    const after = await cluster.waitLeader(1);
    await cluster.settle(
      cluster.host(after).syncPropose(cluster.host(after).getNoOpSession(1), put("d0", "new"), T),
    );
    for (const i of [1, 2, 3]) {
      await cluster.until(
        () => readValue(cluster.host(i).staleRead(1, get("d0"))) === "new",
        5000,
        `host ${i} applies`,
      );
      expect(readValue(cluster.host(i).staleRead(1, get("d39")))).toBe("39");
    }
  });
});
