import { CompactedError, type LogStorage, UnavailableError } from "./storage.ts";
import { type Entry, entrySizeBytes, type SnapshotMeta } from "./types.ts";

/**
 * One replica's entry log: an in-memory tail of entries not yet both persisted and applied
 * (plus a received, not yet persisted snapshot) over the persisted LogStorage. Indexes at or
 * above `marker` are answered by the tail only; below it by storage (or compacted when an
 * in-memory snapshot hides storage). Positions:
 *   processed ≤ committed ≤ lastIndex(); savedTo = highest index known persisted and equal.
 */
export class EntryLog {
  /** Index of tail[0] (= lastIndex() + 1 when the tail is empty). */
  private marker: number;
  private tail: Entry[] = [];
  /** Received snapshot not yet persisted (hides storage entirely). */
  private pendingSnapshot: SnapshotMeta | null = null;
  /** Highest index persisted that still matches the log. */
  savedTo: number;
  committed: number;
  /** Highest index handed out for applying. */
  processed: number;
  /** Bytes (entrySizeBytes) of the tail, for the rate limiter. */
  tailSizeBytes = 0;

  constructor(
    readonly storage: LogStorage,
    opts: { committed: number; processed: number },
  ) {
    const last = storage.lastIndex();
    this.marker = last + 1;
    this.savedTo = last;
    this.committed = opts.committed;
    this.processed = Math.max(opts.processed, storage.firstIndex() - 1);
    if (this.committed > last) {
      throw new Error(`persisted commit ${this.committed} is beyond the last persisted entry ${last}`);
    }
    if (this.processed > this.committed) this.committed = this.processed;
  }

  firstIndex(): number {
    if (this.pendingSnapshot !== null) return this.pendingSnapshot.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.marker + this.tail.length - 1;
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Term of the entry at index; throws CompactedError / UnavailableError like LogStorage. */
  term(index: number): number {
    if (index >= this.marker) {
      const e = this.tail[index - this.marker];
      if (e === undefined) throw new UnavailableError(index, this.lastIndex());
      return e.term;
    }
    const snap = this.pendingSnapshot;
    if (snap !== null) {
      if (index === snap.index) return snap.term;
      throw new CompactedError(index, snap.index + 1);
    }
    return this.storage.term(index);
  }

  /** Term at index, or −1 when the entry is compacted or missing. */
  termOrNone(index: number): number {
    try {
      return this.term(index);
    } catch (e) {
      if (e instanceof CompactedError || e instanceof UnavailableError) return -1;
      throw e;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.termOrNone(index) === term;
  }

  /** Raft §5.4.1: a log with (lastTerm, lastIndex) is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [low, high), at least one when low < high, else as many as fit maxSizeBytes. */
  entries(low: number, high: number, maxSizeBytes: number): Entry[] {
    if (low >= high) return [];
    if (low < this.firstIndex()) throw new CompactedError(low, this.firstIndex());
    if (high > this.lastIndex() + 1) throw new UnavailableError(high - 1, this.lastIndex());
    let out: Entry[] = [];
    let sizeBytes = 0;
    if (low < this.marker) {
      out = this.storage.entries(low, Math.min(high, this.marker), maxSizeBytes);
      for (const e of out) sizeBytes += entrySizeBytes(e);
      if (out.length < Math.min(high, this.marker) - low) return out;
    }
    for (let i = Math.max(low, this.marker); i < high; i++) {
      const e = this.tail[i - this.marker]!;
      sizeBytes += entrySizeBytes(e);
      if (out.length > 0 && sizeBytes > maxSizeBytes) break;
      out.push(e);
    }
    return out;
  }

  /** The snapshot a leader sends to a follower that needs compacted entries. */
  snapshot(): SnapshotMeta | null {
    return this.pendingSnapshot ?? this.storage.snapshot();
  }

  unpersistedSnapshot(): SnapshotMeta | null {
    return this.pendingSnapshot;
  }

  /** Leader append: entries continue the log. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    if (entries[0]!.index !== this.lastIndex() + 1) {
      throw new Error(
        `append: entry ${entries[0]!.index} does not follow the last index ${this.lastIndex()}`,
      );
    }
    this.merge(entries);
  }

  /** Index of the first of entries whose term differs from the log's entry there (0: none does). */
  firstConflict(entries: Entry[]): number {
    for (const e of entries) {
      if (e.index > this.lastIndex()) return 0;
      if (this.termOrNone(e.index) !== e.term) return e.index;
    }
    return 0;
  }

  /**
   * Follower append after a matching (prevIndex, prevTerm): skips entries already present,
   * truncates at the first conflict and appends the rest. Returns the last new index.
   */
  tryAppend(prevIndex: number, entries: Entry[]): number {
    let i = 0;
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.index > this.lastIndex() || this.termOrNone(e.index) !== e.term) break;
    }
    if (i < entries.length) {
      const first = entries[i]!.index;
      if (first <= this.committed) {
        throw new Error(`entry ${first} conflicts with the committed prefix (commit ${this.committed})`);
      }
      this.merge(entries.slice(i));
    }
    return prevIndex + entries.length;
  }

