// Data lifecycle on NodeHosts over the simulated network: removeData, compaction control,
// log queries (issue #19).
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { LongboatError } from "../../src/engine/errors.ts";
import { longboat } from "../../src/pb/longboat.js";
import { EntryType } from "../../src/raft/types.ts";
import { SimCluster } from "./cluster.ts";
import { get, put, readValue } from "./kv.ts";

const kv = longboat.nodehost.v1;
const T = { timeoutMs: 3000 };

let cluster: SimCluster;
afterEach(async () => {
  await cluster?.close();
});

async function threeHosts(config = {}): Promise<number> {
  cluster = new SimCluster();
  for (const i of [1, 2, 3]) await cluster.startHost(i);
  await cluster.startShard(1, [1, 2, 3], config);
  return cluster.waitLeader(1);
}

async function writes(host: number, from: number, to: number): Promise<void> {
  const nh = cluster.host(host);
  for (let i = from; i < to; i++)
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put(`k${i}`, `${i}`), T));
}

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<LongboatError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(LongboatError);
    return e as LongboatError;
  }
  throw new Error("expected a LongboatError, the call succeeded");
}

const snapshotDirOf = (host: number, replica: number) =>
  join(cluster.root, `host-${host}`, "snapshots", `1-${replica}`);

describe("removeData", () => {
  test("is refused while the replica runs, and while its own log shows it a member", async () => {
    const leader = await threeHosts();
    const other = [1, 2, 3].find((i) => i !== leader)!;
    const nh = cluster.host(other);
    const running = await errorOf(() => nh.removeData(1, other));
    expect(running.code).toBe("shardNotStopped");
    expect(running.message).toContain("remove it from the shard first");
    // Not on its way out: syncRemoveData refuses at once instead of waiting.
    expect((await errorOf(cluster.settle(nh.syncRemoveData(1, other, T), 100))).code).toBe("shardNotStopped");
    nh.stopShard(1);
    const member = await errorOf(() => nh.removeData(1, other));
    expect(member.code).toBe("rejected");
    expect(member.message).toContain(`replica ${other} is still a member of shard 1`);
    const m = await cluster.settle(cluster.host(leader).syncGetShardMembership(1, T));
    const given = await errorOf(() => nh.removeData(1, other, { membership: m }));
    expect(given.code).toBe("rejected");
    expect(given.message).toContain("in the given membership");
    expect(nh.getNodeHostInfo().logsOnDisk).toContainEqual({ shardId: 1, replicaId: other });
    const unknown = await errorOf(() => nh.removeData(1, 9));
    expect(unknown.code).toBe("shardNotFound");
    const zero = await errorOf(() => nh.removeData(1, 0));
    expect(zero.code).toBe("invalidOption");
    expect(zero.message).toContain("replica id must be a positive integer, got 0");
  });

  test("after the replica's removal applied: data and snapshots go, a tombstone stays and refuses a restart", async () => {
    const leader = await threeHosts({ snapshotEntries: 5, compactionOverhead: 2 });
    await writes(leader, 0, 12);
    const victim = [1, 2, 3].find((i) => i !== leader)!;
    await cluster.until(() => existsSync(snapshotDirOf(victim, victim)), 5000, "a snapshot on the victim");
    const m = await cluster.settle(cluster.host(leader).syncGetShardMembership(1, T));
    await cluster.settle(cluster.host(leader).syncRequestDeleteReplica(1, victim, m.configChangeId, T));
    const nh = cluster.host(victim);
    const current = await cluster.settle(cluster.host(leader).syncGetShardMembership(1, T));
    // The victim stops once it applies its own removal; syncRemoveData waits for that.
    await cluster.settle(nh.syncRemoveData(1, victim, { ...T, membership: current }));
    expect(nh.getNodeHostInfo().logsOnDisk).not.toContainEqual({ shardId: 1, replicaId: victim });
    expect(existsSync(snapshotDirOf(victim, victim))).toBe(false);
    const restart = await errorOf(
      cluster.settle(
        nh.startReplica(
          cluster.members([1, 2, 3]),
          false,
          cluster.kv,
          { shardId: 1, replicaId: victim },
          { app: "kv" },
        ),
      ),
    );
    expect(restart.code).toBe("replicaRemoved");
    expect(restart.message).toContain("data deleted on this host");
    nh.removeData(1, victim); // done already: nothing to do, no error
    await writes(leader, 12, 14);
  });

  test("a replica removed while it was down (a zombie) is removed with the shard's membership from a live member", async () => {
    const leader = await threeHosts();
    const zombie = [1, 2, 3].find((i) => i !== leader)!;
    await cluster.crashHost(zombie);
    const m = await cluster.settle(cluster.host(leader).syncGetShardMembership(1, T));
    await cluster.settle(cluster.host(leader).syncRequestDeleteReplica(1, zombie, m.configChangeId, T));
    const current = await cluster.settle(cluster.host(leader).syncGetShardMembership(1, T));
    const nh = await cluster.startHost(zombie);
    // Its own log never saw the removal: without the live membership it is refused.
    expect((await errorOf(() => nh.removeData(1, zombie))).code).toBe("rejected");
    nh.removeData(1, zombie, { membership: current });
    expect(nh.getNodeHostInfo().logsOnDisk).toEqual([]);
    await writes(leader, 0, 3);
  });
});

