import { CompactedError, type LogStorage, UnavailableError } from "../raft/storage.ts";
import {
  type Entry,
  emptyMembership,
  type Membership,
  type SnapshotMeta,
  type State,
} from "../raft/types.ts";
import { copySnapshotMeta } from "./codec.ts";
import { LogDBArgumentError } from "./errors.ts";
import type { LogDB, ReplicaKey, ReplicaLogState } from "./types.ts";

/**
 * One replica's log as the Raft core reads it (LogStorage), over a LogDB. The range, the
 * marker before the first entry and the last entry's term are cached in memory, so the
 * frequent term(lastIndex) and term(firstIndex - 1) never reach SQLite. The engine keeps it
 * current after each persisted Update with the mutators; they do not write the LogDB.
 * @example const reader = new LogReader(logdb, { shardId: 1, replicaId: 1 });
 */
export class LogReader implements LogStorage {
  private first: number;
  private last: number;
  private lastTerm: number;
  /** Index just before the first stored entry, with its term when known (−1 when not). */
  private markerIndex: number;
  private markerTerm: number;
  private snap: SnapshotMeta | null;
  private state: State;

  /** `logState`: what db.readLogState(key) just returned, when the caller has it (saves the reads). */
  constructor(
    private readonly db: LogDB,
    private readonly key: ReplicaKey,
    logState?: ReplicaLogState,
  ) {
    const ls = logState ?? db.readLogState(key);
    this.first = ls.firstIndex;
    this.last = ls.lastIndex;
    this.snap = ls.snapshot;
    this.state = ls.state;
    this.markerIndex = this.first - 1;
    this.markerTerm =
      this.markerIndex === 0 ? 0 : this.markerIndex === ls.snapshot?.index ? ls.snapshot.term : -1;
    this.lastTerm = this.readLastTerm();
  }

  private readLastTerm(): number {
    if (this.last === this.markerIndex && this.markerTerm >= 0) return this.markerTerm;
    if (this.snap !== null && this.last === this.snap.index) return this.snap.term;
    const t = this.db.term(this.key, this.last);
    if (t === undefined) {
      throw new Error(
        `log of shard ${this.key.shardId} replica ${this.key.replicaId} has no term for its last index ${this.last}`,
      );
    }
    return t;
  }

  nodeState(): { state: State; membership: Membership } {
    return { state: { ...this.state }, membership: this.snap?.membership ?? emptyMembership() };
  }

  /** The hard state last persisted (or handed to the log writer in order), without a copy. */
  hardState(): Readonly<State> {
    return this.state;
  }

  firstIndex(): number {
    return this.first;
  }

  lastIndex(): number {
    return this.last;
  }

  term(index: number): number {
    if (index === this.last) return this.lastTerm;
    if (index === this.markerIndex && this.markerTerm >= 0) return this.markerTerm;
    if (this.snap !== null && index === this.snap.index) return this.snap.term;
    if (index < this.first) throw new CompactedError(index, this.first);
    if (index > this.last) throw new UnavailableError(index, this.last);
    const t = this.db.term(this.key, index);
    if (t === undefined) {
      throw new Error(
        `log database lost entry ${index} of shard ${this.key.shardId} replica ${this.key.replicaId}`,
      );
    }
    return t;
  }

  entries(low: number, high: number, maxSizeBytes: number): Entry[] {
    if (low < this.first) throw new CompactedError(low, this.first);
    if (high > this.last + 1) throw new UnavailableError(high - 1, this.last);
    if (low >= high) return [];
    const out = this.db.entries(this.key, low, high, maxSizeBytes);
    if (out.length === 0 || (out[0] as Entry).index !== low) {
      throw new Error(
        `log database returned no entry at ${low} of shard ${this.key.shardId} replica ${this.key.replicaId} (range ${this.first}..${this.last})`,
      );
    }
    return out;
  }

  snapshot(): SnapshotMeta | null {
    return this.snap;
  }

  /** After saveUpdates persisted entries: extends the range or overwrites a suffix of it. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const head = entries[0] as Entry;
    const tail = entries[entries.length - 1] as Entry;
    if (
      head.index <= this.markerIndex ||
      head.index > this.last + 1 ||
      (this.snap !== null && head.index <= this.snap.index)
    ) {
      throw new LogDBArgumentError(
        `append: entries from ${head.index} do not fit the log ${this.first}..${this.last} of shard ${this.key.shardId} replica ${this.key.replicaId}`,
      );
    }
    this.last = tail.index;
    this.lastTerm = tail.term;
  }

  /** After saveUpdates persisted a hard state. */
  setState(state: State): void {
    this.state = { term: state.term, vote: state.vote, commit: state.commit };
  }

  /** After saveUpdates persisted a received snapshot: the log restarts right after it. */
  applySnapshot(meta: SnapshotMeta): void {
    this.snap = copySnapshotMeta(meta);
    this.first = meta.index + 1;
    this.last = meta.index;
    this.markerIndex = meta.index;
    this.markerTerm = meta.term;
    this.lastTerm = meta.term;
  }

  /** After saveUpdates persisted a snapshot this replica took: the range stays. */
  createSnapshot(meta: SnapshotMeta): void {
    if (meta.index > this.last) {
      throw new LogDBArgumentError(
        `createSnapshot: index ${meta.index} is beyond the last entry ${this.last}`,
      );
    }
    this.snap = copySnapshotMeta(meta);
    if (meta.index === this.markerIndex) this.markerTerm = meta.term;
  }

  /** Before/with LogDB.compact(index): entries ≤ index are gone; the term at index is kept. */
  compact(index: number): void {
    if (index < this.first) return;
    if (this.snap === null || index > this.snap.index) {
      throw new LogDBArgumentError(
        `compact: index ${index} is above the snapshot index ${this.snap?.index ?? 0}`,
      );
    }
    this.markerTerm = this.term(index);
    this.markerIndex = index;
    this.first = index + 1;
    if (this.last < index) {
      this.last = index;
      this.lastTerm = this.markerTerm;
    }
  }
}
