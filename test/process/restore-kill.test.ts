// A restore interrupted by kill -9 leaves the data directory with the replica as it was or as
// restored, never half (issue #19). At each point of the restore (LONGBOAT_TEST_RESTORE_KILL_AT,
// read only when run from source) the process kills itself with SIGKILL; then the compiled binary
// is killed at random moments of a restore of a larger backup. Each time the replica's records
// and the snapshot file they name must agree, and be all old or all new; a rerun then completes.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { readSnapshotFile } from "../../src/logdb/snapshotfile.ts";
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { LOGDB_FORMAT_VERSION } from "../../src/logdb/types.ts";
import { readPayload } from "../../src/rsm/payload.ts";
import { ensureBinary } from "./harness.ts";
import { Hosts, longboat } from "./lifecycle-harness.ts";

setDefaultTimeout(600_000);

const root = mkdtempSync(join(tmpdir(), "longboat-restore-kill-"));
const hosts = new Hosts(root);
const backup = join(root, "shard-1.lbsnap");
/** Host 1's data directory after the cluster stopped: shard 1 and shard 2 replicas 1. */
const template = join(root, "template");
let oldView: View;
let newMembers: string;

beforeAll(async () => {
  ensureBinary();
  for (const n of [1, 2, 3, 4, 5]) await hosts.add(n);
  const shard = (id: number, n: number) => `id=${id},app=kv,replica=${n},members=${hosts.members([1, 2, 3])}`;
  for (const n of [1, 2, 3]) await hosts.start(n, [shard(1, n), shard(2, n)]);
  await hosts.waitLeader(1, [1, 2, 3]);
  await hosts.waitLeader(2, [1, 2, 3]);
  const client = hosts.client([1, 2, 3], 10_000);
  // 160 values of 64 KiB: a 10 MiB backup, so a restore takes long enough to be killed midway.
  // A put is idempotent: one whose outcome is unknown (a busy machine) is simply sent again.
  const value = "x".repeat(64 * 1024);
  const put = async (key: string) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.put(1, key, value);
      } catch (error) {
        if (attempt >= 5) throw error;
      }
    }
  };
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = w; i < 160; i += 4) await put(`big${i}`);
    }),
  );
  await client.put(2, "shard-two", "stays");
  const apis = [1, 2, 3].map((n) => hosts.get(n).api).join(",");
  const run = await longboat(["backup", "--nodehost", apis, "--shard", "1", "--out", backup]);
  expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code: 0 });
  await hosts.stopAll();
  cpSync(hosts.get(1).dataDir, template, { recursive: true });
  oldView = view(template);
  newMembers = [`1@${hosts.get(1).raft}`, `4@${hosts.get(4).raft}`, `5@${hosts.get(5).raft}`].join(",");
});

afterAll(async () => {
  await hosts.stopAll();
  rmSync(root, { recursive: true, force: true });
});

interface View {
  /** Members of the bootstrap record, of the snapshot record, and of the file's header and payload. */
  bootstrap: string;
  record: string;
  fileHeader: string;
  filePayload: string;
  snapshotIndex: number;
  shard2: string;
}

const ids = (m: { addresses: { replicaId: number }[] } | null | undefined) =>
  (m?.addresses ?? []).map((a) => a.replicaId).join(",");

/** What replica 1 of shard 1 looks like in dir: every place its membership is written. */
function view(dir: string): View {
  const db = openSqliteLogDB({
    dir,
    identity: { raftAddress: hosts.get(1).raft, deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION },
  });
  try {
    const key = { shardId: 1, replicaId: 1 };
    const state = db.readLogState(key);
    const snap = state.snapshot;
    let fileHeader = "-";
    let filePayload = "-";
    if (snap !== null) {
      const file = readSnapshotFile(nodeFileSystem, snap.filePath); // verifies both checksums
      fileHeader = ids(file.meta.membership);
      filePayload = ids(readPayload(file.payload, snap.filePath).membership);
      expect(file.meta.index).toBe(snap.index);
    }
    return {
      bootstrap: (db.getBootstrap(key)?.addresses ?? []).map((a) => a.replicaId).join(","),
      record: ids(snap?.membership),
      fileHeader,
      filePayload,
      snapshotIndex: snap?.index ?? 0,
      shard2: JSON.stringify(db.readLogState({ shardId: 2, replicaId: 1 })),
    };
  } finally {
    db.close();
  }
}

const restoreArgs = (dir: string) => [
  "restore",
  "--data-dir",
  dir,
  "--shard",
  "1",
  "--replica",
  "1",
  "--members",
  newMembers,
  "--from",
  backup,
];

function expectRestored(v: View): void {
  expect(v).toMatchObject({ bootstrap: "1,4,5", record: "1,4,5", fileHeader: "1,4,5", filePayload: "1,4,5" });
  expect(v.snapshotIndex).toBeGreaterThan(160);
  expect(v.shard2).toBe(oldView.shard2);
}

describe("a restore killed with SIGKILL", () => {
  const points = [
    ["verified", "old"],
    ["locked", "old"],
    ["staged", "old"],
    ["committed", "new"],
    ["cleaned", "new"],
  ] as const;
  for (const [point, outcome] of points) {
    test(`at "${point}" leaves the replica ${outcome}; a rerun restores it`, async () => {
      const dir = join(root, `at-${point}`);
      cpSync(template, dir, { recursive: true });
      const run = await longboat(restoreArgs(dir), {
        source: true,
        env: { LONGBOAT_TEST_RESTORE_KILL_AT: point },
      });
      expect(run.signal).toBe("SIGKILL");
      const v = view(dir);
      if (outcome === "old") expect(v).toEqual(oldView);
      else expectRestored(v);
      const again = await longboat(restoreArgs(dir));
      expect(again.code).toBe(0);
      expectRestored(view(dir));
    });
  }

  test("at random moments (the compiled binary) leaves the replica old or new, never a mix", async () => {
    const full = join(root, "timing");
    cpSync(template, full, { recursive: true });
    const startedMs = Date.now();
    expect((await longboat(restoreArgs(full))).code).toBe(0);
    const fullMs = Date.now() - startedMs;
    // Most of a run is the process starting: measure that (a restore refused at once) and
    // spread the kills over the rest, where the restore works.
    const refusedAtMs = Date.now();
    await longboat([
      "restore",
      "--data-dir",
      full,
      "--shard",
      "1",
      "--replica",
      "1",
      "--members",
      newMembers,
      "--from",
      join(root, "none"),
    ]);
    const startupMs = Math.min(Date.now() - refusedAtMs, fullMs);
    const outcomes: string[] = [];
    const runs = 6;
    for (let i = 0; i < runs; i++) {
      const dir = join(root, `random-${i}`);
      cpSync(template, dir, { recursive: true });
      const killAfterMs = Math.floor(startupMs + ((i + 0.5) / runs) * (fullMs - startupMs));
      const run = await longboat(restoreArgs(dir), { killAfterMs });
      const v = view(dir);
      if (v.bootstrap === oldView.bootstrap) expect(v).toEqual(oldView);
      else expectRestored(v);
      outcomes.push(
        `${killAfterMs} ms: ${run.signal === null ? "finished" : "killed"}, ${v.bootstrap === "1,4,5" ? "new" : "old"}`,
      );
      rmSync(dir, { recursive: true, force: true });
    }
    console.log(`restore of ${fullMs} ms (${startupMs} ms to start) killed at: ${outcomes.join("; ")}`);
    expect(outcomes).toHaveLength(runs);
  });
});
