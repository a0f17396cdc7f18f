import { describe, expect, test } from "bun:test";
import { LogDBIOError } from "../../src/logdb/errors.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import type { LogDB } from "../../src/logdb/types.ts";
import { ManualEnv } from "../../src/env.ts";
import { ents, IDENTITY, LIMITS, runLogDBConformance, up } from "./logdb.case.ts";

runLogDBConformance("memory", {
  open: () => new MemoryLogDB({ identity: IDENTITY, ...LIMITS }),
  reopen(db: LogDB, identity = IDENTITY): LogDB {
    db.close();
    (db as MemoryLogDB).reopen(identity);
    return db;
  },
});

const K = { shardId: 1, replicaId: 2 };

describe("MemoryLogDB faults and crashes", () => {
  test("a write fault throws LogDBIOError and applies nothing", () => {
    const db = new MemoryLogDB({ rng: new ManualEnv(1) });
    db.setWriteFault(1);
    expect(() => db.saveUpdates([up({ entries: ents(1, 2, 1) })])).toThrow(LogDBIOError);
    db.setWriteFault(0);
    expect(db.readLogState(K).lastIndex).toBe(0);
  });

  test("a read fault throws LogDBIOError from reads only", () => {
    const db = new MemoryLogDB({ rng: new ManualEnv(1) });
    db.setReadFault(1);
    db.saveUpdates([up({ entries: ents(1, 2, 1) })]);
    expect(() => db.entries(K, 1, 3, 1000)).toThrow(LogDBIOError);
    expect(() => db.term(K, 1)).toThrow(LogDBIOError);
  });

  test("a fault probability of one half fails some calls and not others, reproducibly by seed", () => {
    const outcomes = (seed: number): string => {
      const db = new MemoryLogDB({ rng: new ManualEnv(seed) });
      db.setWriteFault(0.5);
      let s = "";
      for (let i = 1; i <= 40; i++) {
        try {
          db.saveUpdates([{ shardId: i, replicaId: 1, entries: ents(1, 1, 1), state: null, snapshot: null }]);
          s += "1";
        } catch {
          s += "0";
        }
      }
      return s;
    };
    expect(outcomes(3)).toBe(outcomes(3));
    expect(outcomes(3)).toContain("0");
    expect(outcomes(3)).toContain("1");
  });

  test("injecting a fault without an rng is refused", () => {
    expect(() => new MemoryLogDB().setWriteFault(0.1)).toThrow(/pass an rng/);
    expect(() => new MemoryLogDB({ rng: new ManualEnv(1) }).setReadFault(2)).toThrow(/in \[0, 1\]/);
  });

  test("crash() reopens a closed database with everything that was saved", () => {
    const db = new MemoryLogDB();
    db.saveUpdates([up({ entries: ents(1, 3, 1) })]);
    db.close();
    db.crash();
    expect(db.readLogState(K).lastIndex).toBe(3);
  });

  test("afterSave sees each durable batch; what it throws reaches the caller with the batch kept", () => {
    const db = new MemoryLogDB();
    const seen: number[] = [];
    db.afterSave = (updates) => {
      seen.push(updates[0]!.entries.length);
      throw new Error("power lost right after the fsync");
    };
    expect(() => db.saveUpdates([up({ entries: ents(1, 3, 1) })])).toThrow(
      "power lost right after the fsync",
    );
    expect(seen).toEqual([3]);
    db.crash();
    expect(db.readLogState(K).lastIndex).toBe(3);
  });

  test("afterSave is not called for a batch that failed", () => {
    const db = new MemoryLogDB({ rng: new ManualEnv(1) });
    let calls = 0;
    db.afterSave = () => {
      calls++;
    };
    db.setWriteFault(1);
    expect(() => db.saveUpdates([up({ entries: ents(1, 2, 1) })])).toThrow(LogDBIOError);
    expect(calls).toBe(0);
  });

  test("a clone is independent of the original", () => {
    const db = new MemoryLogDB();
    db.saveUpdates([up({ entries: ents(1, 3, 1) })]);
    const copy = db.clone();
    db.saveUpdates([up({ entries: ents(2, 5, 2) })]);
    expect(copy.readLogState(K).lastIndex).toBe(3);
    expect(copy.term(K, 2)).toBe(1);
    expect(db.term(K, 2)).toBe(2);
  });

  test("a batch naming one replica twice applies both updates in order", () => {
    const db = new MemoryLogDB();
    db.saveUpdates([up({ entries: ents(1, 3, 1) }), up({ entries: ents(3, 4, 2) })]);
    expect(db.entries(K, 1, 10, 1 << 20).map((e) => e.term)).toEqual([1, 1, 2, 2]);
  });
});
