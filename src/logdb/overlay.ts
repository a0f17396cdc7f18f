/**
 * What the SQLite log database's engine thread has handed to the writer and the per-replica
 * tables do not hold yet (docs/durability.md, "The journal"): entries, hard states, snapshot
 * metadata, bootstrap records and tombstones, each stamped with the journal record (seq) that
 * wrote it. Reads look here first and fall back to the tables; when the writer reports that
 * it moved the journal up to seq S into the tables, dropThrough(S) forgets what they now hold.
 *
 * Entries are kept as the journal record bytes that wrote them (a Run per record and replica) and
 * decoded only when read: in steady state nothing reads them (the Raft core's own log holds
 * what it has not applied), and an object per entry handed over cost the engine thread more
 * than encoding the entry (docs/performance.md, "turns").
 *
 * Invariant (per replica): the pending entries are one contiguous run from `first`, their seqs
 * never decrease along it (an append adds newer ones at the end, an overwrite replaces a suffix
 * with newer ones), and every index of the replica's stored range below `first` is held,
 * current, by the entries table. So dropping a prefix of seq ≤ S keeps the invariant.
 */
import type { Entry, SnapshotMeta, State } from "../raft/types.ts";
import { readEntries, readEntryTerm } from "./journal.ts";
import type { Tombstone } from "./types.ts";

interface Stamped<T> {
  value: T;
  seq: number;
}

/**
 * Consecutive pending entries of one replica written by one journal record: `count` entries
 * from index `from`; the record's op holds them from byte `at`, its first entry being `base`.
 */
interface Run {
  seq: number;
  bytes: Uint8Array;
  at: number;
  base: number;
  from: number;
  count: number;
}

export interface PendingReplica {
  /** Index of the first pending entry (meaningful when count > 0). */
  first: number;
  /** Pending entries. */
  count: number;
  /** The pending entries, oldest first, contiguous. */
  runs: Run[];
  /** null: removed (a removal not yet in the tables). */
  state?: Stamped<State | null>;
  snapshot?: Stamped<SnapshotMeta | null>;
  bootstrap?: Stamped<string | null>;
  tombstone?: Stamped<Tombstone>;
}

export class Overlay {
  private readonly replicas = new Map<string, PendingReplica>();
  /** Entries held (memory bound checks and tests). */
  entryCount = 0;

  get(k: string): PendingReplica | undefined {
    return this.replicas.get(k);
  }

  private getOrCreate(k: string): PendingReplica {
    let r = this.replicas.get(k);
    if (r === undefined) {
      r = { first: 0, count: 0, runs: [] };
      this.replicas.set(k, r);
    }
    return r;
  }

  keys(): IterableIterator<string> {
    return this.replicas.keys();
  }

