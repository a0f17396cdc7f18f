import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSnapshotMeta } from "../../src/logdb/codec.ts";
import { LogDBArgumentError, LogDBCorruptError, LogDBIdentityError } from "../../src/logdb/errors.ts";
import {
  decodeRecord,
  encodeRecord,
  forEachStoredEntry,
  type JournalOp,
  JournalRecordError,
  OpKind,
  readEntries,
  readEntryTerm,
} from "../../src/logdb/journal.ts";
import { JournalQueue } from "../../src/logdb/journal-queue.ts";
import { LOGDB_FILE_NAME, openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { LOGDB_FORMAT_VERSION } from "../../src/logdb/types.ts";
import type { Entry } from "../../src/raft/types.ts";
import { ents, IDENTITY, snap, up } from "./logdb.case.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-journal-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const K = { shardId: 1, replicaId: 2 };

/** Every op kind with values at the edges a varint must carry. */
function everyOp(): JournalOp[] {
  const meta = encodeSnapshotMeta(snap(9, 3));
  const big = ents(7, 8, 2 ** 40);
  big[0]!.seriesId = Number.MAX_SAFE_INTEGER;
  big[1]!.cmd = new Uint8Array(0);
  return [
    {
      kind: OpKind.update,
      shard: 2 ** 53 - 1,
      replica: 1,
      state: { term: 2 ** 40, vote: 127, commit: 128 },
      snapshot: { index: 6, term: 3, meta, resetEntries: true },
      truncateFrom: 7,
      entries: big,
    },
    { kind: OpKind.update, shard: 1, replica: 2, state: null, snapshot: null, truncateFrom: 0, entries: [] },
    { kind: OpKind.bootstrap, shard: 3, replica: 4, record: '{"app":"kv ✓"}' },
    { kind: OpKind.compact, shard: 3, replica: 4, index: 99 },
    {
      kind: OpKind.remove,
      shard: 3,
      replica: 4,
      tombstone: { removedAtMs: 1_700_000_000_000.5, reason: "gone" },
    },
    { kind: OpKind.remove, shard: 3, replica: 5, tombstone: null },
    {
      kind: OpKind.import,
      shard: 5,
      replica: 6,
      bootstrap: "{}",
      state: { term: 4, vote: 0, commit: 9 },
      snapshot: { index: 9, term: 3, meta },
    },
  ];
}

describe("journal records", () => {
  test("every op kind round-trips, numbers up to 2^53 − 1 included", () => {
    const ops = everyOp();
    const record = encodeRecord(ops);
    expect(record.entryCount).toBe(2);
    expect(decodeRecord(record.bytes)).toEqual(ops);
  });

  test("readEntries decodes an update op's entries from entriesAt, skipping, stopping, copying each cmd", () => {
    const ops = everyOp();
    const record = encodeRecord(ops);
    const entries = (ops[0] as Extract<JournalOp, { kind: 1 }>).entries;
    const first = entries[0]!.index;
    const at = record.entriesAt[0]!;
    const all: Entry[] = [];
    readEntries(record.bytes, at, first, 0, entries.length, (e) => all.push(e) > 0);
    expect(all).toEqual(entries);
    for (const e of all) expect(e.cmd.buffer).not.toBe(record.bytes.buffer);
    const second: Entry[] = [];
    readEntries(record.bytes, at, first, 1, entries.length - 1, (e) => second.push(e) > 0);
    expect(second).toEqual(entries.slice(1));
    const stopped: Entry[] = [];
    readEntries(record.bytes, at, first, 0, entries.length, (e) => {
      stopped.push(e);
      return false;
    });
    expect(stopped).toEqual(entries.slice(0, 1));
    entries.forEach((e, i) => {
      expect(readEntryTerm(record.bytes, at, i)).toBe(e.term);
    });
  });

  test("a value a varint cannot carry is refused before anything is written", () => {
    const bad = (patch: (e: ReturnType<typeof ents>[number]) => void) => {
      const entries = ents(1, 1, 1);
      patch(entries[0]!);
      return () =>
        encodeRecord([
          {
            kind: OpKind.update,
            shard: 1,
            replica: 1,
            state: null,
            snapshot: null,
            truncateFrom: 0,
            entries,
          },
        ]);
    };
    expect(bad((e) => (e.key = -1))).toThrow(LogDBArgumentError);
    expect(bad((e) => (e.clientId = 1.5))).toThrow(/clientId must be a non-negative safe integer, got 1.5/);
    expect(bad((e) => (e.proposerEpoch = 2 ** 53))).toThrow(LogDBArgumentError);
    expect(bad((e) => (e.term = Number.NaN))).toThrow(/term must be a non-negative safe integer, got NaN/);
    expect(bad((e) => ((e as { type: number }).type = 256))).toThrow(/entry 1 type 256/);
    expect(bad((e) => (e.index = -3))).toThrow(
      /first entry index must be a non-negative safe integer, got -3/,
    );
  });

  test("every field of every op kind is checked, whichever op of the batch holds the bad value", () => {
    const good = everyOp();
    expect(() => encodeRecord(good)).not.toThrow();
    const cases: [(ops: JournalOp[]) => void, RegExp][] = [
      [(ops) => (ops[0]!.shard = -1), /shard must be/],
      [(ops) => (ops[ops.length - 1]!.replica = 2 ** 53), /replica must be/],
    ];
    for (const op of good) {
      if (op.kind === OpKind.update && op.state !== null)
        cases.push([
          (ops) => ((ops[good.indexOf(op)] as typeof op).state!.commit = -2),
          /state.commit must be/,
        ]);
      if (op.kind === OpKind.update && op.snapshot !== null)
        cases.push([
          (ops) => ((ops[good.indexOf(op)] as typeof op).snapshot!.term = 0.5),
          /snapshot term must be/,
        ]);
      if (op.kind === OpKind.compact)
        cases.push([(ops) => ((ops[good.indexOf(op)] as typeof op).index = -1), /compact index must be/]);
      if (op.kind === OpKind.remove && op.tombstone !== null)
        cases.push([
          (ops) => ((ops[good.indexOf(op)] as typeof op).tombstone!.removedAtMs = Number.POSITIVE_INFINITY),
          /removedAtMs must be a finite number/,
        ]);
      if (op.kind === OpKind.import)
        cases.push([(ops) => ((ops[good.indexOf(op)] as typeof op).state.term = -1), /state.term must be/]);
    }
    expect(cases.length).toBeGreaterThanOrEqual(6);
    for (const [patch, message] of cases) {
      const ops = everyOp();
      patch(ops);
      expect(() => encodeRecord(ops)).toThrow(message);
    }
  });

  test("a lazy decode leaves each update's entries in the record; read back they equal the eager decode", () => {
    const ops = everyOp();
    const bytes = encodeRecord(ops).bytes;
    const eager = decodeRecord(bytes);
    const lazy = decodeRecord(bytes, true);
    const first = lazy[0] as Extract<JournalOp, { kind: 1 }>;
    expect(first.entries).toEqual([]);
    expect(first.stored?.count).toBe(2);
    const read: Entry[] = [];
    forEachStoredEntry(first.stored!, (e) => read.push(e));
    expect(read).toEqual((eager[0] as Extract<JournalOp, { kind: 1 }>).entries);
    // An op without entries has nothing stored; every other op decodes as before.
    expect((lazy[1] as Extract<JournalOp, { kind: 1 }>).stored).toBeUndefined();
    expect(lazy.slice(1)).toEqual(eager.slice(1));
    const q = new JournalQueue();
    q.add(1, bytes.byteLength, lazy);
    expect(q.entryCount).toBe(2);
    // Still checked to the end: a cut inside the entries is refused.
    const cut = bytes.slice(0, 60);
    const crc = Bun.hash.crc32(cut) >>> 0;
    const cutRecord = new Uint8Array(64);
    cutRecord.set(cut);
    new DataView(cutRecord.buffer).setUint32(60, crc, true);
    expect(() => decodeRecord(cutRecord, true)).toThrow(JournalRecordError);
  });

  test("a flipped byte, a cut record or another version is refused, never decoded", () => {
    const bytes = encodeRecord(everyOp()).bytes;
    const flipped = bytes.slice();
    flipped[20]! ^= 1;
    expect(() => decodeRecord(flipped)).toThrow(/checksum mismatch/);
    expect(() => decodeRecord(bytes.subarray(0, bytes.byteLength - 1))).toThrow(JournalRecordError);
    const other = bytes.slice();
    other[0] = 9;
    const crc = Bun.hash.crc32(other.subarray(0, other.byteLength - 4)) >>> 0;
    new DataView(other.buffer).setUint32(other.byteLength - 4, crc, true);
    expect(() => decodeRecord(other)).toThrow(/record version 9/);
  });
});

describe("journal queue (what one move takes)", () => {
  const upd = (shard: number, from: number, count: number): JournalOp => ({
    kind: OpKind.update,
    shard,
    replica: 1,
    state: null,
    snapshot: null,
    truncateFrom: 0,
    entries: ents(from, from + count - 1, 1),
  });
  const moved = (ops: JournalOp[]) =>
    ops.map((op) => `${op.shard}@${op.kind === OpKind.update ? op.entries[0]?.index : "-"}`);

  test("a move takes whole replicas, oldest first, until its budget, each replica's ops in order", () => {
    const q = new JournalQueue();
    q.add(1, 10, [upd(1, 1, 2), upd(2, 1, 2)]);
    q.add(2, 10, [upd(3, 1, 2), upd(1, 3, 2)]);
    q.add(3, 10, [upd(2, 3, 2)]);
    expect(q.entryCount).toBe(10);
    const first = q.take(3); // replica 1 (4 entries) is enough
    expect(moved(first.ops)).toEqual(["1@1", "1@3"]);
    expect(first.deleteThrough).toBe(0); // row 1 still holds replica 2, row 2 replica 3
    const second = q.take(1);
    expect(moved(second.ops)).toEqual(["2@1", "2@3"]);
    expect(second.deleteThrough).toBe(1);
    const rest = q.take(Number.POSITIVE_INFINITY);
    expect(moved(rest.ops)).toEqual(["3@1"]);
    expect(rest.deleteThrough).toBe(3);
    expect([q.entryCount, q.recordCount, q.sizeBytes]).toEqual([0, 0, 0]);
  });

  test("a record with no op leaves with the first move after it", () => {
    const q = new JournalQueue();
    q.add(1, 5, []);
    q.add(2, 5, [upd(1, 1, 1)]);
    q.add(3, 5, []);
    expect(q.take(1).deleteThrough).toBe(3);
  });
});

/** A copy of a live database's files: what a power cut right now would leave on disk. */
function copyLive(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const suffix of ["", "-wal"]) {
    const file = join(from, LOGDB_FILE_NAME + suffix);
    if (existsSync(file)) copyFileSync(file, join(to, LOGDB_FILE_NAME + suffix));
  }
}

