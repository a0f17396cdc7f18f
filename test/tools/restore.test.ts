// Offline restore (src/tools/restore.ts) on real data directories (SQLite log, snapshot files)
// with NodeHosts over the simulated network and a virtual clock.
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { realEnv } from "../../src/env.ts";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { LOGDB_FORMAT_VERSION } from "../../src/logdb/types.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import { RestoreError, type RestoreOptions, restoreReplica } from "../../src/tools/restore.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { RecordingFileSystem } from "../fs/recording.ts";
import { get, put, readValue } from "../engine/kv.ts";
import { currentTest, parkIfEnded, track } from "../support/resources.ts";

const T = { timeoutMs: 10_000 };
const addr = (i: number) => `10.0.0.${i}:7001`;
// Real time (see World): a test is bounded by its waits, each at most WAIT_MS.
setDefaultTimeout(120_000);

/** Bound of every wait for a leader (real time). */
const WAIT_MS = 20_000;

/**
 * NodeHosts with SQLite data directories under one root, over one simulated network, on the
 * real clock: the log's writer Worker commits in real time, so virtual time cannot run ahead
 * of it. Every wait is for a condition, bounded by WAIT_MS.
 */
class World {
  readonly env = realEnv();
  readonly net = new SimNetwork(this.env);
  readonly root = mkdtempSync(join(tmpdir(), "longboat-restore-"));
  readonly hosts = new Map<number, NodeHost>();
  // Closed after the test however it ends (the afterEach below does it too).
  private readonly tracked = track("restore test World", () => this.close());

  dir(name: string | number): string {
    return join(this.root, `host-${name}`);
  }

  async start(i: number, dir = this.dir(i)): Promise<NodeHost> {
    const nh = new NodeHost({
      nodeHostDir: dir,
      raftAddress: addr(i),
      rttMs: 10,
      env: this.env,
      expert: { transport: (registry) => this.net.transport(addr(i), 1, registry) },
    });
    this.hosts.set(i, nh);
    await nh.ready;
    return nh;
  }

  /** Starts replica i of shardId on host i; members are replica ids, each on the host of its number. */
  async replica(i: number, shardId: number, members: number[]): Promise<void> {
    const m = Object.fromEntries(members.map((id) => [id, addr(id)]));
    await this.hosts
      .get(i)!
      .startReplica(m, false, builtinApps().get("kv"), { shardId, replicaId: i }, { app: "kv" });
  }

  async leader(shardId: number): Promise<NodeHost> {
    const token = currentTest();
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      for (const nh of this.hosts.values()) {
        const s = nh.getNodeHostInfo({ skipLogInfo: true }).shards.find((x) => x.shardId === shardId);
        if (!s?.isLeader) continue;
        try {
          await nh.syncGetShardMembership(shardId, { timeoutMs: 1000 });
          return nh;
        } catch {
          // not ready yet
        }
      }
      await Bun.sleep(10);
      await parkIfEnded(token); // a test that timed out stops here
    }
    throw new Error(`no leader for shard ${shardId} within ${WAIT_MS} ms`);
  }

  async stopAll(): Promise<void> {
    for (const nh of this.hosts.values()) await nh.stop();
    this.hosts.clear();
  }

  async close(): Promise<void> {
    this.tracked.release();
    await this.stopAll().catch(() => {});
    rmSync(this.root, { recursive: true, force: true });
  }
}

let w: World;
afterEach(async () => {
  await w?.close();
});

/** Three hosts with shard 1 (and shard 2 on host 1..3 too), keys k0..k(n-1) in shard 1; returns a backup file. */
async function backedUp(n = 40): Promise<string> {
  w = new World();
  for (const i of [1, 2, 3]) await w.start(i);
  for (const shard of [1, 2]) for (const i of [1, 2, 3]) await w.replica(i, shard, [1, 2, 3]);
  const leader = await w.leader(1);
  for (let k = 0; k < n; k++) await leader.syncPropose(leader.getNoOpSession(1), put(`k${k}`, `v${k}`), T);
  const leader2 = await w.leader(2);
  await leader2.syncPropose(leader2.getNoOpSession(2), put("other", "shard two"), T);
  const e = await leader.syncExportSnapshot(1, T);
  const file = join(w.root, "shard-1.lbsnap");
  writeFileSync(file, e.read(0, e.sizeBytes));
  e.close();
  return file;
}

const options = (from: string, over: Partial<RestoreOptions> = {}): RestoreOptions => ({
  dataDir: w.dir("new-1"),
  shardId: 1,
  replicaId: 1,
  members: [1, 2, 3].map((id) => ({ replicaId: id, address: addr(id + 3) })),
  from,
  deploymentId: 1,
  ...over,
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RestoreError);
    return (e as Error).message;
  }
  throw new Error("the restore was not refused");
}

