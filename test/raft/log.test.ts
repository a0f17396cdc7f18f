import { describe, expect, test } from "bun:test";
import { EntryLog } from "../../src/raft/log.ts";
import { MemoryStorage } from "../../src/raft/memorystorage.ts";
import { CompactedError, UnavailableError } from "../../src/raft/storage.ts";
import { type Entry, EntryType, makeEntry, type SnapshotMeta } from "../../src/raft/types.ts";

const e = (index: number, term: number, size = 0): Entry =>
  makeEntry({ index, term, cmd: new Uint8Array(size) });

function stored(terms: number[]): MemoryStorage {
  const s = new MemoryStorage();
  s.append(terms.map((t, i) => e(i + 1, t)));
  return s;
}

function meta(index: number, term: number): SnapshotMeta {
  return {
    shardId: 1,
    replicaId: 1,
    index,
    term,
    membership: null,
    filePath: "",
    fileSizeBytes: 0,
    witness: false,
    dummy: false,
    onDiskIndex: 0,
    app: "",
    checksum: 0,
  };
}

describe("entry log", () => {
  test("a log over storage starts its tail after the last stored entry", () => {
    const log = new EntryLog(stored([1, 1, 2]), { committed: 2, processed: 0 });
    expect(log.lastIndex()).toBe(3);
    expect(log.lastTerm()).toBe(2);
    expect(log.savedTo).toBe(3);
    expect(log.entriesToSave()).toHaveLength(0);
  });

  test("terms come from the tail and from storage", () => {
    const log = new EntryLog(stored([1, 1]), { committed: 0, processed: 0 });
    log.append([e(3, 2)]);
    expect(log.term(2)).toBe(1);
    expect(log.term(3)).toBe(2);
    expect(log.term(0)).toBe(0);
  });

  test("term beyond the last index is unavailable", () => {
    const log = new EntryLog(stored([1]), { committed: 0, processed: 0 });
    expect(() => log.term(5)).toThrow(UnavailableError);
    expect(log.termOrNone(5)).toBe(-1);
  });

  test("entries span storage and the tail", () => {
    const log = new EntryLog(stored([1, 1]), { committed: 0, processed: 0 });
    log.append([e(3, 2), e(4, 2)]);
    expect(log.entries(1, 5, 1 << 20).map((x) => x.index)).toEqual([1, 2, 3, 4]);
  });

  test("entries stop at the byte limit but return at least one", () => {
    const log = new EntryLog(new MemoryStorage(), { committed: 0, processed: 0 });
    log.append([e(1, 1, 500), e(2, 1, 10), e(3, 1, 10)]);
    expect(log.entries(1, 4, 100)).toHaveLength(1);
    expect(log.entries(2, 4, 300)).toHaveLength(2);
  });

  test("a leader append must continue the log", () => {
    const log = new EntryLog(stored([1]), { committed: 0, processed: 0 });
    expect(() => log.append([e(3, 1)])).toThrow(/does not follow/);
  });

  test("tryAppend skips entries already present and truncates at the first conflict", () => {
    const log = new EntryLog(new MemoryStorage(), { committed: 0, processed: 0 });
    log.append([e(1, 1), e(2, 1), e(3, 1)]);
    log.tryAppend(1, [e(2, 1), e(3, 2)]);
    expect(log.lastIndex()).toBe(3);
    expect(log.term(3)).toBe(2);
  });

  test("a conflict with a committed entry is a safety violation", () => {
    const log = new EntryLog(new MemoryStorage(), { committed: 0, processed: 0 });
    log.append([e(1, 1), e(2, 1)]);
    log.commitTo(2);
    expect(() => log.tryAppend(1, [e(2, 3)])).toThrow(/conflicts with the committed prefix/);
  });

  test("overwriting stored entries resets what is saved", () => {
    const log = new EntryLog(stored([1, 1, 1]), { committed: 1, processed: 0 });
    log.tryAppend(1, [e(2, 2)]);
    expect(log.savedTo).toBe(1);
    expect(log.entriesToSave().map((x) => x.index)).toEqual([2]);
    expect(log.lastIndex()).toBe(2);
  });

  test("committing beyond the last index is a programming error", () => {
    const log = new EntryLog(stored([1]), { committed: 0, processed: 0 });
    expect(() => log.commitTo(2)).toThrow(/beyond the last index/);
  });

  test("commitTo never moves the commit index back", () => {
    const log = new EntryLog(stored([1, 1]), { committed: 2, processed: 0 });
    expect(log.commitTo(1)).toBe(false);
    expect(log.committed).toBe(2);
  });

  test("stableTo marks entries saved only when the term still matches", () => {
    const log = new EntryLog(new MemoryStorage(), { committed: 0, processed: 0 });
    log.append([e(1, 1), e(2, 1)]);
    log.stableTo(2, 5);
    expect(log.savedTo).toBe(0);
    log.stableTo(2, 1);
    expect(log.savedTo).toBe(2);
    expect(log.entriesToSave()).toHaveLength(0);
  });

  test("entries leave the tail only once both saved and applied", () => {
    const s = new MemoryStorage();
    const log = new EntryLog(s, { committed: 0, processed: 0 });
    log.append([e(1, 1, 10), e(2, 1, 10)]);
    log.trimTo(2);
    expect(log.tailSizeBytes).toBe(276);
    s.append([e(1, 1, 10), e(2, 1, 10)]);
    log.stableTo(2, 1);
    log.trimTo(1);
    expect(log.tailSizeBytes).toBe(138);
    expect(log.term(1)).toBe(1);
  });

  test("entries to apply stop at the commit index and the byte limit", () => {
    const log = new EntryLog(new MemoryStorage(), { committed: 0, processed: 0 });
    log.append([e(1, 1), e(2, 1), e(3, 1)]);
    log.commitTo(2);
    expect(log.entriesToApply(1 << 20).map((x) => x.index)).toEqual([1, 2]);
    expect(log.entriesToApply(1)).toHaveLength(1);
  });

  test("restoring a snapshot hides storage and commits up to the snapshot", () => {
    const log = new EntryLog(stored([1, 1, 1]), { committed: 1, processed: 1 });
    log.restore(meta(10, 3));
    expect(log.firstIndex()).toBe(11);
    expect(log.lastIndex()).toBe(10);
    expect(log.term(10)).toBe(3);
    expect(() => log.term(2)).toThrow(CompactedError);
    expect(log.committed).toBe(10);
    expect(log.processed).toBe(10);
    expect(log.hasEntriesToApply()).toBe(false);
  });

  test("findConflictByTerm returns the last index whose term is at most the given term", () => {
    const log = new EntryLog(stored([1, 1, 2, 2, 4, 4]), { committed: 0, processed: 0 });
    expect(log.findConflictByTerm(6, 3)).toBe(4);
    expect(log.findConflictByTerm(6, 1)).toBe(2);
    expect(log.findConflictByTerm(6, 0)).toBe(0);
    expect(log.findConflictByTerm(9, 4)).toBe(6);
  });

  test("isUpToDate compares last term first, then last index", () => {
    const log = new EntryLog(stored([1, 2, 2]), { committed: 0, processed: 0 });
    expect(log.isUpToDate(1, 3)).toBe(true);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(2, 2)).toBe(false);
    expect(log.isUpToDate(9, 1)).toBe(false);
  });

  test("config change entries after the commit index are counted", () => {
    const log = new EntryLog(new MemoryStorage(), { committed: 0, processed: 0 });
    log.append([
      makeEntry({ index: 1, term: 1, type: EntryType.ConfigChange }),
      e(2, 1),
      makeEntry({ index: 3, term: 1, type: EntryType.ConfigChange }),
    ]);
    log.commitTo(1);
    expect(log.countConfigChangesAfterCommit(EntryType.ConfigChange)).toBe(1);
  });
});

