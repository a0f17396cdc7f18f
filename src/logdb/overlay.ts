/**
 * What the SQLite log database's engine thread has handed to the writer and the per-replica
 * tables do not hold yet (docs/durability.md, "The journal"): entries, hard states, snapshot
 * metadata, bootstrap records and tombstones, each stamped with the journal record (seq) that
 * wrote it. Reads look here first and fall back to the tables; when the writer reports that
 * it moved the journal up to seq S into the tables, dropThrough(S) forgets what they now hold.
 *
 * Invariant (per replica): the pending entries are one contiguous run from `first`, their seqs
 * never decrease along it (an append adds newer ones at the end, an overwrite replaces a suffix
 * with newer ones), and every index of the replica's stored range below `first` is held,
 * current, by the entries table. So dropping a prefix of seq ≤ S keeps the invariant.
 */
import type { Entry, SnapshotMeta, State } from "../raft/types.ts";
import type { Tombstone } from "./types.ts";

interface Stamped<T> {
  value: T;
  seq: number;
}

export interface PendingReplica {
  /** Index of entries[0]. */
  first: number;
  entries: Entry[];
  seqs: number[];
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
      r = { first: 0, entries: [], seqs: [] };
      this.replicas.set(k, r);
    }
    return r;
  }

  keys(): IterableIterator<string> {
    return this.replicas.keys();
  }

  /** The term of a pending entry, or undefined when index is not pending. */
  term(k: string, index: number): number | undefined {
    const r = this.replicas.get(k);
    if (r === undefined || r.entries.length === 0 || index < r.first) return undefined;
    return r.entries[index - r.first]?.term;
  }

  /** Keeps entries below `index` (an overwrite, or every entry when index ≤ first). */
  truncate(k: string, index: number): void {
    const r = this.replicas.get(k);
    if (r === undefined || r.entries.length === 0) return;
    const keep = Math.max(0, index - r.first);
    if (keep >= r.entries.length) return;
    this.entryCount -= r.entries.length - keep;
    r.entries.length = keep;
    r.seqs.length = keep;
  }

  /** Appends entries continuing the pending run (or starting one). */
  append(k: string, entries: readonly Entry[], seq: number): void {
    if (entries.length === 0) return;
    const r = this.getOrCreate(k);
    const head = (entries[0] as Entry).index;
    if (r.entries.length === 0) r.first = head;
    else if (head !== r.first + r.entries.length) {
      throw new Error(
        `internal: pending entries of ${k} end at ${r.first + r.entries.length - 1}, appended from ${head}`,
      );
    }
    for (const e of entries) {
      r.entries.push(e);
      r.seqs.push(seq);
    }
    this.entryCount += entries.length;
  }

  /** Forgets pending entries with index ≤ index (a compaction). */
  compact(k: string, index: number): void {
    const r = this.replicas.get(k);
    if (r === undefined || r.entries.length === 0 || index < r.first) return;
    const drop = Math.min(r.entries.length, index - r.first + 1);
    r.entries.splice(0, drop);
    r.seqs.splice(0, drop);
    r.first += drop;
    this.entryCount -= drop;
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
      while (drop < r.seqs.length && (r.seqs[drop] as number) <= seq) drop++;
      if (drop > 0) {
        r.entries.splice(0, drop);
        r.seqs.splice(0, drop);
        r.first += drop;
        this.entryCount -= drop;
      }
      if (r.state !== undefined && r.state.seq <= seq) r.state = undefined;
      if (r.snapshot !== undefined && r.snapshot.seq <= seq) r.snapshot = undefined;
      if (r.bootstrap !== undefined && r.bootstrap.seq <= seq) r.bootstrap = undefined;
      if (r.tombstone !== undefined && r.tombstone.seq <= seq) r.tombstone = undefined;
      if (
        r.entries.length === 0 &&
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
