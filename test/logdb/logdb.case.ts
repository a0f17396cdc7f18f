import { describe, expect, test } from "bun:test";
import {
  BatchTooLargeError,
  EntryTooLargeError,
  LogDBArgumentError,
  LogDBClosedError,
  LogDBIdentityError,
} from "../../src/logdb/errors.ts";
import {
  LOGDB_FORMAT_VERSION,
  type LogDB,
  type NodeHostIdentity,
  type ReplicaUpdate,
} from "../../src/logdb/types.ts";
import {
  type Entry,
  ENTRY_HEADER_BYTES,
  emptyMembership,
  makeEntry,
  type SnapshotMeta,
} from "../../src/raft/types.ts";

/**
 * The LogDB conformance suite: every implementation runs it (sqlite.test.ts, memory.test.ts).
 * `open` gives a fresh database with the bounds of LIMITS;
 * `reopen` closes it and opens the same data again (optionally as another identity).
 */
export interface LogDBHarness {
  open(): LogDB;
  reopen(db: LogDB, identity?: NodeHostIdentity): LogDB;
}

export const IDENTITY: NodeHostIdentity = {
  raftAddress: "h1:7001",
  deploymentId: 7,
  formatVersion: LOGDB_FORMAT_VERSION,
};
/** 64 entries of maxEntryBytes plus one of 129 bytes fill maxBatchBytes exactly. */
export const LIMITS = { maxEntryBytes: 1024, maxBatchBytes: 64 * 1024 + ENTRY_HEADER_BYTES + 1 };
const K = { shardId: 1, replicaId: 2 };

export function ents(from: number, to: number, term: number, cmdBytes = 4): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    out.push(
      makeEntry({
        index: i,
        term,
        key: 1000 + i,
        clientId: 7,
        seriesId: i,
        respondedTo: i - 1,
        cmd: new Uint8Array(cmdBytes).fill(i % 256),
        proposerId: 3,
        proposerEpoch: 2 ** 53 - 1 - i,
      }),
    );
  }
  return out;
}

export function up(fields: Partial<ReplicaUpdate> = {}): ReplicaUpdate {
  return { shardId: K.shardId, replicaId: K.replicaId, entries: [], state: null, snapshot: null, ...fields };
}

export function snap(index: number, term: number): SnapshotMeta {
  const membership = emptyMembership();
  membership.addresses.push({ replicaId: 2, address: "h1:7001" });
  return {
    shardId: 1,
    replicaId: 2,
    index,
    term,
    membership,
    filePath: `/snap/${index}`,
    fileSizeBytes: 10,
    witness: false,
    dummy: false,
    onDiskIndex: 0,
    app: "kv",
    checksum: 99,
  };
}

const indexes = (es: Entry[]): number[] => es.map((e) => e.index);

/** saveUpdatesAsync as a promise; also checks done is not called inside the call. */
export function saveAsync(db: LogDB, updates: ReplicaUpdate[]): Promise<void> {
  let returned = false;
  return new Promise((resolve, reject) => {
    db.saveUpdatesAsync(updates, (error) => {
      if (!returned) reject(new Error("done was called inside saveUpdatesAsync"));
      else if (error === null) resolve();
      else reject(error);
    });
    returned = true;
  });
}