  private merge(entries: Entry[]): void {
    const first = entries[0]!.index;
    if (first > this.lastIndex() + 1) {
      throw new Error(`merge: entry ${first} leaves a hole after the last index ${this.lastIndex()}`);
    }
    if (first < this.marker) {
      // Replacing entries that only storage holds: the tail restarts at first.
      for (const e of this.tail) this.tailSizeBytes -= entrySizeBytes(e);
      this.tail = [];
      this.marker = first;
    } else {
      const keep = first - this.marker;
      for (let j = keep; j < this.tail.length; j++) this.tailSizeBytes -= entrySizeBytes(this.tail[j]!);
      this.tail.length = keep;
    }
    for (const e of entries) {
      this.tail.push(e);
      this.tailSizeBytes += entrySizeBytes(e);
    }
    this.savedTo = Math.min(this.savedTo, first - 1);
  }

  /** Entries to persist: the tail above savedTo. */
  entriesToSave(): Entry[] {
    const from = Math.max(this.savedTo + 1, this.marker);
    if (from > this.lastIndex()) return [];
    return this.tail.slice(from - this.marker);
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex()) {
      throw new Error(`commitTo(${index}) is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = index;
    return true;
  }

  hasEntriesToApply(): boolean {
    return this.committed > this.processed;
  }

  /** Committed entries after processed, at least one, then up to maxSizeBytes. */
  entriesToApply(maxSizeBytes: number): Entry[] {
    if (this.committed <= this.processed) return [];
    return this.entries(this.processed + 1, this.committed + 1, maxSizeBytes);
  }

  /** The host persisted entries up to (index, term): they are stable unless overwritten since. */
  stableTo(index: number, term: number): void {
    if (index > this.savedTo && this.termOrNone(index) === term) this.savedTo = index;
  }

  /** The host persisted the received snapshot; storage now answers for it. */
  snapshotPersisted(index: number): void {
    if (this.pendingSnapshot !== null && this.pendingSnapshot.index === index) this.pendingSnapshot = null;
  }

  /** Entries ≤ index (persisted and applied) leave the tail; storage answers for them. */
  trimTo(index: number): void {
    const upTo = Math.min(index, this.savedTo, this.lastIndex());
    if (upTo < this.marker || this.pendingSnapshot !== null) return;
    const n = upTo - this.marker + 1;
    for (let j = 0; j < n; j++) this.tailSizeBytes -= entrySizeBytes(this.tail[j]!);
    this.tail = this.tail.slice(n);
    this.marker = upTo + 1;
  }

  /** Replaces the whole log by a received snapshot (to be persisted by the next Update). */
  restore(snap: SnapshotMeta): void {
    this.pendingSnapshot = snap;
    this.tail = [];
    this.tailSizeBytes = 0;
    this.marker = snap.index + 1;
    this.savedTo = snap.index;
    this.committed = snap.index;
    this.processed = snap.index;
  }

  /**
   * Fast back-off (etcd's findConflictByTerm): the largest index ≤ index whose term is ≤ term,
   * so a probe skips every entry of a term the other side cannot match.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > 0; i--) {
      const t = this.termOrNone(i);
      if (t < 0 || t <= term) return i;
    }
    return 0;
  }

  /** Count of ConfigChange entries in (committed, last], scanned in bounded batches. */
  countConfigChangesAfterCommit(typeConfigChange: number): number {
    let count = 0;
    const batchBytes = 8 * 1024 * 1024;
    for (let lo = this.committed + 1; lo <= this.lastIndex(); ) {
      const ents = this.entries(lo, this.lastIndex() + 1, batchBytes);
      for (const e of ents) if (e.type === typeConfigChange) count++;
      lo += ents.length;
    }
    return count;
  }
}