describe("compaction control", () => {
  test("with disableAutoCompactions a snapshot keeps the log; requestCompaction removes it and reports the space", async () => {
    const leader = await threeHosts({ disableAutoCompactions: true, compactionOverhead: 10 });
    await writes(leader, 0, 60);
    const nh = cluster.host(leader);
    const index = await cluster.settle(nh.syncRequestSnapshot(1, T));
    const kept = nh.queryRaftLog(1, 1, index + 1, 1 << 20);
    expect(kept.firstIndex).toBe(1);
    const report = nh.requestCompaction(1);
    expect(report.snapshotIndex).toBe(index);
    expect(report.firstIndex).toBe(index - 10 + 1);
    expect(report.entriesRemoved).toBe(index - 10);
    expect(report.logBytesRemoved).toBeGreaterThan(report.entriesRemoved * 128);
    expect(report.logEntries).toBe(kept.lastIndex - report.firstIndex + 1);
    const again = nh.requestCompaction(1, { compactionOverhead: 0 });
    expect(again.entriesRemoved).toBe(10);
    expect(again.firstIndex).toBe(index + 1);
    expect(nh.requestCompaction(1).entriesRemoved).toBe(0);
  });

  test("a snapshot request with a compaction index compacts up to it; naming an index and an overhead is refused", async () => {
    const leader = await threeHosts({ compactionOverhead: 1000 });
    await writes(leader, 0, 40);
    const nh = cluster.host(leader);
    const index = await cluster.settle(nh.syncRequestSnapshot(1, { ...T, compactionIndex: 20 }));
    expect(index).toBeGreaterThan(20);
    expect(nh.queryRaftLog(1, 21, 22, 1024).firstIndex).toBe(21);
    const both = await errorOf(
      nh.syncRequestSnapshot(1, { ...T, compactionIndex: 5, compactionOverhead: 5 }),
    );
    expect(both.code).toBe("invalidOption");
    expect(both.message).toContain("not both");
    await writes(leader, 40, 45);
    const beyond = await cluster.settle(nh.syncRequestSnapshot(1, { ...T, compactionIndex: 10_000 }));
    expect(nh.queryRaftLog(1, beyond + 1, beyond + 2, 1024).firstIndex).toBe(beyond + 1);
  });

  test("a follower far behind a compacted log catches up by snapshot", async () => {
    const leader = await threeHosts({ disableAutoCompactions: true });
    const lagging = [1, 2, 3].find((i) => i !== leader)!;
    await cluster.crashHost(lagging);
    await writes(leader, 0, 100);
    const nh = cluster.host(leader);
    await cluster.settle(nh.syncRequestSnapshot(1, T));
    expect(nh.requestCompaction(1, { compactionOverhead: 0 }).entriesRemoved).toBeGreaterThan(99);
    const restarted = await cluster.startHost(lagging);
    await cluster.settle(
      restarted.startReplica({}, false, cluster.kv, { shardId: 1, replicaId: lagging }, { app: "kv" }),
    );
    await cluster.until(
      () => readValue(restarted.staleRead(1, get("k99"))) === "99",
      10_000,
      "the lagging replica to catch up",
    );
    // It got the data by snapshot: its own log starts after the leader's snapshot.
    const start = await errorOf(() => restarted.queryRaftLog(1, 1, 2, 1024));
    expect(start.message).toMatch(/were compacted \(the snapshot at (\d+) holds them\)/);
    expect(Number(/snapshot at (\d+)/.exec(start.message)![1])).toBeGreaterThan(100);
  });
});

describe("queryRaftLog", () => {
  test("returns entries with their types and the stored range, bounded by maxBytes", async () => {
    const leader = await threeHosts();
    await writes(leader, 0, 20);
    const nh = cluster.host(leader);
    const all = nh.queryRaftLog(1, 1, 1000, 1 << 20);
    expect(all.firstIndex).toBe(1);
    expect(all.entries.length).toBe(all.lastIndex);
    expect(all.commitIndex).toBe(all.lastIndex);
    expect(all.entries.map((e) => e.index)).toEqual(Array.from({ length: all.lastIndex }, (_, i) => i + 1));
    expect(all.entries.filter((e) => e.type === EntryType.ConfigChange).length).toBe(3);
    const cmds = all.entries.filter((e) => e.type === EntryType.Application && e.cmd.byteLength > 0);
    expect(kv.KvCommand.decode(cmds[0]!.cmd).put?.key).toBe("k0");
    const one = nh.queryRaftLog(1, 1, 1000, 1);
    expect(one.entries.length).toBe(1);
    const tail = nh.queryRaftLog(1, all.lastIndex + 1, all.lastIndex + 5, 1024);
    expect(tail.entries).toEqual([]);
  });

  test("refuses a compacted or out-of-range start, and reads a stopped replica's log", async () => {
    const leader = await threeHosts({ compactionOverhead: 0 });
    await writes(leader, 0, 10);
    const nh = cluster.host(leader);
    const index = await cluster.settle(nh.syncRequestSnapshot(1, T));
    const compacted = await errorOf(() => nh.queryRaftLog(1, 1, 5, 1024));
    expect(compacted.code).toBe("outOfRange");
    expect(compacted.message).toContain(`ask from ${index + 1}`);
    const beyond = await errorOf(() => nh.queryRaftLog(1, index + 50, index + 60, 1024));
    expect(beyond.code).toBe("outOfRange");
    expect((await errorOf(() => nh.queryRaftLog(1, 5, 2, 1024))).code).toBe("invalidOption");
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    const fh = cluster.host(follower);
    await cluster.until(() => fh.stateHash(1).appliedIndex >= index, 5000, "the follower to apply");
    fh.stopShard(1);
    const stopped = fh.queryRaftLog(1, 1, 1000, 1 << 20);
    expect(stopped.replicaId).toBe(follower);
    expect(stopped.lastIndex).toBeGreaterThanOrEqual(index);
    expect((await errorOf(() => fh.queryRaftLog(2, 1, 5, 1024))).code).toBe("shardNotFound");
  });
});
