// Events of real NodeHosts over the simulated network: what each kind reports and when, and
// that listeners never hold up the engine.
import { afterEach, describe, expect, test } from "bun:test";
import type { NodeHostEvent } from "../../src/engine/events.ts";
import type { NodeHost } from "../../src/nodehost.ts";
import { encodeKvCommand } from "../../src/statemachine/kv.ts";
import { hostAddress, SimCluster } from "./cluster.ts";

const T = { timeoutMs: 3000 };
const put = (key: string, value: string) =>
  encodeKvCommand({ op: "put", key, value: new TextEncoder().encode(value) });

let cluster: SimCluster;
afterEach(async () => {
  await cluster?.close();
});

/** Every event each host delivers to a listener, with the simulated time it arrived. */
class Recorder {
  readonly events = new Map<number, (NodeHostEvent & { atMs: number })[]>();
  constructor(private readonly c: SimCluster) {}

  attach(i: number, nh: NodeHost): void {
    const list = this.events.get(i) ?? [];
    this.events.set(i, list);
    nh.subscribe((e) => void list.push({ ...e, atMs: this.c.env.nowMs() }), { queueMax: 100_000 });
  }

  of<K extends NodeHostEvent["kind"]>(i: number, kind: K) {
    return (this.events.get(i) ?? []).filter((e): e is Extract<typeof e, { kind: K }> => e.kind === kind);
  }

  /** The last role host i reported for shard 1. */
  role(i: number): string {
    const last = this.of(i, "roleChanged").at(-1);
    return last ? `${last.role}/${last.term}` : "none/0";
  }
}

/** Restarts host i (after crashHost) with its replica of shard 1, recording its events. */
async function restart(rec: Recorder, i: number): Promise<void> {
  rec.attach(i, await cluster.startHost(i));
  await cluster.settle(
    cluster.host(i).startReplica({}, false, cluster.kv, { shardId: 1, replicaId: i }, { app: "kv" }),
  );
}

async function threeHosts(config = {}): Promise<{ rec: Recorder; leader: number }> {
  cluster = new SimCluster();
  const rec = new Recorder(cluster);
  for (const i of [1, 2, 3]) rec.attach(i, await cluster.startHost(i));
  await cluster.startShard(1, [1, 2, 3], config);
  const leader = await cluster.waitLeader(1);
  await cluster.until(() => rec.role(leader).startsWith("leader/"), 2000, "the leader's roleChanged");
  return { rec, leader };
}

