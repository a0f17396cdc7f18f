/**
 * Bytes the log database writes per commit (issue #16 item 3): for 1 and 48 shards, commits of
 * one 16 B entry per shard with each shard's hard state (what an engine batch writes under a
 * closed-loop write load), through the writer Worker (saveUpdatesAsync, one batch at a time).
 * Counts `wchar` of /proc/self/io (every byte passed to write(2) by the process, the Worker
 * included: SQLite writes whole pages to the WAL, plus its frame headers), so the figure is
 * what reaches the file system per commit and per entry.
 *
 * The journal's checkpoint policy (sqlite-sql.ts, DEFAULT_CHECKPOINT) can be varied with
 * --checkpoint-records / --checkpoint-entries / --checkpoint-bytes; run enough commits for
 * several checkpoints to fall inside the measurement (the default 2,000 does).
 *
 *   npx bun scripts/bench/logdb-bytes.ts [--commits 2000] [--checkpoint-records N] [--checkpoint-entries N]
 */
import { readFileSync, rmSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { LOGDB_FORMAT_VERSION, type LogDB, type ReplicaUpdate } from "../../src/logdb/types.ts";
import { makeEntry } from "../../src/raft/types.ts";
import { arg, writeResults } from "./api.ts";

const commits = Number(arg("commits", "2000"));
const checkpoint = {
  ...(process.argv.includes("--checkpoint-records")
    ? { records: Number(arg("checkpoint-records", "0")) }
    : {}),
  ...(process.argv.includes("--checkpoint-entries")
    ? { entries: Number(arg("checkpoint-entries", "0")) }
    : {}),
  ...(process.argv.includes("--checkpoint-bytes") ? { bytes: Number(arg("checkpoint-bytes", "0")) } : {}),
};

function wcharBytes(): number {
  const m = /wchar:\s+(\d+)/.exec(readFileSync("/proc/self/io", "utf8"));
  return Number(m?.[1] ?? 0);
}

function save(db: LogDB, updates: ReplicaUpdate[]): Promise<void> {
  return new Promise((resolve, reject) => db.saveUpdatesAsync(updates, (e) => (e ? reject(e) : resolve())));
}

async function measure(shards: number) {
  const dir = mkdtempSync(join(tmpdir(), "longboat-bench-bytes-"));
  const db = openSqliteLogDB({
    dir,
    identity: { raftAddress: "bytes:1", deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION },
    checkpoint,
  });
  const cmd = new Uint8Array(16).fill(7);
  const batch = (i: number): ReplicaUpdate[] =>
    Array.from({ length: shards }, (_, s) => ({
      shardId: s + 1,
      replicaId: 1,
      entries: [makeEntry({ index: i, term: 1, cmd, key: i, clientId: 0, seriesId: 0 })],
      state: { term: 1, vote: 1, commit: i - 1 },
      snapshot: null,
    }));
  try {
    for (let i = 1; i <= 50; i++) await save(db, batch(i)); // warm: tables and first pages exist
    const before = wcharBytes();
    for (let i = 51; i < 51 + commits; i++) await save(db, batch(i));
    const bytes = wcharBytes() - before;
    return {
      shards,
      commits,
      bytesPerCommit: Math.round(bytes / commits),
      bytesPerEntry: Math.round(bytes / (commits * shards)),
    };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [await measure(1), await measure(48)];
console.table(rows);
console.log(`written ${writeResults("logdb-bytes", { checkpoint, rows })}`);