function runAsyncConformance(name: string, h: LogDBHarness): void {
  describe(`${name} LogDB conformance: saveUpdatesAsync`, () => {
    const withDb = (fn: (db: LogDB) => Promise<void>) => async () => {
      const db = h.open();
      try {
        await fn(db);
      } finally {
        db.close();
      }
    };

    test(
      "a batch is readable once its done is called, with every field",
      withDb(async (db) => {
        const saved = ents(1, 5, 3);
        await saveAsync(db, [up({ entries: saved, state: { term: 3, vote: 2, commit: 4 } })]);
        expect(db.entries(K, 1, 6, 1 << 20)).toEqual(saved);
        expect(db.readLogState(K)).toMatchObject({ state: { term: 3, vote: 2, commit: 4 }, lastIndex: 5 });
      }),
    );

    test(
      "batches queued without waiting are written in call order (a later overwrite wins)",
      withDb(async (db) => {
        const a = saveAsync(db, [up({ entries: ents(1, 5, 1) })]);
        const b = saveAsync(db, [up({ entries: ents(3, 4, 2) })]);
        const c = saveAsync(db, [up({ entries: ents(5, 6, 2) })]);
        const order: string[] = [];
        await Promise.all([
          a.then(() => order.push("a")),
          b.then(() => order.push("b")),
          c.then(() => order.push("c")),
        ]);
        expect(order).toEqual(["a", "b", "c"]);
        expect(db.entries(K, 1, 7, 1 << 20).map((e) => e.term)).toEqual([1, 1, 2, 2, 2, 2]);
        expect(db.readLogState(K)).toMatchObject({ firstIndex: 1, lastIndex: 6 });
      }),
    );

    test(
      "a synchronous write waits for the queued batches and builds on them",
      withDb(async (db) => {
        const a = saveAsync(db, [up({ entries: ents(1, 3, 1) })]);
        db.saveUpdates([up({ entries: ents(4, 4, 1) })]);
        expect(indexes(db.entries(K, 1, 5, 1 << 20))).toEqual([1, 2, 3, 4]);
        await a;
        db.compact(K, 0);
        expect(db.readLogState(K).lastIndex).toBe(4);
      }),
    );

    test(
      "a refused batch throws at once, queues nothing, and later batches still work",
      withDb(async (db) => {
        await saveAsync(db, [up({ entries: ents(1, 2, 1) })]);
        expect(() => db.saveUpdatesAsync([up({ entries: ents(5, 5, 1) })], () => {})).toThrow(
          LogDBArgumentError,
        );
        expect(() =>
          db.saveUpdatesAsync([up({ entries: ents(3, 3, 1, LIMITS.maxEntryBytes) })], () => {}),
        ).toThrow(EntryTooLargeError);
        await saveAsync(db, [up({ entries: ents(3, 3, 1) })]);
        expect(db.readLogState(K).lastIndex).toBe(3);
      }),
    );

    test(
      "a received snapshot in a queued batch replaces a log written by an earlier queued batch",
      withDb(async (db) => {
        const a = saveAsync(db, [up({ entries: ents(1, 5, 1) })]);
        const b = saveAsync(db, [up({ snapshot: snap(8, 2) })]);
        const c = saveAsync(db, [up({ entries: ents(9, 9, 2) })]);
        await Promise.all([a, b, c]);
        expect(db.readLogState(K)).toMatchObject({ firstIndex: 9, lastIndex: 9 });
        expect(db.term(K, 8)).toBe(2);
        expect(db.entries(K, 1, 2, 1 << 20)).toEqual([]);
      }),
    );

    test("saveBootstrapAsync: readable at once, done after the call, durable across a reopen, in order with the replica's later batch", async () => {
      let db = h.open();
      try {
        const record = (i: number) => ({
          addresses: [{ replicaId: 1, address: `h${i}:7001` }],
          join: false,
          app: "kv",
          configJson: `{"i":${i}}`,
        });
        const keys = Array.from({ length: 40 }, (_, i) => ({ shardId: i + 1, replicaId: 1 }));
        let returned = false;
        const dones = keys.map(
          (key, i) =>
            new Promise<void>((resolve, reject) => {
              db.saveBootstrapAsync(key, record(i), (error) => {
                if (!returned) reject(new Error("done was called inside saveBootstrapAsync"));
                else if (error === null) resolve();
                else reject(error);
              });
            }),
        );
        returned = true;
        expect(db.getBootstrap(keys[7]!)).toEqual(record(7));
        expect(db.listReplicas()).toHaveLength(40);
        const first = {
          ...keys[0]!,
          entries: ents(1, 2, 1),
          state: { term: 1, vote: 1, commit: 0 },
          snapshot: null,
        };
        await Promise.all([...dones, saveAsync(db, [first])]);
        db = h.reopen(db);
        for (const [i, key] of keys.entries()) expect(db.getBootstrap(key)).toEqual(record(i));
        expect(db.readLogState(keys[0]!)).toMatchObject({ lastIndex: 2, state: { term: 1, vote: 1 } });
        expect(() => db.saveBootstrapAsync({ shardId: 0, replicaId: 1 }, record(0), () => {})).toThrow(
          LogDBArgumentError,
        );
      } finally {
        db.close();
      }
    });

    test(
      "batches of many replicas in one call are one unit",
      withDb(async (db) => {
        const other = { shardId: 2, replicaId: 5 };
        await saveAsync(db, [
          up({ entries: ents(1, 2, 1) }),
          { ...up({ entries: ents(1, 1, 4) }), ...other },
        ]);
        expect(db.readLogState(K).lastIndex).toBe(2);
        expect(db.readLogState(other).lastIndex).toBe(1);
      }),
    );
  });
}

