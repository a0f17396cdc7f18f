import { describe, expect, test } from "bun:test";
import { encodeRecord, OpKind } from "../../src/logdb/journal.ts";
import { Overlay } from "../../src/logdb/overlay.ts";
import type { Entry } from "../../src/raft/types.ts";
import { ents } from "./logdb.case.ts";

const K = "1:2";

/** Appends entries [from, to] of term as journal record seq would (encoded, kept as bytes). */
function append(o: Overlay, seq: number, from: number, to: number, term: number): Entry[] {
  const entries = ents(from, to, term);
  const record = encodeRecord(
    [{ kind: OpKind.update, shard: 1, replica: 2, state: null, snapshot: null, truncateFrom: 0, entries }],
    true,
  );
  o.append(K, from, entries.length, seq, record.bytes, record.entriesAt[0]!);
  return entries;
}

function read(o: Overlay, low: number, high: number): Entry[] {
  const out: Entry[] = [];
  o.readEntries(K, low, high, (e) => out.push(e) > 0);
  return out;
}

describe("overlay: pending entries kept as record bytes", () => {
  test("reads across records decode what was appended; only pending indexes are visited", () => {
    const o = new Overlay();
    const a = append(o, 1, 5, 7, 1);
    const b = append(o, 2, 8, 8, 2);
    const c = append(o, 3, 9, 12, 2);
    const all = [...a, ...b, ...c];
    expect(o.entryCount).toBe(8);
    expect(o.get(K)?.first).toBe(5);
    expect(read(o, 5, 13)).toEqual(all);
    expect(read(o, 1, 100)).toEqual(all);
    expect(read(o, 7, 10)).toEqual(all.slice(2, 5));
    expect(read(o, 13, 20)).toEqual([]);
    for (const e of all) expect(o.term(K, e.index)).toBe(e.term);
    expect(o.term(K, 4)).toBeUndefined();
    expect(o.term(K, 13)).toBeUndefined();
  });

  test("a read stops where the visitor says", () => {
    const o = new Overlay();
    const a = append(o, 1, 1, 3, 1);
    append(o, 2, 4, 6, 1);
    const out: Entry[] = [];
    o.readEntries(K, 2, 7, (e) => {
      out.push(e);
      return out.length < 2;
    });
    expect(out).toEqual(a.slice(1, 3));
  });

  test("an overwrite cuts inside a record; the new entries follow", () => {
    const o = new Overlay();
    const a = append(o, 1, 1, 4, 1);
    append(o, 2, 5, 8, 1);
    o.truncate(K, 3);
    expect(o.entryCount).toBe(2);
    expect(o.term(K, 3)).toBeUndefined();
    const b = append(o, 3, 3, 5, 2);
    expect(read(o, 1, 10)).toEqual([...a.slice(0, 2), ...b]);
    expect(() => append(o, 4, 7, 7, 2)).toThrow("appended from 7");
    o.truncate(K, 0);
    expect(o.entryCount).toBe(0);
    expect(read(o, 1, 10)).toEqual([]);
  });

  test("a compaction inside a record keeps the rest readable; dropThrough forgets whole records", () => {
    const o = new Overlay();
    append(o, 1, 1, 4, 1);
    const b = append(o, 2, 5, 8, 2);
    const c = append(o, 3, 9, 10, 3);
    o.compact(K, 6);
    expect(o.get(K)?.first).toBe(7);
    expect(o.entryCount).toBe(4);
    expect(read(o, 1, 11)).toEqual([...b.slice(2), ...c]);
    expect(o.term(K, 7)).toBe(2);
    expect(o.term(K, 6)).toBeUndefined();
    o.dropThrough(2);
    expect(o.get(K)?.first).toBe(9);
    expect(read(o, 1, 11)).toEqual(c);
    o.dropThrough(3);
    expect(o.entryCount).toBe(0);
    expect(o.get(K)).toBeUndefined();
  });
});