describe("memory storage", () => {
  test("compaction keeps the term of the compaction index", () => {
    const s = stored([1, 1, 2, 2]);
    s.createSnapshot(meta(3, 2));
    s.compact(3);
    expect(s.firstIndex()).toBe(4);
    expect(s.term(3)).toBe(2);
    expect(() => s.term(2)).toThrow(CompactedError);
    expect(() => s.entries(3, 4, 100)).toThrow(CompactedError);
  });

  test("compaction beyond the snapshot is refused", () => {
    const s = stored([1, 1, 2]);
    expect(() => s.compact(2)).toThrow(/above the snapshot index/);
  });

  test("reading beyond the last entry is unavailable", () => {
    const s = stored([1]);
    expect(() => s.entries(1, 3, 100)).toThrow(UnavailableError);
  });

  test("appending overwrites a conflicting suffix and refuses holes", () => {
    const s = stored([1, 1, 1]);
    s.append([e(2, 2)]);
    expect(s.lastIndex()).toBe(2);
    expect(() => s.append([e(5, 2)])).toThrow(/does not fit/);
  });

  test("an applied snapshot restarts the log after it", () => {
    const s = stored([1, 1]);
    s.applySnapshot(meta(10, 3));
    expect(s.firstIndex()).toBe(11);
    expect(s.lastIndex()).toBe(10);
    expect(s.term(10)).toBe(3);
  });
});
