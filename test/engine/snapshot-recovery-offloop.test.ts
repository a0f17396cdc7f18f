// Issue #16 item 4, recovery: a large snapshot is recovered in steps between engine iterations
// (RECOVERY_STEP_BYTES read and decoded per step), at start-up and when received from the
// leader, so the host's other shards go on applying meanwhile. On the virtual clock CPU time
// is free, so each step is given STEP_MS (the simulator's model of its cost); the inline
// recovery of before finished inside one iteration (or one startReplica call), and the shard 2
// entries these tests count could not be applied on that host during it.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { RECOVERY_STEP_BYTES } from "../../src/engine/engine.ts";
import type { NodeHost } from "../../src/nodehost.ts";
import { SIM_TEST_WALL_MS } from "../support/limits.ts";
import { SimCluster } from "./cluster.ts";
import { get, put, readValue } from "./kv.ts";

setDefaultTimeout(SIM_TEST_WALL_MS);

const T = { timeoutMs: 3000 };
const STEP_MS = 3;
const VALUE = "y".repeat(64 * 1024);
/** 4 MiB of values in shard 1: 32 recovery steps at least. */
const KEYS = 64;

let cluster: SimCluster;

async function fill(nh: NodeHost): Promise<void> {
  for (let i = 0; i < KEYS; i += 16) {
    const writes = [];
    for (let j = i; j < i + 16; j++)
      writes.push(nh.syncPropose(nh.getNoOpSession(1), put(`k${j}`, VALUE), T));
    await cluster.settle(Promise.all(writes));
  }
}

/** Keeps one proposal to shard 2 in flight, through its leader: call poke() after each step. */
function keepWriting(): { poke: () => void } {
  let inflight = false;
  let n = 0;
  return {
    poke: () => {
      const host = cluster.leaderOf(2);
      if (inflight || host === 0) return;
      inflight = true;
      const nh = cluster.host(host);
      const done = () => {
        inflight = false;
      };
      nh.syncPropose(nh.getNoOpSession(2), put(`w${n++}`, "v"), T).then(done, done);
    },
  };
}

async function threeHostsTwoShards(): Promise<void> {
  cluster = new SimCluster(undefined, { snapshotStepLatencyMs: STEP_MS });
  for (const i of [1, 2, 3]) await cluster.startHost(i);
  await cluster.startShard(1, [1, 2, 3]);
  await cluster.startShard(2, [1, 2, 3]);
  await cluster.waitLeader(1);
  await cluster.waitLeader(2);
}

async function restartReplica(host: number, shardId: number): Promise<void> {
  await cluster.host(host).startReplica(
    cluster.members([1, 2, 3]),
    false,
    cluster.kv,
    { shardId, replicaId: host },
    {
      app: "kv",
    },
  );
}