describe("restoreReplica", () => {
  test("three fresh data directories restored from a backup elect a leader and serve every write, and take new ones", async () => {
    const file = await backedUp();
    await w.stopAll();
    for (const id of [1, 2, 3]) {
      const r = restoreReplica(options(file, { dataDir: w.dir(`new-${id}`), replicaId: id }));
      expect(r.membership.addresses.map((m) => m.address)).toEqual([addr(4), addr(5), addr(6)]);
      expect(r.membership.removed).toEqual([]);
    }
    for (const id of [1, 2, 3]) {
      await w.start(id + 3, w.dir(`new-${id}`));
      // The restored bootstrap record holds the new members; the same list starts it.
      const members = Object.fromEntries([1, 2, 3].map((x) => [x, addr(x + 3)]));
      const nh = w.hosts.get(id + 3)!;
      await nh.startReplica(
        members,
        false,
        builtinApps().get("kv"),
        { shardId: 1, replicaId: id },
        { app: "kv" },
      );
    }
    const leader = await w.leader(1);
    for (let k = 0; k < 40; k++) expect(readValue(await leader.syncRead(1, get(`k${k}`), T))).toBe(`v${k}`);
    await leader.syncPropose(leader.getNoOpSession(1), put("after", "restore"), T);
    expect(readValue(await leader.syncRead(1, get("after"), T))).toBe("restore");
    const m = await leader.syncGetShardMembership(1, T);
    expect(m.addresses.map((x) => x.replicaId)).toEqual([1, 2, 3]);
  });

  test("new replica ids mark every old member removed for good", async () => {
    const file = await backedUp(3);
    const members = [4, 5, 6].map((id) => ({ replicaId: id, address: addr(id) }));
    const r = restoreReplica(options(file, { replicaId: 4, members, dataDir: w.dir("new-4") }));
    expect(r.membership.removed).toEqual([1, 2, 3]);
    expect(r.membership.configChangeId).toBe(r.index);
  });

  test("restoring over a survivor's data directory replaces that replica only; its other shards stay", async () => {
    const file = await backedUp();
    await w.stopAll();
    const dir = w.dir(1);
    const before = openSqliteLogDB({
      dir,
      identity: { raftAddress: addr(1), deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION },
    });
    const shard2 = before.readLogState({ shardId: 2, replicaId: 1 });
    before.close();
    const members = [1, 2, 3].map((id) => ({ replicaId: id, address: addr(id === 1 ? 1 : id + 3) }));
    restoreReplica(options(file, { dataDir: dir, members }));
    const after = openSqliteLogDB({
      dir,
      identity: { raftAddress: addr(1), deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION },
    });
    try {
      expect(after.readLogState({ shardId: 2, replicaId: 1 })).toEqual(shard2);
      const s1 = after.readLogState({ shardId: 1, replicaId: 1 });
      expect(s1.lastIndex).toBe(s1.snapshot!.index);
      expect(after.getBootstrap({ shardId: 1, replicaId: 1 })!.addresses).toEqual(members);
    } finally {
      after.close();
    }
    // Exactly one snapshot file is left for the replica: the restored one.
    expect(readdirSync(join(dir, "snapshots", "1-1"))).toHaveLength(1);
    // A second run (the same backup) works and still leaves one file.
    restoreReplica(options(file, { dataDir: dir, members }));
    expect(readdirSync(join(dir, "snapshots", "1-1"))).toHaveLength(1);
  });

  test("the rewritten snapshot is durable (file fsync, rename, directory fsync) before the commit; old files go after it", async () => {
    const file = await backedUp(5);
    await w.stopAll();
    const dir = w.dir(1);
    const members = [1, 2, 3].map((id) => ({ replicaId: id, address: addr(id === 1 ? 1 : id + 3) }));
    restoreReplica(options(file, { dataDir: dir, members })); // leaves one restored file to replace
    const fs = new RecordingFileSystem(nodeFileSystem);
    const r = restoreReplica(options(file, { dataDir: dir, members, fs }), (point) =>
      fs.ops.push(`@${point}`),
    );
    const ops = fs.ops;
    const at = (op: string) => {
      const i = ops.indexOf(op);
      expect(i, `${op} in ${ops.join("\n")}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const snapDir = join(dir, "snapshots", "1-1");
    const written = [
      at(`create ${r.snapshotPath}.tmp`),
      at(`sync ${r.snapshotPath}.tmp`),
      at(`rename ${r.snapshotPath}.tmp -> ${r.snapshotPath}`),
    ];
    const dirSynced = ops.indexOf(`syncDir ${snapDir}`, written[2]);
    expect(written).toEqual([...written].sort((a, b) => a - b));
    expect(dirSynced).toBeGreaterThan(written[2]!);
    expect(dirSynced).toBeLessThan(at("@staged"));
    expect(at("@staged")).toBeLessThan(at("@committed"));
    // The previous restore's file is removed only once the records point to the new one.
    const removals = ops.map((op, i) => (op.startsWith(`remove ${snapDir}`) ? i : -1)).filter((i) => i >= 0);
    expect(removals.length).toBe(1);
    expect(removals[0]).toBeGreaterThan(at("@committed"));
    expect(ops.indexOf(`syncDir ${snapDir}`, removals[0])).toBeLessThan(at("@cleaned"));
  });

  test("refuses a backup of another shard or deployment, naming both", async () => {
    const file = await backedUp(2);
    expect(refusal(() => restoreReplica(options(file, { shardId: 2 })))).toContain(
      "is a snapshot of shard 1, not shard 2",
    );
    expect(refusal(() => restoreReplica(options(file, { deploymentId: 5 })))).toContain(
      "is of deployment 1, not deployment 5",
    );
    expect(existsSync(w.dir("new-1"))).toBe(false);
  });

  test("refuses a corrupt, a truncated, an empty and a missing file, and a file that is no snapshot", async () => {
    const file = await backedUp(2);
    const bytes = readFileSync(file);
    const copy = (name: string, data: Uint8Array) => {
      const p = join(w.root, name);
      writeFileSync(p, data);
      return p;
    };
    const flipped = Uint8Array.from(bytes);
    flipped[Math.floor(bytes.byteLength / 2)]! ^= 0xff;
    expect(refusal(() => restoreReplica(options(copy("flipped", flipped))))).toContain("checksum mismatch");
    const cut = copy("cut", bytes);
    truncateSync(cut, bytes.byteLength - 100);
    expect(refusal(() => restoreReplica(options(cut)))).toContain("not a complete Longboat snapshot");
    expect(refusal(() => restoreReplica(options(copy("empty", new Uint8Array(0)))))).toContain("truncated");
    expect(refusal(() => restoreReplica(options(join(w.root, "nothing"))))).toContain("does not exist");
    expect(
      refusal(() =>
        restoreReplica(options(copy("text", new TextEncoder().encode("hello world, not a snapshot")))),
      ),
    ).toContain("bad magic");
    expect(existsSync(w.dir("new-1"))).toBe(false);
  });

  test("refuses a data directory a running NodeHost holds, and restores it once that NodeHost stopped", async () => {
    const file = await backedUp(2);
    const members = [1, 2, 3].map((id) => ({ replicaId: id, address: addr(id) }));
    expect(refusal(() => restoreReplica(options(file, { dataDir: w.dir(1), members })))).toContain(
      "is in use by another process",
    );
    await w.stopAll();
    expect(restoreReplica(options(file, { dataDir: w.dir(1), members })).index).toBeGreaterThan(2);
  });

  test("refuses a data directory of another raft address, a tombstoned replica and a reused removed id", async () => {
    const file = await backedUp(2);
    await w.stopAll();
    // host-2's directory belongs to 10.0.0.2:7001; the members put replica 1 at 10.0.0.4:7001.
    expect(refusal(() => restoreReplica(options(file, { dataDir: w.dir(2) })))).toContain(
      "belongs to another raft address",
    );
    const dir = w.dir("tomb");
    cpSync(w.dir(1), dir, { recursive: true });
    const db = openSqliteLogDB({
      dir,
      identity: { raftAddress: addr(1), deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION },
    });
    db.removeReplica({ shardId: 1, replicaId: 1 }, { removedAtMs: 1, reason: "moved away" });
    db.close();
    const members = [1, 2, 3].map((id) => ({ replicaId: id, address: addr(id) }));
    expect(refusal(() => restoreReplica(options(file, { dataDir: dir, members })))).toContain("moved away");
  });

  test("refuses members that reuse an id removed before the backup", async () => {
    await backedUp(2);
    const leader = await w.leader(1);
    const m = await leader.syncGetShardMembership(1, T);
    const self = leader.getNodeHostInfo().shards[0]!.replicaId;
    const victim = [1, 2, 3].find((id) => id !== self)!;
    await leader.syncRequestDeleteReplica(1, victim, m.configChangeId, T);
    await leader.syncPropose(leader.getNoOpSession(1), put("after", "removal"), T);
    const e = await leader.syncExportSnapshot(1, T);
    const file = join(w.root, "after-removal.lbsnap");
    writeFileSync(file, e.read(0, e.sizeBytes));
    e.close();
    expect(refusal(() => restoreReplica(options(file)))).toContain(
      `replica ${victim} was removed from shard 1 before the backup`,
    );
  });
});