describe("SqliteLogDB journal", () => {
  test("batches larger than a move's slice do not grow the journal: a move takes at least what a batch added", () => {
    const dir = join(root, "bounded");
    // Each batch: 2 entries in each of 6 replicas; a slice of 1 entry would take one replica.
    const db = openSqliteLogDB({ dir, identity: IDENTITY, checkpoint: { entries: 12, moveEntries: 1 } });
    try {
      let most = 0;
      for (let i = 0; i < 40; i++) {
        const from = 2 * i + 1;
        db.saveUpdates(
          [1, 2, 3, 4, 5, 6].map((shardId) => ({ ...up({ entries: ents(from, from + 1, 1) }), shardId })),
        );
        most = Math.max(most, db.pendingEntryCount);
      }
      // At most the threshold and one batch stay (a slice of one replica a move let it reach 60
      // here, growing with every batch).
      expect(most).toBeLessThanOrEqual(24);
      expect(db.entries({ shardId: 6, replicaId: 2 }, 1, 81, 1 << 20)).toEqual(ents(1, 80, 1));
    } finally {
      db.close();
    }
  });

  test("a write is one journal row until the checkpoint moves it into the per-replica tables", () => {
    const dir = join(root, "pending");
    const db = openSqliteLogDB({ dir, identity: IDENTITY, checkpoint: { records: 3 } });
    try {
      db.saveUpdates([up({ entries: ents(1, 2, 1) })]);
      db.saveUpdates([up({ entries: ents(3, 4, 1) })]);
      expect(db.pendingEntryCount).toBe(4);
      db.saveUpdates([up({ entries: ents(5, 6, 1) })]);
      expect(db.pendingEntryCount).toBe(0);
      expect(db.entries(K, 1, 7, 1 << 20)).toEqual(ents(1, 6, 1));
    } finally {
      db.close();
    }
  });

  test("reads span the tables and the journal, and an overwrite in the journal hides the tables' rows", () => {
    const dir = join(root, "span");
    const db = openSqliteLogDB({ dir, identity: IDENTITY, checkpoint: { records: 2 } });
    try {
      db.saveUpdates([up({ entries: ents(1, 6, 1) })]);
      db.saveUpdates([up({ entries: ents(7, 8, 1) })]); // checkpoint: 1..8 in the tables
      db.saveUpdates([up({ entries: ents(5, 6, 2) })]); // pending: overwrites 5.., drops 7..8
      expect(db.pendingEntryCount).toBe(2);
      expect(db.entries(K, 1, 100, 1 << 20).map((e) => [e.index, e.term])).toEqual([
        [1, 1],
        [2, 1],
        [3, 1],
        [4, 1],
        [5, 2],
        [6, 2],
      ]);
      expect(db.term(K, 7)).toBeUndefined();
      expect(db.logUsage(K).entryCount).toBe(6);
    } finally {
      db.close();
    }
  });

  test("a journal a crash left behind is moved into the tables at open", () => {
    const dir = join(root, "live");
    const copy = join(root, "crashed");
    const db = openSqliteLogDB({ dir, identity: IDENTITY });
    try {
      db.saveBootstrap(K, {
        addresses: [{ replicaId: 2, address: "h1:7001" }],
        join: false,
        app: "kv",
        configJson: "{}",
      });
      db.saveUpdates([up({ entries: ents(1, 10, 1), state: { term: 1, vote: 2, commit: 8 } })]);
      db.saveUpdates([up({ snapshot: snap(8, 1) })]);
      db.compact(K, 7);
      db.saveUpdates([up({ entries: ents(9, 12, 2), state: { term: 2, vote: 2, commit: 9 } })]);
      db.removeReplica({ shardId: 4, replicaId: 1 }, { removedAtMs: 5, reason: "test" });
      expect(db.pendingEntryCount).toBeGreaterThan(0);
      copyLive(dir, copy);
    } finally {
      db.close();
    }
    const reopened = openSqliteLogDB({ dir: copy, identity: IDENTITY });
    try {
      expect(reopened.recoveredRecords).toBe(5);
      expect(reopened.pendingEntryCount).toBe(0);
      expect(reopened.readLogState(K)).toEqual({
        state: { term: 2, vote: 2, commit: 9 },
        snapshot: snap(8, 1),
        firstIndex: 8,
        lastIndex: 12,
      });
      expect(reopened.entries(K, 8, 13, 1 << 20)).toEqual([...ents(8, 8, 1), ...ents(9, 12, 2)]);
      expect(reopened.getBootstrap(K)?.app).toBe("kv");
      expect(reopened.getTombstone({ shardId: 4, replicaId: 1 })).toEqual({ removedAtMs: 5, reason: "test" });
    } finally {
      reopened.close();
    }
  });

  test("a damaged journal record is refused at open with LogDBCorruptError", () => {
    const dir = join(root, "damaged-live");
    const copy = join(root, "damaged");
    const db = openSqliteLogDB({ dir, identity: IDENTITY });
    db.saveUpdates([up({ entries: ents(1, 3, 1) })]);
    copyLive(dir, copy);
    db.close();
    const raw = new Database(join(copy, LOGDB_FILE_NAME));
    const [seq, record] = raw.query("SELECT seq, record FROM journal").values()[0] as [number, Uint8Array];
    record[record.byteLength - 5]! ^= 0x10;
    raw.query("UPDATE journal SET record = ? WHERE seq = ?").run(record, seq);
    raw.close();
    expect(() => openSqliteLogDB({ dir: copy, identity: IDENTITY })).toThrow(LogDBCorruptError);
    expect(() => openSqliteLogDB({ dir: copy, identity: IDENTITY })).toThrow(
      /journal record does not decode: checksum mismatch/,
    );
  });

  test("after the writer fails every later write fails with its error; nothing after it is written", async () => {
    const dir = join(root, "fails");
    const db = openSqliteLogDB({ dir, identity: IDENTITY, checkpoint: { records: 2 } });
    try {
      db.saveUpdates([up({ entries: ents(1, 1, 1) })]);
      // A trigger makes the next checkpoint fail (an injected error here;
      // an I/O error or a full disk in life).
      const raw = new Database(join(dir, LOGDB_FILE_NAME));
      raw.exec(
        "CREATE TRIGGER fail_move BEFORE INSERT ON entries WHEN NEW.idx = 2 BEGIN SELECT RAISE(ABORT, 'injected move failure'); END",
      );
      raw.close();
      // The second record makes the journal due: the move runs in its transaction and fails it.
      expect(() => db.saveUpdates([up({ entries: ents(2, 2, 1) })])).toThrow(/injected move failure/);
      expect(() => db.saveUpdates([up({ entries: ents(3, 3, 1) })])).toThrow(/injected move failure/);
      const done = await new Promise<Error | null>((resolve) =>
        db.saveUpdatesAsync([up({ entries: ents(3, 3, 1) })], resolve),
      ).catch((error: Error) => error);
      expect(String(done)).toMatch(/injected move failure/);
      expect(() => db.saveBootstrap(K, { addresses: [], join: true, app: "kv", configJson: "{}" })).toThrow(
        /injected move failure/,
      );
    } finally {
      db.close();
    }
  });
});