  /** The run holding index, or undefined when index is not pending. */
  private runAt(r: PendingReplica | undefined, index: number): Run | undefined {
    if (r === undefined || r.count === 0 || index < r.first || index >= r.first + r.count) return undefined;
    const runs = r.runs;
    let lo = 0;
    let hi = runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((runs[mid] as Run).from <= index) lo = mid;
      else hi = mid - 1;
    }
    return runs[lo];
  }

  /** The term of a pending entry, or undefined when index is not pending. */
  term(k: string, index: number): number | undefined {
    const run = this.runAt(this.replicas.get(k), index);
    return run === undefined ? undefined : readEntryTerm(run.bytes, run.at, index - run.base);
  }

  /**
   * Pending entries of k in [low, high), decoded, in order, until visit returns false. Only
   * pending indexes are visited: the caller reads below `first` from the tables.
   */
  readEntries(k: string, low: number, high: number, visit: (e: Entry) => boolean): void {
    const r = this.replicas.get(k);
    if (r === undefined || r.count === 0) return;
    let go = true;
    for (const run of r.runs) {
      const end = run.from + run.count;
      if (end <= low) continue;
      if (run.from >= high || !go) return;
      const from = Math.max(low, run.from);
      const count = Math.min(high, end) - from;
      readEntries(run.bytes, run.at, run.base, from - run.base, count, (e) => {
        go = visit(e);
        return go;
      });
    }
  }

  /** Keeps entries below `index` (an overwrite, or every entry when index ≤ first). */
  truncate(k: string, index: number): void {
    const r = this.replicas.get(k);
    if (r === undefined || r.count === 0) return;
    const keep = Math.max(0, index - r.first);
    if (keep >= r.count) return;
    this.entryCount -= r.count - keep;
    r.count = keep;
    const runs = r.runs;
    while (runs.length > 0 && (runs[runs.length - 1] as Run).from >= index) runs.pop();
    const last = runs[runs.length - 1];
    if (last !== undefined && last.from + last.count > index) last.count = index - last.from;
  }

  /**
   * Appends `count` entries from index `from`, continuing the pending run (or starting one):
   * record seq's op holds them from byte `at` (encodeRecord's entriesAt).
   */
  append(k: string, from: number, count: number, seq: number, bytes: Uint8Array, at: number): void {
    if (count === 0) return;
    const r = this.getOrCreate(k);
    if (r.count === 0) r.first = from;
    else if (from !== r.first + r.count) {
      throw new Error(
        `internal: pending entries of ${k} end at ${r.first + r.count - 1}, appended from ${from}`,
      );
    }
    r.runs.push({ seq, bytes, at, base: from, from, count });
    r.count += count;
    this.entryCount += count;
  }

  /** Forgets pending entries with index ≤ index (a compaction). */
  compact(k: string, index: number): void {
    const r = this.replicas.get(k);
    if (r === undefined || r.count === 0 || index < r.first) return;
    this.dropFront(r, Math.min(r.count, index - r.first + 1));
  }

  /** Drops the first n pending entries of r. */
  private dropFront(r: PendingReplica, n: number): void {
    r.first += n;
    r.count -= n;
    this.entryCount -= n;
    const runs = r.runs;
    let gone = 0;
    while (gone < runs.length && (runs[gone] as Run).from + (runs[gone] as Run).count <= r.first) gone++;
    if (gone > 0) runs.splice(0, gone);
    const head = runs[0];
    if (head !== undefined && head.from < r.first) {
      head.count -= r.first - head.from;
      head.from = r.first;
    }
  }

  setState(k: string, value: State | null, seq: number): void {
    this.getOrCreate(k).state = { value, seq };
  }

  setSnapshot(k: string, value: SnapshotMeta | null, seq: number): void {
    this.getOrCreate(k).snapshot = { value, seq };
  }

  setBootstrap(k: string, value: string | null, seq: number): void {
    this.getOrCreate(k).bootstrap = { value, seq };
  }

  setTombstone(k: string, value: Tombstone, seq: number): void {
    this.getOrCreate(k).tombstone = { value, seq };
  }

  /** Every record of the replica is void until a newer one (a removal or an import). */
  clear(k: string, seq: number): void {
    this.truncate(k, 0);
    this.setState(k, null, seq);
    this.setSnapshot(k, null, seq);
    this.setBootstrap(k, null, seq);
  }

  /** The tables now hold every record up to seq: forget what those records wrote. */
  dropThrough(seq: number): void {
    for (const [k, r] of this.replicas) {
      let drop = 0;
      for (const run of r.runs) {
        if (run.seq > seq) break;
        drop += run.count;
      }
      if (drop > 0) this.dropFront(r, drop);
      if (r.state !== undefined && r.state.seq <= seq) r.state = undefined;
      if (r.snapshot !== undefined && r.snapshot.seq <= seq) r.snapshot = undefined;
      if (r.bootstrap !== undefined && r.bootstrap.seq <= seq) r.bootstrap = undefined;
      if (r.tombstone !== undefined && r.tombstone.seq <= seq) r.tombstone = undefined;
      if (
        r.count === 0 &&
        r.state === undefined &&
        r.snapshot === undefined &&
        r.bootstrap === undefined &&
        r.tombstone === undefined
      ) {
        this.replicas.delete(k);
      }
    }
  }
}
