import type { ReplicaUpdate } from "../../src/logdb/types.ts";
import { type Entry, emptyMembership, makeEntry } from "../../src/raft/types.ts";

/**
 * The deterministic workload of the crash test: batch g is a pure function of the model
 * after batch g − 1, so the parent can recompute what any committed prefix looks like.
 * Every batch sets each shard's commit to g, which tells which batch committed last.
 */
export const CRASH_SHARDS = 8;

export interface ShardModel {
  /** Index of terms[0]. */
  first: number;
  terms: number[];
  /** Batch that wrote each entry (it is in the entry's cmd too). */
  batches: number[];
  snapshotIndex: number;
  snapshotTerm: number;
}

export function emptyModel(): ShardModel[] {
  return Array.from({ length: CRASH_SHARDS }, () => ({
    first: 1,
    terms: [],
    batches: [],
    snapshotIndex: 0,
    snapshotTerm: 0,
  }));
}

export function lastOf(m: ShardModel): number {
  return m.first + m.terms.length - 1;
}

export function cmdOf(g: number, shard: number, index: number): Uint8Array {
  const cmd = new Uint8Array(16);
  const v = new DataView(cmd.buffer);
  v.setUint32(0, g, true);
  v.setUint32(4, shard, true);
  v.setUint32(8, index, true);
  v.setUint32(12, 0xc0ffee, true);
  return cmd;
}

/** Builds batch g and applies it to the model. */
export function nextBatch(model: ShardModel[], g: number): ReplicaUpdate[] {
  const out: ReplicaUpdate[] = [];
  model.forEach((m, i) => {
    const shard = i + 1;
    const last = lastOf(m);
    let snapshot: ReplicaUpdate["snapshot"] = null;
    let from = last + 1;
    let count = 3;
    let term = m.terms.at(-1) ?? Math.max(1, m.snapshotTerm);
    if (g % 97 === shard) {
      // A leader's snapshot beyond the log: the stored entries are replaced.
      const index = last + 10;
      snapshot = {
        shardId: shard,
        replicaId: 1,
        index,
        term: g,
        membership: emptyMembership(),
        filePath: "",
        fileSizeBytes: 0,
        witness: false,
        dummy: false,
        onDiskIndex: 0,
        app: "crash",
        checksum: 0,
      };
      Object.assign(m, { first: index + 1, terms: [], batches: [], snapshotIndex: index, snapshotTerm: g });
      from = index + 1;
      term = g;
    } else if ((g * 31 + shard * 17) % 11 === 0 && m.terms.length >= 4) {
      // A new leader's conflict: the last three entries are replaced by two of a newer term.
      from = last - 2;
      count = 2;
      term = g;
      m.terms.length -= 3;
      m.batches.length -= 3;
    }
    const entries: Entry[] = [];
    for (let k = 0; k < count; k++) {
      const index = from + k;
      entries.push(makeEntry({ index, term, key: index, cmd: cmdOf(g, shard, index) }));
      m.terms.push(term);
      m.batches.push(g);
    }
    out.push({ shardId: shard, replicaId: 1, entries, state: { term: g, vote: shard, commit: g }, snapshot });
  });
  return out;
}

/** The model after batches 1..g. */
export function modelAfter(g: number): ShardModel[] {
  const model = emptyModel();
  for (let b = 1; b <= g; b++) nextBatch(model, b);
  return model;
}