describe("snapshot recovery off the engine loop", () => {
  test("a host restarting from a large snapshot applies another shard's entries while it recovers", async () => {
    expect(KEYS * VALUE.length).toBeGreaterThan(16 * RECOVERY_STEP_BYTES);
    await threeHostsTwoShards();
    await fill(cluster.host(cluster.leaderOf(1)));
    const index = await cluster.settle(cluster.host(3).syncRequestSnapshot(1, T));
    await cluster.crashHost(3);
    await cluster.startHost(3);
    await cluster.settle(restartReplica(3, 2));
    const nh = cluster.host(3);
    let started = false;
    const start = restartReplica(3, 1).then(() => {
      started = true;
    });
    const before = nh.stateHash(2).appliedIndex;
    const writer = keepWriting();
    let appliedWhileRecovering = 0;
    while (!started) {
      writer.poke();
      await cluster.run(1);
      if (!started) appliedWhileRecovering = nh.stateHash(2).appliedIndex - before;
    }
    await cluster.settle(start);
    // Inline, startReplica recovered the whole file before any simulated time passed.
    expect(appliedWhileRecovering).toBeGreaterThan(0);
    expect(nh.stateHash(1).appliedIndex).toBeGreaterThanOrEqual(index);
    const leader = cluster.host(cluster.leaderOf(1));
    await cluster.until(
      () => nh.stateHash(1).appliedIndex === leader.stateHash(1).appliedIndex,
      5000,
      "caught up",
    );
    expect(nh.stateHash(1).hash).toBe(leader.stateHash(1).hash);
    expect(readValue(nh.staleRead(1, get(`k${KEYS - 1}`)))).toBe(VALUE);
  });

  test("a follower recovering a large received snapshot applies another shard's entries meanwhile, and a crash mid-recovery recovers it again", async () => {
    await threeHostsTwoShards();
    await cluster.crashHost(3);
    const leaderHost = cluster.leaderOf(1);
    const leader = cluster.host(leaderHost);
    await fill(leader);
    // Compacted on both live replicas: host 3 can only catch up from the snapshot.
    for (const h of [1, 2])
      await cluster.settle(cluster.host(h).syncRequestSnapshot(1, { ...T, compactionOverhead: 0 }));
    const index = leader.stateHash(1).appliedIndex;
    await cluster.startHost(3);
    await cluster.settle(restartReplica(3, 2));
    const dir = join(cluster.root, "host-3", "snapshots", "1-3");
    const received = () => {
      try {
        return readdirSync(dir).some((f) => f.endsWith(".lbsnap"));
      } catch {
        return false;
      }
    };
    const nh3 = () => cluster.host(3);
    const writer = keepWriting();
    let appliedWhileRecovering = 0;
    {
      await restartReplica(3, 1);
      // The transport hands the whole file over in one call; its import (verify, fsyncs,
      // rename) then runs in steps, so between two of them the transport has counted the
      // snapshot received while the replica's folder does not hold it yet.
      let sawImporting = false;
      await cluster.until(
        () => {
          const imported = received();
          sawImporting ||= !imported && (nh3().transportStats()?.snapshotsReceived ?? 0) > 0;
          return imported;
        },
        10_000,
        "the snapshot received on host 3",
      );
      expect(sawImporting).toBe(true);
      const before = nh3().stateHash(2).appliedIndex;
      while (nh3().stateHash(1).appliedIndex < index) {
        writer.poke();
        await cluster.run(1);
        if (nh3().stateHash(1).appliedIndex < index)
          appliedWhileRecovering = nh3().stateHash(2).appliedIndex - before;
      }
      // Inline, the received snapshot was recovered inside the iteration that applied it.
      expect(appliedWhileRecovering).toBeGreaterThan(0);

      // Crash mid-recovery: the snapshot record is durable, the restart recovers it again.
      await cluster.crashHost(3);
      await cluster.startHost(3);
      await cluster.settle(restartReplica(3, 2));
      let started = false;
      let outcome = "";
      const start = restartReplica(3, 1).then(
        () => {
          started = true;
          outcome = "started";
        },
        (error: Error & { code?: string }) => {
          outcome = error.code ?? String(error);
        },
      );
      await cluster.run(STEP_MS * 3);
      expect(started).toBe(false); // still recovering: crash again here
      await cluster.crashHost(3);
      await cluster.settle(start);
      expect(outcome).toBe("closed");
      await cluster.startHost(3);
      await cluster.settle(restartReplica(3, 2));
      await cluster.settle(restartReplica(3, 1));
    }
    expect(nh3().stateHash(1).appliedIndex).toBeGreaterThanOrEqual(index);
    expect(readValue(nh3().staleRead(1, get("k0")))).toBe(VALUE);
    await cluster.until(
      () => nh3().stateHash(1).appliedIndex === leader.stateHash(1).appliedIndex,
      5000,
      "host 3 caught up",
    );
    expect(nh3().stateHash(1).hash).toBe(leader.stateHash(1).hash);
  });
});