export function runLogDBConformance(name: string, h: LogDBHarness): void {
  runAsyncConformance(name, h);
  describe(`${name} LogDB conformance`, () => {
    const withDb = (fn: (db: LogDB) => void) => () => {
      const db = h.open();
      try {
        fn(db);
      } finally {
        db.close();
      }
    };

    test(
      "an unknown replica reads as an empty log starting at 1",
      withDb((db) => {
        expect(db.readLogState(K)).toEqual({
          state: { term: 0, vote: 0, commit: 0 },
          snapshot: null,
          firstIndex: 1,
          lastIndex: 0,
        });
        expect(db.entries(K, 1, 10, 1 << 20)).toEqual([]);
        expect(db.term(K, 1)).toBeUndefined();
      }),
    );

    test(
      "saved entries read back with every field",
      withDb((db) => {
        const saved = ents(1, 5, 3);
        db.saveUpdates([up({ entries: saved })]);
        expect(db.entries(K, 1, 6, 1 << 20)).toEqual(saved);
        expect(db.readLogState(K)).toMatchObject({ firstIndex: 1, lastIndex: 5 });
      }),
    );

    test(
      "hard state is saved and a null state leaves it unchanged",
      withDb((db) => {
        db.saveUpdates([up({ state: { term: 4, vote: 2, commit: 3 } })]);
        db.saveUpdates([up({ entries: ents(1, 1, 4) })]);
        expect(db.readLogState(K).state).toEqual({ term: 4, vote: 2, commit: 3 });
      }),
    );

    test(
      "one batch saves entries and states of many shards",
      withDb((db) => {
        const batch: ReplicaUpdate[] = [];
        for (let s = 1; s <= 48; s++)
          batch.push({
            shardId: s,
            replicaId: 1,
            entries: ents(1, 3, s),
            state: { term: s, vote: 1, commit: 2 },
            snapshot: null,
          });
        db.saveUpdates(batch);
        for (let s = 1; s <= 48; s++) {
          const key = { shardId: s, replicaId: 1 };
          expect(db.term(key, 3)).toBe(s);
          expect(db.readLogState(key)).toMatchObject({
            state: { term: s, vote: 1, commit: 2 },
            lastIndex: 3,
          });
        }
      }),
    );

    test(
      "entries overwriting a suffix remove the old entries from that index on",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 10, 1) })]);
        db.saveUpdates([up({ entries: ents(6, 7, 2) })]);
        expect(db.readLogState(K)).toMatchObject({ firstIndex: 1, lastIndex: 7 });
        expect(db.entries(K, 1, 20, 1 << 20).map((e) => e.term)).toEqual([1, 1, 1, 1, 1, 2, 2]);
        expect(db.term(K, 8)).toBeUndefined();
      }),
    );

    test(
      "an overwrite and an append in later batches keep the log contiguous",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 10, 1) })]);
        db.saveUpdates([up({ entries: ents(3, 3, 2) })]);
        db.saveUpdates([up({ entries: ents(4, 6, 2) })]);
        expect(indexes(db.entries(K, 1, 100, 1 << 20))).toEqual([1, 2, 3, 4, 5, 6]);
        expect(db.readLogState(K).lastIndex).toBe(6);
      }),
    );

    test(
      "entries() returns at least one entry even above maxSizeBytes",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 5, 1, 100) })]);
        expect(indexes(db.entries(K, 2, 6, 1))).toEqual([2]);
      }),
    );

    test(
      "entries() stops at maxSizeBytes, including an entry that fits exactly",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 5, 1, 100) })]);
        const one = ENTRY_HEADER_BYTES + 100;
        expect(indexes(db.entries(K, 1, 6, 3 * one))).toEqual([1, 2, 3]);
        expect(indexes(db.entries(K, 1, 6, 3 * one - 1))).toEqual([1, 2]);
      }),
    );

    test(
      "entries() answers only [low, high) and nothing when low is not stored",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 5, 1) })]);
        expect(indexes(db.entries(K, 2, 4, 1 << 20))).toEqual([2, 3]);
        expect(db.entries(K, 6, 9, 1 << 20)).toEqual([]);
        expect(db.entries(K, 3, 3, 1 << 20)).toEqual([]);
      }),
    );

    test(
      "stored entries do not alias the caller's buffers",
      withDb((db) => {
        const e = ents(1, 1, 1);
        db.saveUpdates([up({ entries: e })]);
        (e[0] as Entry).cmd.fill(0xee);
        expect((db.entries(K, 1, 2, 1 << 20)[0] as Entry).cmd).toEqual(new Uint8Array(4).fill(1));
      }),
    );

    test(
      "term() answers stored entries and the snapshot index",
      withDb((db) => {
        db.saveUpdates([up({ snapshot: snap(10, 3) })]);
        db.saveUpdates([up({ entries: ents(11, 12, 4) })]);
        expect(db.term(K, 10)).toBe(3);
        expect(db.term(K, 12)).toBe(4);
        expect(db.term(K, 9)).toBeUndefined();
        expect(db.term(K, 13)).toBeUndefined();
      }),
    );

    test(
      "a snapshot matching the stored log keeps its entries",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 10, 2) })]);
        db.saveUpdates([up({ snapshot: snap(5, 2) })]);
        const ls = db.readLogState(K);
        expect(ls).toMatchObject({ firstIndex: 1, lastIndex: 10 });
        expect(ls.snapshot).toEqual(snap(5, 2));
      }),
    );

    test(
      "a snapshot the stored log does not hold replaces every entry",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 10, 1) })]);
        db.saveUpdates([up({ snapshot: snap(8, 2) })]);
        expect(db.readLogState(K)).toMatchObject({ firstIndex: 9, lastIndex: 8 });
        expect(db.term(K, 5)).toBeUndefined();
        expect(db.term(K, 9)).toBeUndefined();
        expect(db.term(K, 8)).toBe(2);
      }),
    );

    test(
      "a snapshot and the entries after it save in one update",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 3, 1) })]);
        db.saveUpdates([
          up({ snapshot: snap(20, 3), entries: ents(21, 22, 3), state: { term: 3, vote: 0, commit: 20 } }),
        ]);
        expect(db.readLogState(K)).toMatchObject({
          firstIndex: 21,
          lastIndex: 22,
          state: { term: 3, vote: 0, commit: 20 },
        });
        expect(indexes(db.entries(K, 21, 30, 1 << 20))).toEqual([21, 22]);
      }),
    );

    test(
      "a snapshot older than the stored one is refused and nothing of the batch applies",
      withDb((db) => {
        db.saveUpdates([up({ snapshot: snap(10, 2) })]);
        const other = { shardId: 9, replicaId: 1, entries: ents(1, 1, 1), state: null, snapshot: null };
        expect(() => db.saveUpdates([other, up({ snapshot: snap(5, 2) })])).toThrow(LogDBArgumentError);
        expect(db.readLogState({ shardId: 9, replicaId: 1 }).lastIndex).toBe(0);
        expect(db.readLogState(K).snapshot?.index).toBe(10);
      }),
    );

    test(
      "compact removes entries up to the index and firstIndex follows",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 10, 1) })]);
        db.saveUpdates([up({ snapshot: snap(6, 1) })]);
        db.compact(K, 4);
        expect(db.readLogState(K)).toMatchObject({ firstIndex: 5, lastIndex: 10 });
        expect(db.term(K, 4)).toBeUndefined();
        expect(indexes(db.entries(K, 5, 11, 1 << 20))).toEqual([5, 6, 7, 8, 9, 10]);
      }),
    );

    test(
      "compacting to the snapshot index with nothing after it leaves first = snapshot + 1",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 6, 1) })]);
        db.saveUpdates([up({ snapshot: snap(6, 1) })]);
        db.compact(K, 6);
        expect(db.readLogState(K)).toMatchObject({ firstIndex: 7, lastIndex: 6 });
        expect(db.term(K, 6)).toBe(1);
      }),
    );

    test(
      "compact above the snapshot index is refused",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 10, 1) })]);
        db.saveUpdates([up({ snapshot: snap(5, 1) })]);
        expect(() => db.compact(K, 6)).toThrow(/above the snapshot index 5/);
        expect(db.readLogState(K).firstIndex).toBe(1);
      }),
    );

    test(
      "entries leaving a gap after the last stored entry are refused",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 3, 1) })]);
        expect(() => db.saveUpdates([up({ entries: ents(5, 6, 1) })])).toThrow(
          /start at 5 but the log ends at 3/,
        );
        expect(() => db.saveUpdates([up({ entries: ents(2, 2, 1) })])).not.toThrow();
      }),
    );

    test(
      "entries not contiguous and ascending are refused",
      withDb((db) => {
        const bad = [...ents(1, 2, 1), ...ents(4, 4, 1)];
        expect(() => db.saveUpdates([up({ entries: bad })])).toThrow(/entry 2 has index 4, expected 3/);
        expect(db.readLogState(K).lastIndex).toBe(0);
      }),
    );

    test(
      "entries at or below the snapshot index are refused",
      withDb((db) => {
        db.saveUpdates([up({ snapshot: snap(10, 2) })]);
        expect(() => db.saveUpdates([up({ entries: ents(10, 11, 2) })])).toThrow(
          /would overwrite the snapshot at 10/,
        );
      }),
    );

    test(
      "an entry of exactly maxEntryBytes is accepted",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 1, 1, LIMITS.maxEntryBytes - ENTRY_HEADER_BYTES) })]);
        expect(db.readLogState(K).lastIndex).toBe(1);
      }),
    );

    test(
      "an entry one byte above maxEntryBytes throws EntryTooLargeError",
      withDb((db) => {
        const e = ents(1, 1, 1, LIMITS.maxEntryBytes - ENTRY_HEADER_BYTES + 1);
        expect(() => db.saveUpdates([up({ entries: e })])).toThrow(EntryTooLargeError);
        expect(db.readLogState(K).lastIndex).toBe(0);
      }),
    );

    test(
      "a batch of exactly maxBatchBytes is accepted and one byte more throws BatchTooLargeError",
      withDb((db) => {
        const batch = (lastCmdBytes: number, term: number): ReplicaUpdate => {
          const entries = ents(1, 65, term, LIMITS.maxEntryBytes - ENTRY_HEADER_BYTES);
          (entries[64] as Entry).cmd = new Uint8Array(lastCmdBytes);
          return up({ entries });
        };
        db.saveUpdates([batch(1, 1)]);
        expect(() => db.saveUpdates([batch(2, 2)])).toThrow(BatchTooLargeError);
        expect(db.term(K, 65)).toBe(1);
      }),
    );

    test(
      "ids that are not positive integers are refused",
      withDb((db) => {
        expect(() => db.saveUpdates([{ ...up(), shardId: 0 }])).toThrow(LogDBArgumentError);
        expect(() => db.readLogState({ shardId: 1.5, replicaId: 1 })).toThrow(/positive integers/);
      }),
    );

    test(
      "a bootstrap record round-trips and is null when absent",
      withDb((db) => {
        const record = {
          addresses: [
            { replicaId: 1, address: "a:1" },
            { replicaId: 2, address: "b:2" },
          ],
          join: false,
          app: "kv",
          configJson: '{"x":1}',
        };
        expect(db.getBootstrap(K)).toBeNull();
        db.saveBootstrap(K, record);
        expect(db.getBootstrap(K)).toEqual(record);
      }),
    );

    test(
      "listReplicas lists every replica with a bootstrap, state or snapshot, sorted",
      withDb((db) => {
        db.saveBootstrap(
          { shardId: 3, replicaId: 1 },
          { addresses: [], join: true, app: "kv", configJson: "{}" },
        );
        db.saveUpdates([
          { shardId: 1, replicaId: 5, entries: [], state: { term: 1, vote: 0, commit: 0 }, snapshot: null },
        ]);
        db.saveUpdates([{ shardId: 2, replicaId: 1, entries: [], state: null, snapshot: snap(3, 1) }]);
        expect(db.listReplicas()).toEqual([
          { shardId: 1, replicaId: 5 },
          { shardId: 2, replicaId: 1 },
          { shardId: 3, replicaId: 1 },
        ]);
      }),
    );

    test(
      "removeReplica removes every record of that replica only",
      withDb((db) => {
        const other = { shardId: 1, replicaId: 3 };
        for (const key of [K, other]) {
          db.saveBootstrap(key, { addresses: [], join: true, app: "kv", configJson: "{}" });
          db.saveUpdates([
            { ...key, entries: ents(1, 3, 1), state: { term: 1, vote: 0, commit: 1 }, snapshot: null },
          ]);
          db.saveUpdates([{ ...key, entries: [], state: null, snapshot: snap(2, 1) }]);
        }
        db.removeReplica(K);
        expect(db.readLogState(K)).toEqual({
          state: { term: 0, vote: 0, commit: 0 },
          snapshot: null,
          firstIndex: 1,
          lastIndex: 0,
        });
        expect(db.getBootstrap(K)).toBeNull();
        expect(db.listReplicas()).toEqual([other]);
        expect(db.readLogState(other).lastIndex).toBe(3);
        db.saveUpdates([up({ entries: ents(1, 1, 5) })]);
        expect(db.term(K, 1)).toBe(5);
      }),
    );

    const restored = (index: number, term: number) => ({
      bootstrap: {
        addresses: [{ replicaId: 2, address: "h9:7001" }],
        join: false,
        app: "kv",
        configJson: "{}",
      },
      state: { term, vote: 0, commit: index },
      snapshot: snap(index, term),
    });

    test(
      "importSnapshot replaces every record of the replica: the log restarts after the snapshot",
      withDb((db) => {
        const other = { shardId: 1, replicaId: 3 };
        for (const key of [K, other]) {
          db.saveBootstrap(key, { addresses: [], join: true, app: "kv", configJson: "{}" });
          db.saveUpdates([
            { ...key, entries: ents(1, 30, 4), state: { term: 4, vote: 3, commit: 30 }, snapshot: null },
          ]);
          db.saveUpdates([{ ...key, entries: [], state: null, snapshot: snap(20, 4) }]);
        }
        db.importSnapshot(K, restored(12, 2));
        expect(db.readLogState(K)).toEqual({
          state: { term: 2, vote: 0, commit: 12 },
          snapshot: snap(12, 2),
          firstIndex: 13,
          lastIndex: 12,
        });
        expect(db.term(K, 12)).toBe(2);
        expect(db.entries(K, 13, 14, 1 << 20)).toEqual([]);
        expect(db.getBootstrap(K)?.addresses).toEqual([{ replicaId: 2, address: "h9:7001" }]);
        expect(db.logUsage(K)).toEqual({ entryCount: 0, sizeBytes: 0 });
        expect(db.readLogState(other).lastIndex).toBe(30);
        db.saveUpdates([up({ entries: ents(13, 14, 3), state: { term: 3, vote: 2, commit: 14 } })]);
        expect(db.readLogState(K).lastIndex).toBe(14);
      }),
    );

    test(
      "importSnapshot refuses a hard state that does not commit the snapshot, and applies nothing",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 5, 1), state: { term: 1, vote: 2, commit: 5 } })]);
        const bad = { ...restored(12, 2), state: { term: 2, vote: 0, commit: 11 } };
        expect(() => db.importSnapshot(K, bad)).toThrow(/must commit the snapshot at 12/);
        expect(() =>
          db.importSnapshot(K, { ...restored(12, 2), snapshot: { ...snap(12, 2), shardId: 4 } }),
        ).toThrow(/the snapshot is of shard 4/);
        expect(db.readLogState(K).lastIndex).toBe(5);
      }),
    );

    test("an imported snapshot is there after reopening", () => {
      let db = h.open();
      db.importSnapshot(K, restored(40, 6));
      db = h.reopen(db);
      try {
        expect(db.readLogState(K)).toMatchObject({ snapshot: snap(40, 6), firstIndex: 41, lastIndex: 40 });
        expect(db.getBootstrap(K)?.app).toBe("kv");
      } finally {
        db.close();
      }
    });

    test(
      "logUsage counts the stored entries and their entrySizeBytes, before and after compact",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 10, 1, 100), state: { term: 1, vote: 2, commit: 10 } })]);
        expect(db.logUsage(K)).toEqual({ entryCount: 10, sizeBytes: 10 * (ENTRY_HEADER_BYTES + 100) });
        db.saveUpdates([up({ snapshot: snap(8, 1) })]);
        db.compact(K, 6);
        expect(db.logUsage(K)).toEqual({ entryCount: 4, sizeBytes: 4 * (ENTRY_HEADER_BYTES + 100) });
        expect(db.logUsage({ shardId: 9, replicaId: 9 })).toEqual({ entryCount: 0, sizeBytes: 0 });
      }),
    );

    test(
      "reclaimSpace reports sizes that never grow",
      withDb((db) => {
        db.saveUpdates([up({ entries: ents(1, 50, 1, 800), state: { term: 1, vote: 2, commit: 50 } })]);
        db.saveUpdates([up({ snapshot: snap(50, 1) })]);
        db.compact(K, 50);
        const r = db.reclaimSpace();
        expect(r.sizeBytesAfter).toBeLessThanOrEqual(r.sizeBytesBefore);
        expect(db.readLogState(K).snapshot?.index).toBe(50);
      }),
    );

    test("removeReplica with a tombstone leaves it, and only it, for that replica; it survives reopening", () => {
      let db = h.open();
      db.saveUpdates([up({ entries: ents(1, 3, 1), state: { term: 1, vote: 2, commit: 3 } })]);
      expect(db.getTombstone(K)).toBeNull();
      db.removeReplica(K, { removedAtMs: 1234, reason: "removed from shard 1" });
      db.removeReplica({ shardId: 1, replicaId: 3 });
      expect(db.getTombstone({ shardId: 1, replicaId: 3 })).toBeNull();
      db = h.reopen(db);
      try {
        expect(db.getTombstone(K)).toEqual({ removedAtMs: 1234, reason: "removed from shard 1" });
        expect(db.listReplicas()).toEqual([]);
        expect(db.readLogState(K).lastIndex).toBe(0);
      } finally {
        db.close();
      }
    });

    test("a tombstone keeps its time as given, a fraction of a millisecond included", () => {
      // NodeHost stamps a removal with env.nowMs(), which is fractional on a real clock.
      let db = h.open();
      db.removeReplica(K, { removedAtMs: 45112.244127, reason: "not a member" });
      expect(db.getTombstone(K)).toEqual({ removedAtMs: 45112.244127, reason: "not a member" });
      db = h.reopen(db);
      try {
        expect(db.getTombstone(K)).toEqual({ removedAtMs: 45112.244127, reason: "not a member" });
      } finally {
        db.close();
      }
    });

    test("every call after close() throws LogDBClosedError", () => {
      const db = h.open();
      db.close();
      expect(() => db.readLogState(K)).toThrow(LogDBClosedError);
      expect(() => db.saveUpdates([])).toThrow(LogDBClosedError);
      expect(() => db.entries(K, 1, 2, 10)).toThrow(LogDBClosedError);
    });

    test("everything saved is there after reopening", () => {
      let db = h.open();
      db.saveBootstrap(K, {
        addresses: [{ replicaId: 2, address: "h1:7001" }],
        join: false,
        app: "kv",
        configJson: "{}",
      });
      db.saveUpdates([up({ entries: ents(1, 10, 1), state: { term: 1, vote: 2, commit: 8 } })]);
      db.saveUpdates([up({ snapshot: snap(8, 1) })]);
      db.compact(K, 7);
      db = h.reopen(db);
      try {
        expect(db.readLogState(K)).toEqual({
          state: { term: 1, vote: 2, commit: 8 },
          snapshot: snap(8, 1),
          firstIndex: 8,
          lastIndex: 10,
        });
        expect(db.entries(K, 8, 11, 1 << 20)).toEqual(ents(8, 10, 1));
        expect(db.getBootstrap(K)?.app).toBe("kv");
      } finally {
        db.close();
      }
    });

    test("reopening as another raft address fails naming both addresses and the fix", () => {
      const db = h.open();
      expect(() => h.reopen(db, { ...IDENTITY, raftAddress: "h2:7001" })).toThrow(
        /belongs to raft address h1:7001, not h2:7001 \(use the original --raft-address or a new --data-dir\)/,
      );
    });

    test("reopening as another deployment fails with LogDBIdentityError", () => {
      const db = h.open();
      let error: unknown;
      try {
        h.reopen(db, { ...IDENTITY, deploymentId: 8 });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(LogDBIdentityError);
      expect((error as LogDBIdentityError).kind).toBe("deploymentId");
      expect((error as Error).message).toContain("belongs to deployment 7, not 8");
    });

    test("reopening with an older build than the data's format fails saying to upgrade", () => {
      const db = h.open();
      expect(() => h.reopen(db, { ...IDENTITY, formatVersion: 0 })).toThrow(
        new RegExp(`written by a newer Longboat \\(format ${LOGDB_FORMAT_VERSION}, this build reads 0\\)`),
      );
    });
  });
}
