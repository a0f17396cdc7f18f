// Compaction with the compiled binary (issue #19): cmd compact removes the entries a snapshot
// covers and reports the log's size before and after, cmd log shows it, and a follower that
// was down while the log was compacted catches up by snapshot.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, waitFor } from "./harness.ts";
import { Hosts, longboat } from "./lifecycle-harness.ts";

setDefaultTimeout(300_000);

const root = mkdtempSync(join(tmpdir(), "longboat-compaction-"));
const hosts = new Hosts(root);
const shard = (n: number) => `id=1,app=kv,replica=${n},members=${hosts.members([1, 2, 3])}`;

beforeAll(async () => {
  ensureBinary();
  for (const n of [1, 2, 3, 4, 5]) await hosts.add(n);
  for (const n of [1, 2, 3]) await hosts.start(n, [shard(n)]);
  await hosts.waitLeader(1, [1, 2, 3]);
});

afterAll(async () => {
  await hosts.stopAll();
  rmSync(root, { recursive: true, force: true });
});

/** The log of host n as cmd log --json shows it: entries held and the last index. */
async function logOf(n: number): Promise<{ count: number; lastIndex: number }> {
  const run = await longboat(["cmd", "log", "--nodehost", hosts.get(n).api, "--shard", "1", "--json"]);
  expect(run.code).toBe(0);
  const log = JSON.parse(run.stdout) as { entries: unknown[]; lastIndex: number };
  return { count: log.entries.length, lastIndex: log.lastIndex };
}

test("cmd compact shrinks the log and reports it; a follower down meanwhile catches up by snapshot", async () => {
  const client = hosts.client([1, 2, 3], 10_000);
  for (let i = 0; i < 50; i++) await client.put(1, `c${i}`, `${i}`);
  await hosts.kill(3);
  for (let i = 50; i < 250; i++) await client.put(1, `c${i}`, `${i}`);
  for (const n of [1, 2]) {
    const before = await logOf(n);
    expect(before.count).toBeGreaterThan(250);
    // A snapshot that compacts almost nothing, then the compaction that removes the rest.
    const snap = await longboat([
      "cmd",
      "snapshot",
      "--nodehost",
      hosts.get(n).api,
      "--shard",
      "1",
      "--compaction-index",
      "2",
    ]);
    expect(snap.code).toBe(0);
    const index = Number(/at index (\d+)/.exec(snap.stdout)![1]);
    const run = await longboat([
      "cmd",
      "compact",
      "--nodehost",
      hosts.get(n).api,
      "--shard",
      "1",
      "--compaction-overhead",
      "0",
      "--json",
    ]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ ok: true, snapshotIndex: index, firstIndex: index + 1 });
    expect(report.entriesRemoved).toBe(index - 2);
    expect(report.logBytesRemoved).toBeGreaterThan(report.entriesRemoved * 128);
    expect(report.logBytes).toBeLessThan(report.logBytesRemoved);
    // The snapshot removed entries 1 and 2, the compaction the rest up to the snapshot. Entries
    // may have been appended meanwhile (a new leader's no-op, when the load delays heartbeats
    // past an election timeout): they are counted by the last index.
    const after = await logOf(n);
    const kept = before.count - 2 - report.entriesRemoved;
    expect(after.count).toBe(kept + (after.lastIndex - before.lastIndex));
    expect(report.logEntries).toBeGreaterThanOrEqual(kept);
    expect(report.logEntries).toBeLessThanOrEqual(after.count);
    const human = await longboat(["cmd", "compact", "--nodehost", hosts.get(n).api, "--shard", "1"]);
    expect(human.stdout).toContain("removed 0 entries");
    expect(human.stdout).toContain("log database files:");
  }
  await hosts.start(3, [shard(3)]);
  await waitFor(
    async () => {
      const got = await longboat(["cmd", "get", "--nodehost", hosts.get(3).api, "--shard", "1", "c249"]);
      return got.stdout === "249\n";
    },
    60_000,
    "host 3 to serve the last write",
  );
  // Host 3's log starts after the snapshot it was sent: the entries it missed were compacted.
  const old = await longboat(["cmd", "log", "--nodehost", hosts.get(3).api, "--shard", "1", "--from", "1"]);
  expect(old.code).toBe(1);
  const at = /were compacted \(the snapshot at (\d+) holds them\)/.exec(old.stderr);
  expect(at).not.toBeNull();
  expect(Number(at![1])).toBeGreaterThan(250);
});

test("--shard snapshot-entries and compaction-overhead snapshot and compact by themselves; auto-compact=false keeps the log until cmd compact", async () => {
  const single = (n: number, extra: string) =>
    `id=1,app=kv,replica=1,members=1@${hosts.get(n).raft},${extra}`;
  await hosts.start(4, [single(4, "snapshot-entries=20,compaction-overhead=5")]);
  await hosts.start(5, [single(5, "snapshot-entries=20,compaction-overhead=5,auto-compact=false")]);
  for (const n of [4, 5]) {
    await hosts.waitLeader(1, [n]);
    const client = hosts.client([n], 10_000);
    for (let i = 0; i < 60; i++) await client.put(1, `a${i}`, `${i}`);
  }
  const compacted = await longboat([
    "cmd",
    "log",
    "--nodehost",
    hosts.get(4).api,
    "--shard",
    "1",
    "--from",
    "1",
  ]);
  expect(compacted.code).toBe(1);
  expect(compacted.stderr).toMatch(/were compacted \(the snapshot at \d+ holds them\)/);
  const kept = await longboat([
    "cmd",
    "log",
    "--nodehost",
    hosts.get(5).api,
    "--shard",
    "1",
    "--from",
    "1",
    "--json",
  ]);
  expect(kept.code).toBe(0);
  const log = JSON.parse(kept.stdout);
  expect(log.firstIndex).toBe(1);
  expect(log.snapshotIndex).toBeGreaterThanOrEqual(40);
  const run = await longboat(["cmd", "compact", "--nodehost", hosts.get(5).api, "--shard", "1", "--json"]);
  expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, firstIndex: log.snapshotIndex - 5 + 1 });
});
