import { describe, expect, test } from "bun:test";
import { LogReader } from "../../src/logdb/logreader.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import type { LogDB, ReplicaKey } from "../../src/logdb/types.ts";
import { CompactedError, UnavailableError } from "../../src/raft/storage.ts";
import { ents, snap, up } from "./logdb.case.ts";

const K: ReplicaKey = { shardId: 1, replicaId: 2 };

/** Counts term() reads that reach the database. */
class CountingDB extends MemoryLogDB {
  termReads = 0;
  override term(key: ReplicaKey, index: number): number | undefined {
    this.termReads++;
    return super.term(key, index);
  }
}

function dbWith(lastIndex: number, term = 1): CountingDB {
  const db = new CountingDB();
  if (lastIndex > 0)
    db.saveUpdates([up({ entries: ents(1, lastIndex, term), state: { term, vote: 2, commit: 1 } })]);
  return db;
}

describe("LogReader", () => {
  test("an empty log has range 1..0 and term(0) = 0", () => {
    const r = new LogReader(dbWith(0), K);
    expect([r.firstIndex(), r.lastIndex(), r.term(0)]).toEqual([1, 0, 0]);
    expect(r.nodeState()).toEqual({
      state: { term: 0, vote: 0, commit: 0 },
      membership: { configChangeId: 0, addresses: [], nonVotings: [], witnesses: [], removed: [] },
    });
  });

  test("it starts from the persisted range and hard state", () => {
    const r = new LogReader(dbWith(5, 3), K);
    expect([r.firstIndex(), r.lastIndex(), r.term(4)]).toEqual([1, 5, 3]);
    expect(r.nodeState().state).toEqual({ term: 3, vote: 2, commit: 1 });
  });

  test("term() of the last index is answered from memory", () => {
    const db = dbWith(5, 3);
    const r = new LogReader(db, K);
    const before = db.termReads;
    for (let i = 0; i < 10; i++) r.term(5);
    expect(db.termReads).toBe(before);
  });

  test("term() beyond the last index throws UnavailableError", () => {
    const r = new LogReader(dbWith(5), K);
    expect(() => r.term(6)).toThrow(UnavailableError);
  });

  test("entries() below firstIndex throws CompactedError and beyond lastIndex UnavailableError", () => {
    const db = dbWith(10);
    db.saveUpdates([up({ snapshot: snap(6, 1) })]);
    db.compact(K, 4);
    const r = new LogReader(db, K);
    expect(r.firstIndex()).toBe(5);
    expect(() => r.entries(4, 6, 1 << 20)).toThrow(CompactedError);
    expect(() => r.entries(5, 12, 1 << 20)).toThrow(UnavailableError);
    expect(r.entries(5, 11, 1 << 20).map((e) => e.index)).toEqual([5, 6, 7, 8, 9, 10]);
  });

  test("append after a persisted overwrite moves lastIndex back and term follows", () => {
    const db = dbWith(10);
    const r = new LogReader(db, K);
    const overwrite = ents(6, 7, 2);
    db.saveUpdates([up({ entries: overwrite })]);
    r.append(overwrite);
    expect([r.lastIndex(), r.term(7), r.term(6), r.term(5)]).toEqual([7, 2, 2, 1]);
    expect(() => r.term(8)).toThrow(UnavailableError);
  });

  test("append leaving a gap is refused", () => {
    const r = new LogReader(dbWith(3), K);
    expect(() => r.append(ents(5, 5, 1))).toThrow(/do not fit the log 1..3/);
  });

  test("applySnapshot restarts the range right after the snapshot", () => {
    const db = dbWith(3);
    const r = new LogReader(db, K);
    const meta = snap(20, 4);
    db.saveUpdates([up({ snapshot: meta })]);
    r.applySnapshot(meta);
    expect([r.firstIndex(), r.lastIndex(), r.term(20)]).toEqual([21, 20, 4]);
    expect(() => r.term(19)).toThrow(CompactedError);
    expect(r.snapshot()?.index).toBe(20);
    expect(r.nodeState().membership.addresses).toEqual([{ replicaId: 2, address: "h1:7001" }]);
  });

  test("createSnapshot keeps the range and compact keeps the term at the compacted index", () => {
    const db = dbWith(10, 2);
    const r = new LogReader(db, K);
    const meta = snap(8, 2);
    db.saveUpdates([up({ snapshot: meta })]);
    r.createSnapshot(meta);
    expect([r.firstIndex(), r.lastIndex()]).toEqual([1, 10]);
    r.compact(5);
    db.compact(K, 5);
    const before = db.termReads;
    expect([r.firstIndex(), r.term(5), r.term(8)]).toEqual([6, 2, 2]);
    expect(db.termReads).toBe(before);
    expect(() => r.term(4)).toThrow(CompactedError);
  });

  test("compact above the snapshot index is refused", () => {
    const r = new LogReader(dbWith(10), K);
    expect(() => r.compact(3)).toThrow(/above the snapshot index 0/);
  });

  test("a reader rebuilt after a restart agrees with the one kept current", () => {
    const db: LogDB = dbWith(10);
    const live = new LogReader(db, K);
    const meta = snap(20, 3);
    db.saveUpdates([
      up({ snapshot: meta, entries: ents(21, 25, 3), state: { term: 3, vote: 1, commit: 22 } }),
    ]);
    live.applySnapshot(meta);
    live.append(ents(21, 25, 3));
    live.setState({ term: 3, vote: 1, commit: 22 });
    const rebuilt = new LogReader(db, K);
    for (const r of [live, rebuilt]) {
      expect([r.firstIndex(), r.lastIndex(), r.term(20), r.term(23)]).toEqual([21, 25, 3, 3]);
      expect(r.nodeState().state).toEqual({ term: 3, vote: 1, commit: 22 });
    }
  });
});
