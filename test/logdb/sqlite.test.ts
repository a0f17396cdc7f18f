import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOGDB_FILE_NAME, openSqliteLogDB, type SqliteLogDB } from "../../src/logdb/sqlite.ts";
import type { LogDB } from "../../src/logdb/types.ts";
import { ents, IDENTITY, LIMITS, runLogDBConformance, snap, up } from "./logdb.case.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-logdb-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/**
 * Three times: with the default checkpoint policy the suite's writes stay in the journal and are
 * read through the engine thread's overlay; with a checkpoint after every record they are read
 * from the per-replica tables; with moves of one replica at a time, rows stay in the journal
 * after some of their replicas moved, and reads mix the two.
 */
for (const [name, checkpoint] of [
  ["sqlite", undefined],
  ["sqlite (journal moved after every record)", { records: 1 }],
  ["sqlite (one replica per move)", { records: 2, moveEntries: 1 }],
] as const) {
  runLogDBConformance(name, {
    open: () => openSqliteLogDB({ dir: join(root, `db-${n++}`), identity: IDENTITY, ...LIMITS, checkpoint }),
    reopen(db: LogDB, identity = IDENTITY): LogDB {
      db.close();
      const dir = (db as SqliteLogDB).path.replace(/\/logdb\.sqlite$/, "");
      return openSqliteLogDB({ dir, identity, ...LIMITS, checkpoint });
    },
  });
}

describe("SqliteLogDB: what the tables held at open (read once, then Map lookups)", () => {
  const K = { shardId: 1, replicaId: 2 };
  const BOOT = {
    addresses: [{ replicaId: 2, address: "h1:7001" }],
    join: false,
    app: "kv",
    configJson: "{}",
  };
  /** A database holding K's bootstrap, state, snapshot at 5 and entries 6..8, reopened. */
  function reopened(name: string): { dir: string; db: SqliteLogDB } {
    const dir = join(root, name);
    const first = openSqliteLogDB({ dir, identity: IDENTITY, ...LIMITS });
    first.saveBootstrap(K, BOOT);
    first.saveUpdates([
      up({ state: { term: 3, vote: 2, commit: 5 }, snapshot: snap(5, 3), entries: ents(6, 8, 3) }),
    ]);
    first.close();
    return { dir, db: openSqliteLogDB({ dir, identity: IDENTITY, ...LIMITS }) };
  }
  /** Moves the journal into the tables and lets the engine thread forget its overlay. */
  const intoTables = (db: SqliteLogDB) => db.reclaimSpace();

  test("a removal with a tombstone after open is seen once the tables hold it (no stale bootstrap, state or snapshot)", () => {
    const { db } = reopened("atopen-remove");
    try {
      expect(db.getBootstrap(K)?.app).toBe("kv");
      expect(db.getTombstone(K)).toBeNull();
      db.removeReplica(K, { removedAtMs: 7, reason: "gone" });
      intoTables(db);
      expect(db.getTombstone(K)).toEqual({ removedAtMs: 7, reason: "gone" });
      expect(db.getBootstrap(K)).toBeNull();
      const st = db.readLogState(K);
      expect(st.snapshot).toBeNull();
      expect(st.state).toEqual({ term: 0, vote: 0, commit: 0 });
      expect(db.listReplicas()).toEqual([]);
    } finally {
      db.close();
    }
  });

  test("a new hard state and snapshot after open are read back once the tables hold them, and after a reopen", () => {
    const { dir, db } = reopened("atopen-update");
    try {
      expect(db.readLogState(K)).toMatchObject({
        state: { term: 3, commit: 5 },
        firstIndex: 6,
        lastIndex: 8,
      });
      db.saveUpdates([
        up({ state: { term: 4, vote: 2, commit: 8 }, snapshot: snap(8, 3), entries: ents(9, 9, 4) }),
      ]);
      db.compact(K, 8);
      intoTables(db);
      const st = db.readLogState(K);
      expect(st.state).toEqual({ term: 4, vote: 2, commit: 8 });
      expect(st.snapshot?.index).toBe(8);
      expect([st.firstIndex, st.lastIndex]).toEqual([9, 9]);
    } finally {
      db.close();
    }
    const again = openSqliteLogDB({ dir, identity: IDENTITY, ...LIMITS });
    try {
      const st = again.readLogState(K);
      expect(st.state).toEqual({ term: 4, vote: 2, commit: 8 });
      expect([st.snapshot?.index, st.firstIndex, st.lastIndex]).toEqual([8, 9, 9]);
      expect(again.entries(K, 9, 10, 1 << 20).map((e) => e.index)).toEqual([9]);
    } finally {
      again.close();
    }
  });

  test("a log compacted to its snapshot (no entry stored at open) restarts from the snapshot point; entries written after open are read", () => {
    const dir = join(root, "atopen-compacted");
    const first = openSqliteLogDB({ dir, identity: IDENTITY, ...LIMITS });
    first.saveBootstrap(K, BOOT);
    first.saveUpdates([up({ state: { term: 3, vote: 2, commit: 5 }, entries: ents(1, 5, 3) })]);
    first.saveUpdates([up({ snapshot: snap(5, 3) })]);
    first.compact(K, 5);
    first.close();
    const db = openSqliteLogDB({ dir, identity: IDENTITY, ...LIMITS });
    try {
      const st = db.readLogState(K);
      expect([st.snapshot?.index, st.firstIndex, st.lastIndex]).toEqual([5, 6, 5]);
      expect(db.term(K, 5)).toBe(3);
      // Another replica, unknown at open, gets entries after it: they are read, not "nothing".
      const other = { shardId: 9, replicaId: 1 };
      db.saveUpdates([
        { ...other, entries: ents(1, 3, 1), state: { term: 1, vote: 1, commit: 3 }, snapshot: null },
      ]);
      intoTables(db);
      const o = db.readLogState(other);
      expect([o.firstIndex, o.lastIndex, o.state.commit]).toEqual([1, 3, 3]);
    } finally {
      db.close();
    }
  });

  test("a bootstrap record written after open is read back once the tables hold it; a fresh directory answers nothing", () => {
    const dir = join(root, "atopen-bootstrap");
    const db = openSqliteLogDB({ dir, identity: IDENTITY, ...LIMITS });
    try {
      expect(db.getBootstrap(K)).toBeNull();
      expect(db.getTombstone(K)).toBeNull();
      expect(db.readLogState(K)).toMatchObject({ snapshot: null, firstIndex: 1, lastIndex: 0 });
      db.saveBootstrap(K, BOOT);
      intoTables(db);
      expect(db.getBootstrap(K)?.addresses).toEqual(BOOT.addresses);
    } finally {
      db.close();
    }
  });
});

