import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PLANTED_BUGS, plantedBugOption } from "../../src/engine/bugs.ts";
import { ManualEnv } from "../../src/env.ts";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { encodeKvCommand } from "../../src/statemachine/kv.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { RecordingFileSystem } from "../fs/recording.ts";
import { drain } from "./cluster.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-durable-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function openHost(
  dir: string,
  fs = nodeFileSystem,
  plantedBug?: (typeof PLANTED_BUGS)[number],
  env = new ManualEnv(1),
  logdb = new MemoryLogDB(),
) {
  const net = new SimNetwork(env);
  const nh = new NodeHost({
    nodeHostDir: dir,
    raftAddress: "10.0.0.1:7001",
    env,
    expert: {
      logdb,
      fs,
      transport: (registry) =>
        net.transport("10.0.0.1:7001", 1, registry, { snapshotDir: join(dir, "incoming"), fs }),
      ...(plantedBug === undefined ? {} : { plantedBug }),
    },
  });
  await nh.ready;
  return nh;
}

test("a new NodeHost creates its data directory durably: each new directory's parent is fsynced", async () => {
  const fs = new RecordingFileSystem(nodeFileSystem);
  const dir = join(root, "a", "b");
  const nh = await openHost(dir, fs);
  await nh.stop();
  expect(fs.ops.slice(0, 4)).toEqual([
    `mkdir ${root}/a`,
    `syncDir ${root}`,
    `mkdir ${dir}`,
    `syncDir ${root}/a`,
  ]);
});

test("a restarted transport empties its receiving directory of what a crash left there", async () => {
  const dir = join(root, "restart");
  mkdirSync(join(dir, "incoming"), { recursive: true });
  for (const name of ["s-1.receiving", "s-2.snap", "unrelated.txt"])
    writeFileSync(join(dir, "incoming", name), "x");
  const nh = await openHost(dir);
  await nh.stop();
  await drain();
  expect(readdirSync(join(dir, "incoming"))).toEqual(["unrelated.txt"]);
});

test("the library never reads LONGBOAT_SIM_BUG: with a name it would refuse set, a replica starts", async () => {
  const saved = process.env.LONGBOAT_SIM_BUG;
  process.env.LONGBOAT_SIM_BUG = "no-such-bug";
  try {
    const nh = await openHost(join(root, "env"));
    await nh.startReplica({ 1: "10.0.0.1:7001" }, false, builtinApps().get("kv"), {
      shardId: 1,
      replicaId: 1,
    });
    await nh.stop();
  } finally {
    if (saved === undefined) delete process.env.LONGBOAT_SIM_BUG;
    else process.env.LONGBOAT_SIM_BUG = saved;
  }
});

test("a planted bug is an explicit option: known names are taken, an unknown one is refused by name", async () => {
  expect(plantedBugOption(undefined)).toBeNull();
  expect(plantedBugOption("")).toBeNull();
  for (const bug of PLANTED_BUGS) expect(plantedBugOption(bug)).toBe(bug);
  expect(() => plantedBugOption("no-such-bug")).toThrow(
    /"no-such-bug" names no planted bug; known: stale-read/,
  );
  const nh = await openHost(join(root, "bug"), nodeFileSystem, "early-ack");
  await nh.stop();
});

/** Advances env's virtual time until promise settles. */
async function settle<T>(env: ManualEnv, promise: Promise<T>): Promise<T> {
  let done = false;
  const watched = promise.finally(() => {
    done = true;
  });
  for (let ms = 0; !done; ms += 5) {
    if (ms > 60_000) throw new Error("not settled within 60 s of virtual time");
    env.advance(5);
    await drain();
  }
  return watched;
}

/** Advances env's virtual time until every shard of nh has a leader here. */
async function settleLed(env: ManualEnv, nh: NodeHost): Promise<void> {
  for (let ms = 0; nh.getNodeHostInfo().shards.some((s) => !s.isLeader); ms += 5) {
    if (ms > 60_000) throw new Error("not led within 60 s of virtual time");
    env.advance(5);
    await drain();
  }
}

test("replicas start without a snapshot folder; the first snapshot makes it durably before writing into it", async () => {
  const fs = new RecordingFileSystem(nodeFileSystem);
  const env = new ManualEnv(1);
  const dir = join(root, "lazy");
  const snapshots = join(dir, "snapshots");
  const logdb = new MemoryLogDB();
  const nh = await openHost(dir, fs, undefined, env, logdb);
  const kv = builtinApps().get("kv");
  await settle(
    env,
    Promise.all(
      [1, 2, 3].map((shardId) =>
        nh.startReplica({ 1: "10.0.0.1:7001" }, false, kv, { shardId, replicaId: 1 }, { app: "kv" }),
      ),
    ),
  );
  await settleLed(env, nh);
  expect(fs.about(snapshots)).toEqual([]);
  expect(existsSync(snapshots)).toBe(false);
  await settle(
    env,
    nh.syncPropose(
      nh.getNoOpSession(2),
      encodeKvCommand({ op: "put", key: "a", value: new Uint8Array([7]) }),
      {
        timeoutMs: 5000,
      },
    ),
  );
  const from = fs.ops.length;
  const index = await settle(env, nh.syncRequestSnapshot(2, { timeoutMs: 5000 }));
  const ops = fs.ops.slice(from);
  const folder = join(snapshots, "2-1");
  const at = (op: string) => {
    const i = ops.indexOf(op);
    expect(i, op).toBeGreaterThanOrEqual(0);
    return i;
  };
  // snapshots/ and 2-1/ made, each new name's parent fsynced, before the first file in it.
  const firstFile = ops.findIndex((op) => op.startsWith(`create ${folder}/`));
  expect(firstFile).toBeGreaterThan(0);
  expect(at(`mkdir ${snapshots}`)).toBeLessThan(at(`syncDir ${dir}`));
  expect(at(`syncDir ${dir}`)).toBeLessThan(at(`mkdir ${folder}`));
  expect(at(`mkdir ${folder}`)).toBeLessThan(at(`syncDir ${snapshots}`));
  expect(at(`syncDir ${snapshots}`)).toBeLessThan(firstFile);
  expect(readdirSync(snapshots)).toEqual(["2-1"]);
  const durable = logdb.snapshotDurable();
  await settle(env, nh.stop());
  // Restarted: the replica with a snapshot recovers from it, those without a folder start.
  const again = await openHost(dir, nodeFileSystem, undefined, env, durable);
  await settle(
    env,
    Promise.all(
      [1, 2, 3].map((shardId) => again.startReplica({}, false, kv, { shardId, replicaId: 1 }, { app: "kv" })),
    ),
  );
  await settleLed(env, again);
  const info = again.getNodeHostInfo().shards.find((s) => s.shardId === 2);
  expect(info?.appliedIndex).toBeGreaterThanOrEqual(index);
  await settle(env, again.stop());
});
