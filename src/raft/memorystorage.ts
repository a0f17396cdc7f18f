import { CompactedError, type LogStorage, UnavailableError } from "./storage.ts";
import {
  EMPTY_STATE,
  type Entry,
  emptyMembership,
  entrySizeBytes,
  type Membership,
  type SnapshotMeta,
  type State,
} from "./types.ts";

/**
 * An in-memory LogStorage for tests and the simulator. It holds exactly what a host
 * persisted: the mutators mirror what the engine does after saving an Update, so a
 * replica restarted over it sees only durable state (a crash loses everything else).
 * @example const s = new MemoryStorage(); s.append(update.entriesToSave); s.setState(update.state!);
 */
export class MemoryStorage implements LogStorage {
  /** entries[0] is the marker: index = snapshot/compaction index, term = its term. */
  private ents: Entry[] = [{ term: 0, index: 0 } as Entry];
  private state: State = { ...EMPTY_STATE };
  private snap: SnapshotMeta | null = null;

  nodeState(): { state: State; membership: Membership } {
    return { state: { ...this.state }, membership: this.snap?.membership ?? emptyMembership() };
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[this.ents.length - 1]!.index;
  }

  term(index: number): number {
    const marker = this.ents[0]!.index;
    if (index < marker) throw new CompactedError(index, marker + 1);
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    return this.ents[index - marker]!.term;
  }

  entries(low: number, high: number, maxSizeBytes: number): Entry[] {
    const marker = this.ents[0]!.index;
    if (low <= marker) throw new CompactedError(low, marker + 1);
    if (high > this.lastIndex() + 1) throw new UnavailableError(high - 1, this.lastIndex());
    const out: Entry[] = [];
    let sizeBytes = 0;
    for (let i = low; i < high; i++) {
      const e = this.ents[i - marker]!;
      sizeBytes += entrySizeBytes(e);
      if (out.length > 0 && sizeBytes > maxSizeBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): SnapshotMeta | null {
    return this.snap;
  }

  /** Persists entries, overwriting any suffix they conflict with. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const marker = this.ents[0]!.index;
    if (first <= marker || first > this.lastIndex() + 1) {
      throw new Error(
        `MemoryStorage.append: entry ${first} does not fit the log ${marker + 1}..${this.lastIndex()}`,
      );
    }
    this.ents.length = first - marker;
    for (const e of entries) this.ents.push(e);
  }

  setState(state: State): void {
    this.state = { term: state.term, vote: state.vote, commit: state.commit };
  }

  /** A received snapshot was persisted: the log restarts right after it. */
  applySnapshot(meta: SnapshotMeta): void {
    this.snap = meta;
    this.ents = [{ term: meta.term, index: meta.index } as Entry];
  }

  /** The replica took a snapshot of its own state machine at meta.index (the log stays). */
  createSnapshot(meta: SnapshotMeta): void {
    if (meta.index > this.lastIndex()) {
      throw new Error(
        `MemoryStorage.createSnapshot: index ${meta.index} is beyond the last entry ${this.lastIndex()}`,
      );
    }
    this.snap = meta;
  }

  /** Removes entries ≤ index (index must not pass the snapshot); the term at index is kept. */
  compact(index: number): void {
    const marker = this.ents[0]!.index;
    if (index <= marker) return;
    if (this.snap === null || index > this.snap.index) {
      throw new Error(
        `MemoryStorage.compact: index ${index} is above the snapshot index ${this.snap?.index ?? 0}`,
      );
    }
    this.ents = this.ents.slice(index - marker);
    this.ents[0] = { term: this.ents[0]!.term, index } as Entry;
  }
}
