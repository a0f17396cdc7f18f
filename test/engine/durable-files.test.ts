import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PLANTED_BUGS, plantedBugOption } from "../../src/engine/bugs.ts";
import { ManualEnv } from "../../src/env.ts";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { RecordingFileSystem } from "../fs/recording.ts";
import { drain } from "./cluster.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-durable-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function openHost(dir: string, fs = nodeFileSystem, plantedBug?: (typeof PLANTED_BUGS)[number]) {
  const env = new ManualEnv(1);
  const net = new SimNetwork(env);
  const nh = new NodeHost({
    nodeHostDir: dir,
    raftAddress: "10.0.0.1:7001",
    env,
    expert: {
      logdb: new MemoryLogDB(),
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

test("replicas started together create their snapshot directories and fsync snapshots/ once, before any of them runs", async () => {
  const fs = new RecordingFileSystem(nodeFileSystem);
  const dir = join(root, "together");
  const nh = await openHost(dir, fs);
  // The first replica creates snapshots/ itself (durably); the five after it start together.
  await nh.startReplica({ 1: "10.0.0.1:7001" }, false, builtinApps().get("kv"), { shardId: 1, replicaId: 1 });
  const from = fs.ops.length;
  const started: number[] = [];
  await Promise.all(
    [2, 3, 4, 5, 6].map(async (shardId) => {
      await nh.startReplica({ 1: "10.0.0.1:7001" }, false, builtinApps().get("kv"), {
        shardId,
        replicaId: 1,
      });
      started.push(fs.ops.length);
    }),
  );
  await nh.stop();
  const ops = fs.ops.slice(from);
  const snapshots = join(dir, "snapshots");
  const syncs = ops.flatMap((op, i) => (op === `syncDir ${snapshots}` ? [i + from] : []));
  expect(syncs).toHaveLength(1);
  for (const shardId of [2, 3, 4, 5, 6]) {
    const made = ops.indexOf(`mkdir ${join(snapshots, `${shardId}-1`)}`);
    expect(made).toBeGreaterThanOrEqual(0);
    expect(made + from).toBeLessThan(syncs[0]!);
  }
  // Every start resolved after the fsync of the directory that names its replica's directory.
  for (const at of started) expect(at).toBeGreaterThan(syncs[0]!);
});