describe("NodeHost events", () => {
  test("start: replicaReady and membershipChanged; an election: leaderUpdated everywhere, one leader, the others followers", async () => {
    const { rec, leader } = await threeHosts();
    const term = cluster.host(leader).getLeaderId(1).term;
    for (const i of [1, 2, 3]) {
      expect(rec.of(i, "replicaReady")).toEqual([expect.objectContaining({ shardId: 1, replicaId: i })]);
      expect(rec.of(i, "leaderUpdated").at(-1)).toMatchObject({ leaderId: leader, term });
      const expected =
        i === leader ? { role: "leader", leaderId: i } : { role: "follower", leaderId: leader };
      await cluster.until(() => rec.of(i, "roleChanged").length > 0, 1000, `host ${i}'s role`);
      expect(rec.of(i, "roleChanged").at(-1)).toMatchObject({ ...expected, term });
    }
    // The leader is reported only once its term's first entry is committed: a read succeeds then.
    expect(cluster.host(leader).getLeaderRole(1)).toEqual({ role: "leader", term, leaderId: leader });
  });

  test("a config change is reported as membershipChanged with its index and members on every host", async () => {
    const { rec, leader } = await threeHosts();
    const nh = cluster.host(leader);
    const m = await cluster.settle(nh.syncGetShardMembership(1, T));
    await cluster.settle(nh.syncRequestAddNonVoting(1, 9, hostAddress(9), m.configChangeId, T));
    await cluster.run(50);
    for (const i of [1, 2, 3]) {
      const last = rec.of(i, "membershipChanged").at(-1)!;
      expect(last.configChangeId).toBeGreaterThan(0);
      expect(last.voting.map((x) => x.replicaId)).toEqual([1, 2, 3]);
      expect(last.nonVoting).toEqual([{ replicaId: 9, address: hostAddress(9) }]);
    }
  });

  test("snapshots: snapshotCreated and logCompacted; a lagging replica gets snapshotReceived and snapshotRecovered", async () => {
    const { rec, leader } = await threeHosts({ snapshotEntries: 5, compactionOverhead: 2 });
    const lagging = leader === 3 ? 2 : 3;
    await cluster.crashHost(lagging);
    const nh = cluster.host(leader);
    for (let i = 0; i < 20; i++)
      await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`k${i}`, "v"), T));
    await cluster.run(50);
    const created = rec.of(leader, "snapshotCreated");
    expect(created.length).toBeGreaterThan(0);
    expect(rec.of(leader, "logCompacted").at(-1)!.index).toBe(created.at(-1)!.index - 2);
    await restart(rec, lagging);
    await cluster.until(() => rec.of(lagging, "snapshotReceived").length > 0, 5000, "snapshotReceived");
    const received = rec.of(lagging, "snapshotReceived").at(-1)!;
    expect(received.from).toBe(leader);
    await cluster.until(() => rec.of(lagging, "snapshotRecovered").length > 0, 5000, "snapshotRecovered");
    expect(rec.of(lagging, "snapshotRecovered").at(-1)!.index).toBe(received.index);
  });

  test("a restarted replica reports the snapshot it recovered at start, then replicaReady", async () => {
    const { rec, leader } = await threeHosts({ snapshotEntries: 5, compactionOverhead: 2 });
    const nh = cluster.host(leader);
    for (let i = 0; i < 10; i++)
      await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`k${i}`, "v"), T));
    const other = leader === 1 ? 2 : 1;
    await cluster.until(() => rec.of(other, "snapshotCreated").length > 0, 2000, "a follower's snapshot");
    await cluster.crashHost(other);
    rec.events.set(other, []);
    await restart(rec, other);
    await cluster.run(10);
    const kinds = (rec.events.get(other) ?? []).map((e) => e.kind);
    expect(kinds.indexOf("snapshotRecovered")).toBeGreaterThanOrEqual(0);
    expect(kinds.indexOf("snapshotRecovered")).toBeLessThan(kinds.indexOf("replicaReady"));
  });

  test("a cut-off leader is told none about one election timeout after it last heard a quorum, before the new leader is told leader", async () => {
    const { rec, leader } = await threeHosts();
    const oldTerm = cluster.host(leader).getLeaderId(1).term;
    const cutAt = cluster.env.nowMs();
    cluster.net.isolate(hostAddress(leader));
    const others = [1, 2, 3].filter((i) => i !== leader);
    const steppedDown = () => rec.of(leader, "leaderUpdated").some((e) => e.atMs >= cutAt);
    await cluster.until(
      () => others.some((i) => rec.role(i).startsWith("leader/")) && steppedDown(),
      5000,
      "a new leader's roleChanged and the old leader's CheckQuorum",
    );
    const none = rec.of(leader, "roleChanged").find((e) => e.role === "none" && e.atMs >= cutAt)!;
    expect(none.term).toBe(oldTerm);
    // The lease is one election timeout (10 ticks of 10 ms) after the last answer, checked every tick.
    expect(none.atMs - cutAt).toBeLessThanOrEqual(100 + 10);
    const fresh = others.flatMap((i) => rec.of(i, "roleChanged")).find((e) => e.role === "leader")!;
    expect(fresh.term).toBeGreaterThan(oldTerm);
    expect(fresh.atMs).toBeGreaterThan(none.atMs);
    // The Raft core itself believed it led until its CheckQuorum, later than the hooks were told.
    const stepDown = rec.of(leader, "leaderUpdated").find((e) => e.atMs >= cutAt)!;
    expect(stepDown.atMs).toBeGreaterThanOrEqual(none.atMs);
  });

  test("a cut-off leader stalled past its lease reports none at its first iteration after the stall: the lease counts the clock, not ticks", async () => {
    const { rec, leader } = await threeHosts();
    const stallAt = cluster.env.nowMs();
    cluster.net.isolate(hostAddress(leader));
    cluster.host(leader).stallForTest(600);
    await cluster.until(() => rec.role(leader).startsWith("none/"), 2000, "none after the stall");
    const none = rec.of(leader, "roleChanged").at(-1)!;
    expect(none.atMs).toBeGreaterThanOrEqual(stallAt + 600);
    expect(none.atMs).toBeLessThanOrEqual(stallAt + 600 + 10);
    // Its Raft core has counted one tick since: it still believes it leads.
    expect(cluster.host(leader).getNodeHostInfo().shards[0]!.isLeader).toBe(true);
  });

  test("shardUnavailable after three election timeouts without a leader, shardAvailable when it comes back", async () => {
    const { rec, leader } = await threeHosts();
    const survivor = leader === 1 ? 2 : 1;
    for (const i of [1, 2, 3]) if (i !== survivor) await cluster.crashHost(i);
    const lostAt = cluster.env.nowMs();
    await cluster.until(() => rec.of(survivor, "shardUnavailable").length > 0, 5000, "shardUnavailable");
    const unavailable = rec.of(survivor, "shardUnavailable")[0]!;
    expect(unavailable.electionTimeouts).toBe(3);
    // At most one election timeout to notice the leader is gone, then three without one.
    expect(unavailable.atMs - lostAt).toBeGreaterThanOrEqual(300);
    expect(unavailable.atMs - lostAt).toBeLessThanOrEqual(200 + 300 + 20);
    for (const i of [1, 2, 3]) {
      if (i !== survivor) await restart(rec, i);
    }
    await cluster.until(() => rec.of(survivor, "shardAvailable").length > 0, 5000, "shardAvailable");
  });

  test("proposals refused without a leader are reported as proposalDropped", async () => {
    const { rec, leader } = await threeHosts();
    const survivor = leader === 1 ? 2 : 1;
    for (const i of [1, 2, 3]) if (i !== survivor) await cluster.crashHost(i);
    const nh = cluster.host(survivor);
    await cluster.until(() => nh.getLeaderId(1).leaderId === 0, 5000, "no leader");
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("a", "1"), T)).catch(() => {});
    await cluster.run(10);
    expect(rec.of(survivor, "proposalDropped").reduce((a, e) => a + e.count, 0)).toBeGreaterThan(0);
  });

  test("a stopped replica reports none (if it had a role) and replicaStopped with the reason", async () => {
    const { rec, leader } = await threeHosts();
    const follower = leader === 1 ? 2 : 1;
    cluster.host(follower).stopShard(1);
    await cluster.run(5);
    const tail = (rec.events.get(follower) ?? []).slice(-2);
    expect(tail.map((e) => e.kind)).toEqual(["roleChanged", "replicaStopped"]);
    expect(tail[0]).toMatchObject({ role: "none", leaderId: 0 });
    expect(tail[1]).toMatchObject({ reason: "stopped by request" });
  });

  test("a throwing, a hanging and a slow listener never stop the engine: 200 proposals commit, drops are counted", async () => {
    cluster = new SimCluster();
    const hosts: NodeHost[] = [];
    for (const i of [1, 2, 3]) {
      const nh = await cluster.startHost(i);
      nh.subscribe(
        () => {
          throw new Error("a listener bug");
        },
        { name: "thrower" },
      );
      nh.subscribe(() => new Promise<void>(() => {}), { name: "hanging", queueMax: 4 });
      nh.subscribe(
        (e) => {
          const until = performance.now() + (e.kind === "leaderUpdated" ? 2 : 0);
          while (performance.now() < until) {} // a synchronous 2 ms of work
        },
        { name: "slow" },
      );
      hosts.push(nh);
    }
    await cluster.startShard(1, [1, 2, 3], { snapshotEntries: 50, compactionOverhead: 2 });
    const leader = cluster.host(await cluster.waitLeader(1));
    for (let batch = 0; batch < 10; batch++) {
      const writes = [];
      for (let i = 0; i < 20; i++)
        writes.push(leader.syncPropose(leader.getNoOpSession(1), put(`k${batch}.${i}`, "v"), T));
      await cluster.settle(Promise.all(writes));
    }
    await cluster.run(20);
    for (const nh of hosts) {
      const stats = nh.eventListenerStats();
      const hanging = stats.find((s) => s.name === "hanging")!;
      expect(hanging.delivered).toBe(0);
      expect(hanging.queued).toBe(4);
      expect(hanging.dropped).toBeGreaterThan(0);
      const thrower = stats.find((s) => s.name === "thrower")!;
      expect(thrower.dropped).toBe(0);
      expect(thrower.delivered).toBeGreaterThan(10);
      expect(nh.stateHash(1).appliedIndex).toBeGreaterThanOrEqual(200);
    }
  });
});
