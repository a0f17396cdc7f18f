// Issue #16 item 4: a large snapshot is written between engine iterations, not inside one, so
// the other shards of the host keep their heartbeats and commits while it is written. On the
// virtual clock CPU time is free, so each step of the write is given STEP_MS (the simulator's
// model of its cost); the inline save of before took its whole cost inside one iteration, and
// the shard 2 commits these tests wait for could only come after it.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SNAPSHOT_STEP_BYTES } from "../../src/engine/engine.ts";
import { SIM_TEST_WALL_MS } from "../support/limits.ts";
import { SimCluster } from "./cluster.ts";
import { get, put, readValue } from "./kv.ts";

setDefaultTimeout(SIM_TEST_WALL_MS);

const T = { timeoutMs: 3000 };
/** Virtual time of one step of a snapshot write: 8+ steps of 3 ms span several ticks. */
const STEP_MS = 3;
const VALUE = "x".repeat(64 * 1024);
/** 4 MiB of values in shard 1: 8 steps of SNAPSHOT_STEP_BYTES at least. */
const KEYS = 64;

// Each test's cluster registers itself and is closed after the test however it ends.
let cluster: SimCluster;

async function fill(cluster: SimCluster, host: number): Promise<void> {
  const nh = cluster.host(host);
  for (let i = 0; i < KEYS; i += 16) {
    const writes = [];
    for (let j = i; j < i + 16; j++)
      writes.push(nh.syncPropose(nh.getNoOpSession(1), put(`k${j}`, VALUE), T));
    await cluster.settle(Promise.all(writes));
  }
}

describe("snapshots off the engine loop", () => {
  test("another shard led on the host commits, and its leader keeps its term, while a large snapshot is written", async () => {
    expect(KEYS * VALUE.length).toBeGreaterThan(4 * SNAPSHOT_STEP_BYTES);
    cluster = new SimCluster(undefined, { snapshotStepLatencyMs: STEP_MS });
    for (const i of [1, 2, 3]) await cluster.startHost(i);
    await cluster.startShard(1, [1, 2, 3]);
    await cluster.startShard(2, [1, 2, 3]);
    const host = await cluster.waitLeader(2);
    await cluster.waitLeader(1);
    await fill(cluster, host);
    const nh = cluster.host(host);
    const term = nh.getLeaderId(2).term;
    const dir = join(cluster.root, `host-${host}`);
    let snapshotDone = false;
    const snapshot = nh.syncRequestSnapshot(1, T).then((index) => {
      snapshotDone = true;
      return index;
    });
    // Today's inline save finished inside the iteration that took the request: nothing of
    // shard 2 could commit before it. Off the loop, shard 2's round trips go on meanwhile.
    let committedWhileWriting = 0;
    for (let i = 0; i < 3; i++) {
      await cluster.settle(nh.syncPropose(nh.getNoOpSession(2), put(`b${i}`, "v"), T));
      if (!snapshotDone) committedWhileWriting++;
    }
    expect(committedWhileWriting).toBeGreaterThan(0);
    expect(nh.getLeaderId(2)).toMatchObject({ leaderId: nh.getLeaderId(2).leaderId, term });
    const index = await cluster.settle(snapshot);
    expect(index).toBeGreaterThanOrEqual(KEYS);
    expect(nh.getLeaderId(2).term).toBe(term);
    // The file is complete (no .tmp left) and the replica still reads its data.
    const files = readdirSync(join(dir, "snapshots"), { recursive: true }).map(String);
    expect(files.some((f) => f.endsWith(".lbsnap"))).toBe(true);
    expect(files.some((f) => f.endsWith(".tmp"))).toBe(false);
    expect(readValue(await cluster.settle(nh.syncRead(1, get("k0"), T)))).toBe(VALUE);
    expect(existsSync(dir)).toBe(true);
  });

  test("an export is copied between iterations: its .tmp is seen growing, shard 2 commits meanwhile, and the answer comes once it is named", async () => {
    cluster = new SimCluster(undefined, { snapshotStepLatencyMs: STEP_MS });
    await cluster.startHost(1);
    await cluster.startShard(1, [1]);
    await cluster.startShard(2, [1]);
    await cluster.waitLeader(1);
    await cluster.waitLeader(2);
    await fill(cluster, 1);
    const nh = cluster.host(1);
    const exportDir = join(cluster.root, "export");
    mkdirSync(exportDir);
    let answered = false;
    const snapshot = nh.syncRequestSnapshot(1, { ...T, exportPath: exportDir }).then((index) => {
      answered = true;
      return index;
    });
    let sawTmp = false;
    let committedWhileCopying = 0;
    let inflight = false;
    while (!answered) {
      const names = readdirSync(exportDir);
      const copying = names.some((f) => f.endsWith(".tmp"));
      sawTmp ||= copying;
      if (!inflight) {
        inflight = true;
        nh.syncPropose(nh.getNoOpSession(2), put("e", "v"), T).then(() => {
          inflight = false;
          if (copying && !answered) committedWhileCopying++;
        });
      }
      await cluster.run(1);
    }
    const index = await cluster.settle(snapshot);
    // Inline, the copy was made and named inside one iteration: no .tmp between two steps.
    expect(sawTmp).toBe(true);
    expect(committedWhileCopying).toBeGreaterThan(0);
    const names = readdirSync(exportDir);
    expect(names.some((f) => f.endsWith(".tmp"))).toBe(false);
    const exported = names.find((f) => f.endsWith(".lbsnap"))!;
    const source = readdirSync(join(cluster.root, "host-1", "snapshots"), { recursive: true })
      .map(String)
      .find((f) => f.endsWith(exported))!;
    expect(
      readFileSync(join(exportDir, exported)).equals(
        readFileSync(join(cluster.root, "host-1", "snapshots", source)),
      ),
    ).toBe(true);
    expect(index).toBeGreaterThanOrEqual(KEYS);
  });

  test("a replica asked to snapshot again while it writes one answers systemBusy, then takes the next after it", async () => {
    cluster = new SimCluster(undefined, { snapshotStepLatencyMs: STEP_MS });
    await cluster.startHost(1);
    await cluster.startShard(1, [1]);
    await cluster.waitLeader(1);
    await fill(cluster, 1);
    const nh = cluster.host(1);
    let firstDone = false;
    const first = nh.syncRequestSnapshot(1, T).then((index) => {
      firstDone = true;
      return index;
    });
    await cluster.until(() => nh.stats.iterations > 0 && !firstDone, 1000, "the first snapshot under way");
    await cluster.run(2);
    expect(firstDone).toBe(false);
    const again = await nh.syncRequestSnapshot(1, T).then(
      () => "taken",
      (error: Error & { code?: string }) => error.code ?? String(error),
    );
    expect(again).toBe("systemBusy");
    const firstIndex = await cluster.settle(first);
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("after", "v"), T));
    const next = await cluster.settle(nh.syncRequestSnapshot(1, T));
    expect(next).toBeGreaterThan(firstIndex);
  });
});
