import { describe, expect, test } from "bun:test";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { EntryType, makeEntry } from "../../src/raft/types.ts";
import { type AppliedRecord, commandDigest, fnv1a, Oracles, SimViolation } from "./oracles.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const hashOf = (s: string) => fnv1a(bytes(s)).toString(16);
const key = { shardId: 1, replicaId: 1 };

function dbWith(
  entries: { term: number; cmd: string; clientId?: number; seriesId?: number }[],
  commit: number,
) {
  const db = new MemoryLogDB();
  db.saveUpdates([
    {
      ...key,
      entries: entries.map((e, i) =>
        makeEntry({
          index: i + 1,
          term: e.term,
          cmd: bytes(e.cmd),
          clientId: e.clientId ?? 0,
          seriesId: e.seriesId ?? 0,
        }),
      ),
      state: { term: entries.at(-1)?.term ?? 0, vote: 0, commit },
      snapshot: null,
    },
  ]);
  return db;
}

function violation(fn: () => void): SimViolation {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimViolation) return e;
    throw e;
  }
  throw new Error("no violation");
}

/** A log of entries 1..n whose types are given (config change or application), commit at commit. */
function dbWithTypes(types: EntryType[], commit: number) {
  const db = new MemoryLogDB();
  db.saveUpdates([
    {
      ...key,
      entries: types.map((type, i) => makeEntry({ index: i + 1, term: 1, type, cmd: bytes(`${i}`) })),
      state: { term: 1, vote: 0, commit },
      snapshot: null,
    },
  ]);
  return db;
}

describe("restart oracle", () => {
  const CC = EntryType.ConfigChange;
  const APP = EntryType.Application;

  test("two config changes on disk above the durable commit index are a restart violation", () => {
    const db = dbWithTypes([APP, CC, APP, CC, APP], 1);
    const v = violation(() => new Oracles().checkRestartable(1, db, 1, 1));
    expect(v.oracle).toBe("restart");
    expect(v.message).toContain("2 config changes on disk above its durable commit index 1");
  });

  test("one config change above the commit index, or two with the first committed, is fine", () => {
    expect(() => new Oracles().checkRestartable(1, dbWithTypes([APP, CC, APP], 1), 1, 1)).not.toThrow();
    expect(() => new Oracles().checkRestartable(1, dbWithTypes([APP, CC, APP, CC], 2), 1, 1)).not.toThrow();
  });
});

