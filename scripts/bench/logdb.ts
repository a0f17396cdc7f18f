/**
 * LogDB throughput: entries/s and fsyncs/s (= committed saveUpdates/s; WAL + synchronous=FULL
 * fsyncs the WAL once per commit) for 16 B and 1 KiB entries at batch sizes 1, 10, 100, 1000
 * spread over 48 shards, next to a plain bun:sqlite insert loop over the same table shape.
 *
 *   npx bun scripts/bench/logdb.ts [--quick] [--dir /path/on/the/disk/to/measure]
 *
 * Prints a table and writes bench-results/logdb-<date>.json. Only the saveUpdates call (or
 * the peer's transaction) is timed; building the Entry objects is the Raft core's cost.
 */
import { Database } from "bun:sqlite";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { LOGDB_FORMAT_VERSION, type ReplicaUpdate } from "../../src/logdb/types.ts";
import { type Entry, makeEntry } from "../../src/raft/types.ts";

const SHARDS = 48;
const quick = process.argv.includes("--quick");
const dirArg = process.argv.indexOf("--dir");
const base = dirArg > 0 ? (process.argv[dirArg + 1] as string) : tmpdir();
const cellMs = quick ? 400 : 2000;
const entrySizes = [16, 1024];
const batchSizes = [1, 10, 100, 1000];

interface Cell {
  impl: "logdb" | "peer";
  entryBytes: number;
  batchEntries: number;
  entries: number;
  commits: number;
  seconds: number;
  entriesPerSec: number;
  fsyncsPerSec: number;
}

/** Builds one batch: batchEntries entries dealt round-robin over the shards, with a state per shard. */
function makeBatch(next: number[], batchEntries: number, cmd: Uint8Array, term: number): ReplicaUpdate[] {
  const perShard: Entry[][] = [];
  for (let i = 0; i < batchEntries; i++) {
    const s = i % SHARDS;
    const index = next[s] as number;
    next[s] = index + 1;
    if (perShard[s] === undefined) perShard[s] = [];
    (perShard[s] as Entry[]).push(
      makeEntry({ index, term, key: index * 7, clientId: 11, seriesId: index, respondedTo: index - 1, cmd }),
    );
  }
  const out: ReplicaUpdate[] = [];
  perShard.forEach((entries, s) => {
    const last = (entries[entries.length - 1] as Entry).index;
    out.push({
      shardId: s + 1,
      replicaId: 1,
      entries,
      state: { term, vote: 1, commit: last - 1 },
      snapshot: null,
    });
  });
  return out;
}

function benchLogDB(dir: string, entryBytes: number, batchEntries: number): Cell {
  const db = openSqliteLogDB({
    dir,
    identity: { raftAddress: "bench:1", deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION },
  });
  const cmd = new Uint8Array(entryBytes).fill(7);
  const next = new Array<number>(SHARDS).fill(1);
  let entries = 0;
  let commits = 0;
  let busyMs = 0;
  while (busyMs < cellMs) {
    const batch = makeBatch(next, batchEntries, cmd, 1);
    const t0 = performance.now();
    db.saveUpdates(batch);
    busyMs += performance.now() - t0;
    entries += batchEntries;
    commits++;
  }
  db.close();
  return cell("logdb", entryBytes, batchEntries, entries, commits, busyMs);
}

/** The peer: what a hand-written loop of prepared inserts does, one transaction per batch. */
function benchPeer(dir: string, entryBytes: number, batchEntries: number): Cell {
  mkdirSync(dir, { recursive: true });
  const db = new Database(join(dir, "peer.sqlite"));
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
  db.exec(
    "CREATE TABLE e (shard INTEGER, replica INTEGER, idx INTEGER, term INTEGER, data BLOB, PRIMARY KEY (shard, replica, idx)) WITHOUT ROWID",
  );
  const insert = db.prepare("INSERT INTO e VALUES (?,?,?,?,?)");
  const cmd = new Uint8Array(entryBytes).fill(7);
  const next = new Array<number>(SHARDS).fill(1);
  const tx = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) {
      const s = i % SHARDS;
      const index = next[s] as number;
      next[s] = index + 1;
      insert.run(s + 1, 1, index, 1, cmd);
    }
  });
  let entries = 0;
  let commits = 0;
  let busyMs = 0;
  while (busyMs < cellMs) {
    const t0 = performance.now();
    tx(batchEntries);
    busyMs += performance.now() - t0;
    entries += batchEntries;
    commits++;
  }
  db.close(true);
  return cell("peer", entryBytes, batchEntries, entries, commits, busyMs);
}

function cell(
  impl: Cell["impl"],
  entryBytes: number,
  batchEntries: number,
  entries: number,
  commits: number,
  busyMs: number,
): Cell {
  const seconds = busyMs / 1000;
  return {
    impl,
    entryBytes,
    batchEntries,
    entries,
    commits,
    seconds: Number(seconds.toFixed(3)),
    entriesPerSec: Math.round(entries / seconds),
    fsyncsPerSec: Math.round(commits / seconds),
  };
}

const root = mkdtempSync(join(base, "longboat-bench-logdb-"));
const cells: Cell[] = [];
const rows: string[] = [];
rows.push(
  ["entry", "batch", "logdb entries/s", "logdb fsyncs/s", "peer entries/s", "peer fsyncs/s", "ratio"]
    .map((s) => s.padStart(16))
    .join(""),
);
try {
  let n = 0;
  for (const entryBytes of entrySizes) {
    for (const batchEntries of batchSizes) {
      const a = benchLogDB(join(root, `l${n}`), entryBytes, batchEntries);
      const b = benchPeer(join(root, `p${n++}`), entryBytes, batchEntries);
      cells.push(a, b);
      const ratio = (a.entriesPerSec / b.entriesPerSec).toFixed(2);
      rows.push(
        [
          `${entryBytes} B`,
          String(batchEntries),
          a.entriesPerSec,
          a.fsyncsPerSec,
          b.entriesPerSec,
          b.fsyncsPerSec,
          ratio,
        ]
          .map((v) => String(v).padStart(16))
          .join(""),
      );
      console.log(rows[rows.length - 1]);
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
console.log(`\n${rows.join("\n")}`);
const date = new Date().toISOString().slice(0, 10);
mkdirSync("bench-results", { recursive: true });
const out = join("bench-results", `logdb-${date}.json`);
writeFileSync(
  out,
  `${JSON.stringify({ bench: "logdb", date: new Date().toISOString(), quick, shards: SHARDS, cellMs, dir: base, bun: Bun.version, cells }, null, 2)}\n`,
);
console.log(`wrote ${out}`);