/** Commit frames in a data directory's WAL (a frame header's bytes 4..7 ≠ 0 mark a commit). */
function walCommits(dir: string, pageSize: number): number {
  const path = join(dir, `${LOGDB_FILE_NAME}-wal`);
  if (!existsSync(path)) return 0;
  const wal = readFileSync(path);
  const view = new DataView(wal.buffer, wal.byteOffset, wal.byteLength);
  const frame = 24 + pageSize;
  let commits = 0;
  for (let at = 32; at + frame <= wal.byteLength; at += frame) if (view.getUint32(at + 4) !== 0) commits++;
  return commits;
}

describe("SqliteLogDB", () => {
  test("writerStats counts every append and move with its time and the entries moved", () => {
    const db = openSqliteLogDB({
      dir: join(root, "writer-stats"),
      identity: IDENTITY,
      checkpoint: { records: 3, moveEntries: 1 },
    });
    try {
      expect(db.writerStats()).toEqual({
        appends: 0,
        appendMs: 0,
        commitMs: 0,
        moves: 0,
        moveMs: 0,
        movedEntries: 0,
      });
      // Two replicas, 5 entries each per record: from the third record on the journal is over
      // its policy and each batch carries a move of one replica (moveEntries 1 < 5) in its own
      // transaction: one commit (one fsync) per batch, moves included.
      const commitsBefore = walCommits(join(root, "writer-stats"), db.settings().pageSizeBytes);
      for (let i = 0; i < 4; i++) {
        db.saveUpdates([
          { shardId: 1, replicaId: 1, entries: ents(1 + 5 * i, 5 + 5 * i, 1), state: null, snapshot: null },
          { shardId: 2, replicaId: 1, entries: ents(1 + 5 * i, 5 + 5 * i, 1), state: null, snapshot: null },
        ]);
      }
      const s = db.writerStats();
      expect(s.appends).toBe(4);
      expect(s.commitMs).toBeGreaterThan(0);
      expect(s.appendMs).toBeGreaterThanOrEqual(s.commitMs);
      expect(s.moves).toBe(2);
      // The first move takes replica 1's 15 entries, the second replica 2's 20 (its fourth batch too).
      expect(s.movedEntries).toBe(35);
      expect(s.moveMs).toBeGreaterThan(0);
      expect(walCommits(join(root, "writer-stats"), db.settings().pageSizeBytes) - commitsBefore).toBe(4);
    } finally {
      db.close();
    }
  });

  test("bootstrap records saved in one turn go to the writer as one record (one fsync), before a later write", async () => {
    const db = openSqliteLogDB({ dir: join(root, "bootstrap-batch"), identity: IDENTITY });
    try {
      const before = db.recordsHandedOver;
      const dones: Promise<Error | null>[] = [];
      for (let shardId = 1; shardId <= 100; shardId++) {
        dones.push(
          new Promise((resolve) =>
            db.saveBootstrapAsync(
              { shardId, replicaId: 1 },
              { addresses: [], join: true, app: "kv", configJson: "{}" },
              resolve,
            ),
          ),
        );
      }
      expect(await Promise.all(dones)).toEqual(Array(100).fill(null));
      expect(db.recordsHandedOver - before).toBe(1);
      // Deferred records go with a synchronous write handed over before the microtask.
      db.saveBootstrapAsync(
        { shardId: 101, replicaId: 1 },
        { addresses: [], join: true, app: "kv", configJson: "{}" },
        () => {},
      );
      db.saveUpdates([{ shardId: 101, replicaId: 1, entries: ents(1, 1, 1), state: null, snapshot: null }]);
      expect(db.recordsHandedOver - before).toBe(2);
      expect(db.listReplicas()).toHaveLength(101);
    } finally {
      db.close();
    }
  });

  test("a bootstrap record still deferred at close is written by close, and its done says so", async () => {
    const dir = join(root, "bootstrap-close");
    const db = openSqliteLogDB({ dir, identity: IDENTITY });
    const done = new Promise<Error | null>((resolve) =>
      db.saveBootstrapAsync(
        { shardId: 3, replicaId: 1 },
        { addresses: [], join: true, app: "kv", configJson: "{}" },
        resolve,
      ),
    );
    db.close();
    expect(await done).toBeNull();
    const again = openSqliteLogDB({ dir, identity: IDENTITY });
    try {
      expect(again.getBootstrap({ shardId: 3, replicaId: 1 })?.join).toBe(true);
    } finally {
      again.close();
    }
  });

  test("the database runs in WAL mode with synchronous=FULL and the directory lock is exclusive", () => {
    const db = openSqliteLogDB({ dir: join(root, "settings"), identity: IDENTITY });
    try {
      expect(db.settings()).toEqual({
        journalMode: "wal",
        synchronous: 2,
        pageSizeBytes: 8192,
        lockingMode: "exclusive",
      });
    } finally {
      db.close();
    }
  });

  test("bounds that contradict each other are refused at open", () => {
    expect(() =>
      openSqliteLogDB({
        dir: join(root, "bounds"),
        identity: IDENTITY,
        maxEntryBytes: 100,
        maxBatchBytes: 50,
      }),
    ).toThrow(/maxBatchBytes must be an integer ≥ maxEntryBytes 100, got 50/);
  });

  test("a second open of the same data directory fails saying it is in use", () => {
    const dir = join(root, "busy");
    const db = openSqliteLogDB({ dir, identity: IDENTITY });
    try {
      db.saveUpdates([up({ entries: ents(1, 1, 1) })]);
      expect(() => openSqliteLogDB({ dir, identity: IDENTITY })).toThrow(/is in use by another process/);
    } finally {
      db.close();
    }
  });

  test("a database written before entries carried a request tag opens with tag 0 on its old entries", () => {
    const dir = join(root, "untagged");
    mkdirSync(dir, { recursive: true });
    // The entries table as builds before the request tag created it, with one entry.
    const old = new Database(join(dir, "logdb.sqlite"), { create: true });
    old.exec(`CREATE TABLE entries (shard INTEGER NOT NULL, replica INTEGER NOT NULL, idx INTEGER NOT NULL,
      term INTEGER NOT NULL, type INTEGER NOT NULL, ekey INTEGER NOT NULL, client INTEGER NOT NULL,
      series INTEGER NOT NULL, responded INTEGER NOT NULL, cmd BLOB NOT NULL,
      PRIMARY KEY (shard, replica, idx)) WITHOUT ROWID`);
    old.query("INSERT INTO entries VALUES (1, 2, 1, 1, 0, 77, 0, 0, 0, x'01')").run();
    old.close();
    const db = openSqliteLogDB({ dir, identity: IDENTITY });
    try {
      const [e] = db.entries({ shardId: 1, replicaId: 2 }, 1, 2, 1 << 20);
      expect([e!.key, e!.proposerId, e!.proposerEpoch]).toEqual([77, 0, 0]);
      db.saveUpdates([up({ entries: ents(2, 2, 1) })]);
      expect(db.entries({ shardId: 1, replicaId: 2 }, 2, 3, 1 << 20)).toEqual(ents(2, 2, 1));
    } finally {
      db.close();
    }
  });
});