describe("oracles", () => {
  test("two leaders named for one term of a shard is a leader violation", () => {
    const o = new Oracles();
    o.onLeader(1, 1, 1, 5);
    o.onLeader(1, 2, 1, 5);
    expect(violation(() => o.onLeader(1, 3, 3, 5)).oracle).toBe("leader");
  });

  test("the same term on two shards may have different leaders", () => {
    const o = new Oracles();
    o.onLeader(1, 1, 1, 5);
    expect(() => o.onLeader(2, 2, 2, 5)).not.toThrow();
  });

  test("two replicas reported leader for one term of a shard is a role violation", () => {
    const o = new Oracles();
    o.onRole(1, 1, "leader", 5, 0);
    o.onRole(1, 1, "none", 5, 10);
    o.onRole(1, 1, "leader", 5, 20); // the same replica again in its term: fine
    o.onRole(2, 2, "leader", 5, 20); // another shard: fine
    expect(violation(() => o.onRole(1, 2, "leader", 5, 30)).oracle).toBe("role");
  });

  test("a replica reporting a lower term than before is a role violation, whatever the role", () => {
    const o = new Oracles();
    o.onRole(1, 3, "follower", 7, 0);
    o.onRole(1, 3, "none", 7, 10);
    expect(violation(() => o.onRole(1, 3, "follower", 6, 20)).oracle).toBe("role");
  });

  test("overlapping leaders of different terms are counted with the longest overlap, not a violation", () => {
    const o = new Oracles();
    o.onRole(1, 1, "leader", 5, 0);
    o.onRole(1, 2, "leader", 6, 100);
    o.onRole(1, 1, "none", 5, 250);
    expect(o.roleOverlaps).toBe(1);
    expect(o.roleOverlapMsMax).toBe(150);
  });

  test("a committed entry that differs between replicas is a committed violation", () => {
    const o = new Oracles();
    o.checkCommitted(
      1,
      dbWith(
        [
          { term: 1, cmd: "a" },
          { term: 1, cmd: "b" },
        ],
        2,
      ),
      1,
      1,
    );
    const other = dbWith(
      [
        { term: 1, cmd: "a" },
        { term: 2, cmd: "x" },
      ],
      2,
    );
    expect(violation(() => o.checkCommitted(2, other, 1, 1)).oracle).toBe("committed");
  });

  test("entries above the durable commit index are not compared", () => {
    const o = new Oracles();
    o.checkCommitted(
      1,
      dbWith(
        [
          { term: 1, cmd: "a" },
          { term: 1, cmd: "b" },
        ],
        1,
      ),
      1,
      1,
    );
    o.checkCommitted(
      2,
      dbWith(
        [
          { term: 1, cmd: "a" },
          { term: 2, cmd: "x" },
        ],
        1,
      ),
      1,
      1,
    );
    expect(o.entriesChecked).toBe(2);
  });

  test("different state hashes at one applied index are a hash violation", () => {
    const o = new Oracles();
    o.onStateHash(1, 7, "aa", "replica 1");
    o.onStateHash(1, 8, "bb", "replica 1");
    expect(violation(() => o.onStateHash(1, 7, "cc", "replica 2")).oracle).toBe("hash");
  });

  test("an acknowledged write that is not the committed entry at its index is an acked violation", () => {
    const o = new Oracles();
    o.checkCommitted(1, dbWith([{ term: 1, cmd: "a" }], 1), 1, 1);
    expect(violation(() => o.onAcked(1, 1, commandDigest(0, 0, bytes("b")), "put b")).oracle).toBe("acked");
  });

  test("an acknowledged write not yet committed anywhere waits for a later check", () => {
    const o = new Oracles();
    o.onAcked(1, 3, commandDigest(0, 0, bytes("c")), "put c");
    expect(o.verifyAllAcked(false)).toBe(0);
  });

  test("a session proposal applied twice by one state machine is a session violation", () => {
    const o = new Oracles();
    const db = dbWith(
      [
        { term: 1, cmd: "a", clientId: 9, seriesId: 1 },
        { term: 1, cmd: "a", clientId: 9, seriesId: 1 },
      ],
      2,
    );
    o.checkCommitted(1, db, 1, 1);
    const rec: AppliedRecord = {
      shardId: 1,
      replicaId: 1,
      host: 1,
      pending: [1, 2].map((index) => ({ index, cmdHash: hashOf("a") })),
      lastApplied: 2,
      seen: new Set(),
      closed: false,
    };
    expect(violation(() => o.checkApplied(rec)).oracle).toBe("session");
  });

  test("no-op session proposals may repeat", () => {
    const o = new Oracles();
    o.checkCommitted(
      1,
      dbWith(
        [
          { term: 1, cmd: "a" },
          { term: 1, cmd: "a" },
        ],
        2,
      ),
      1,
      1,
    );
    const rec: AppliedRecord = {
      shardId: 1,
      replicaId: 1,
      host: 1,
      pending: [1, 2].map((index) => ({ index, cmdHash: hashOf("a") })),
      lastApplied: 2,
      seen: new Set(),
      closed: false,
    };
    o.checkApplied(rec);
    expect(rec.pending).toEqual([]);
  });

  const fresh = (): AppliedRecord => ({
    shardId: 1,
    replicaId: 1,
    host: 1,
    pending: [],
    lastApplied: 0,
    seen: new Set(),
    closed: false,
  });

  test("a state machine handed a command other than the committed one is an applied violation", () => {
    const o = new Oracles();
    o.checkCommitted(
      1,
      dbWith(
        [
          { term: 1, cmd: "a" },
          { term: 1, cmd: "b" },
        ],
        2,
      ),
      1,
      1,
    );
    const rec = fresh();
    o.onApply(rec, 1, bytes("a"));
    o.onApply(rec, 2, bytes("c"));
    const v = violation(() => o.checkApplied(rec));
    expect(v.oracle).toBe("applied");
    expect(v.message).toContain("index 2");
  });

  test("an index applied again, or out of order, is an applied violation at once", () => {
    const o = new Oracles();
    const rec = fresh();
    o.onApply(rec, 1, bytes("a"));
    o.onApply(rec, 3, bytes("b"));
    expect(violation(() => o.onApply(rec, 3, bytes("b"))).message).toContain("applied index 3 after 3");
    expect(violation(() => o.onApply(rec, 2, bytes("b"))).oracle).toBe("applied");
  });

  test("commands applied before the LogDB shows them committed stay pending, then match", () => {
    const o = new Oracles();
    const rec = fresh();
    o.onApply(rec, 1, bytes("a"));
    o.checkApplied(rec);
    expect(rec.pending.length).toBe(1);
    o.checkCommitted(1, dbWith([{ term: 1, cmd: "a" }], 1), 1, 1);
    o.checkApplied(rec);
    expect(rec.pending).toEqual([]);
  });
});