describe("SqliteLogDB format", () => {
  /** A data directory as format 1 (before the journal) wrote it. */
  function formatOne(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const old = new Database(join(dir, LOGDB_FILE_NAME), { create: true });
    old.exec("PRAGMA page_size=8192; PRAGMA journal_mode=WAL");
    old.exec(`CREATE TABLE identity (id INTEGER PRIMARY KEY CHECK (id = 1), raft_address TEXT NOT NULL,
        deployment_id INTEGER NOT NULL, format_version INTEGER NOT NULL);
      CREATE TABLE entries (shard INTEGER NOT NULL, replica INTEGER NOT NULL, idx INTEGER NOT NULL,
        term INTEGER NOT NULL, type INTEGER NOT NULL, ekey INTEGER NOT NULL, client INTEGER NOT NULL,
        series INTEGER NOT NULL, responded INTEGER NOT NULL, cmd BLOB NOT NULL,
        proposer INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (shard, replica, idx)) WITHOUT ROWID;
      CREATE TABLE state (shard INTEGER NOT NULL, replica INTEGER NOT NULL, term INTEGER NOT NULL,
        vote INTEGER NOT NULL, commit_index INTEGER NOT NULL, PRIMARY KEY (shard, replica)) WITHOUT ROWID;
      CREATE TABLE snapshots (shard INTEGER NOT NULL, replica INTEGER NOT NULL, idx INTEGER NOT NULL,
        term INTEGER NOT NULL, meta BLOB NOT NULL, PRIMARY KEY (shard, replica)) WITHOUT ROWID;
      CREATE TABLE bootstrap (shard INTEGER NOT NULL, replica INTEGER NOT NULL, record TEXT NOT NULL,
        PRIMARY KEY (shard, replica)) WITHOUT ROWID;
      CREATE TABLE tombstones (shard INTEGER NOT NULL, replica INTEGER NOT NULL,
        removed_at_ms INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (shard, replica)) WITHOUT ROWID;`);
    old.query("INSERT INTO identity VALUES (1, ?, ?, 1)").run(IDENTITY.raftAddress, IDENTITY.deploymentId);
    old.query("INSERT INTO entries VALUES (1, 2, 1, 3, 0, 77, 0, 0, 0, x'0102', 4, 5)").run();
    old.query("INSERT INTO state VALUES (1, 2, 3, 2, 1)").run();
    old.close();
  }

  test("a format-1 data directory is migrated at open: its data reads back and it is format 2", () => {
    const dir = join(root, "format-1");
    formatOne(dir);
    const db = openSqliteLogDB({ dir, identity: IDENTITY });
    try {
      expect(db.migratedFrom).toBe(1);
      expect(db.readLogState(K)).toMatchObject({
        state: { term: 3, vote: 2, commit: 1 },
        firstIndex: 1,
        lastIndex: 1,
      });
      const [e] = db.entries(K, 1, 2, 1 << 20);
      expect([e!.term, e!.key, e!.proposerId, e!.proposerEpoch, [...e!.cmd]]).toEqual([3, 77, 4, 5, [1, 2]]);
      db.saveUpdates([up({ entries: ents(2, 3, 3) })]);
    } finally {
      db.close();
    }
    const again = openSqliteLogDB({ dir, identity: IDENTITY });
    try {
      expect(again.migratedFrom).toBeNull();
      expect(again.readLogState(K).lastIndex).toBe(3);
    } finally {
      again.close();
    }
    // A build that reads format 1 only refuses the migrated directory instead of missing the journal.
    expect(() => openSqliteLogDB({ dir, identity: { ...IDENTITY, formatVersion: 1 } })).toThrow(
      /written by a newer Longboat \(format 2, this build reads 1\)/,
    );
  });

  test("a format-1 directory of another raft address is refused and left at format 1", () => {
    const dir = join(root, "format-1-other");
    formatOne(dir);
    expect(() => openSqliteLogDB({ dir, identity: { ...IDENTITY, raftAddress: "h9:7001" } })).toThrow(
      LogDBIdentityError,
    );
    const raw = new Database(join(dir, LOGDB_FILE_NAME));
    const tables = raw.query("SELECT name FROM sqlite_master WHERE name = 'journal'").values();
    const format = raw.query("SELECT format_version FROM identity").values()[0]?.[0];
    raw.close();
    expect([tables.length, format]).toEqual([0, 1]);
  });

  test("a format this build does not know is refused, saying which and what to do", () => {
    const dir = join(root, "format-0");
    formatOne(dir);
    const raw = new Database(join(dir, LOGDB_FILE_NAME));
    raw.query("UPDATE identity SET format_version = 0").run();
    raw.close();
    expect(() => openSqliteLogDB({ dir, identity: IDENTITY })).toThrow(
      `data directory ${dir} uses format 0, this build needs ${LOGDB_FORMAT_VERSION} and has no migration for it (use the Longboat that wrote it, or a new --data-dir)`,
    );
  });
});
