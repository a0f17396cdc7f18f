/**
 * The writer's account of the journal rows not yet moved into the per-replica tables, and the
 * choice of what one move takes (docs/durability.md, "The journal"). A move takes whole
 * replicas — every pending op of each, oldest replica first — until it holds at least a
 * budget of entries: each replica's table pages are written once for all its pending entries
 * (what saves the bytes), while one move stays short (what keeps a latency spike out of the
 * batches behind it). A row leaves the journal, in the same transaction, once every replica
 * it names has been moved. Pure bookkeeping: no SQLite here.
 */
import type { JournalOp } from "./journal.ts";

interface PendingRecord {
  seq: number;
  sizeBytes: number;
  /** Replicas of this record whose ops have not been moved yet. */
  replicasLeft: number;
}

interface PendingReplica {
  ops: JournalOp[];
  /** Distinct records holding ops of this replica, oldest first. */
  records: PendingRecord[];
  entryCount: number;
}

export interface JournalMove {
  /** Ops to apply to the tables, replica after replica, each replica's in journal order. */
  ops: JournalOp[];
  entryCount: number;
  /** Journal rows with seq ≤ this leave the journal in the same transaction (0: none). */
  deleteThrough: number;
}

const opEntries = (op: JournalOp): number =>
  op.kind === 1 ? op.entries.length + (op.stored === undefined ? 0 : op.stored.count) : 0;

export class JournalQueue {
  /** Rows still in the journal, oldest first (a prefix leaves when fully moved). */
  private records: PendingRecord[] = [];
  /** Replicas with ops not yet moved, in the order of their oldest such op. */
  private readonly replicas = new Map<string, PendingReplica>();
  /** Entries not yet moved. */
  entryCount = 0;
  /** Bytes of the rows still in the journal. */
  sizeBytes = 0;

  get recordCount(): number {
    return this.records.length;
  }

  /** A row the writer appended (its ops decoded), newest last. */
  add(seq: number, sizeBytes: number, ops: readonly JournalOp[]): void {
    const record: PendingRecord = { seq, sizeBytes, replicasLeft: 0 };
    this.records.push(record);
    this.sizeBytes += sizeBytes;
    for (const op of ops) {
      const k = `${op.shard}:${op.replica}`;
      let r = this.replicas.get(k);
      if (r === undefined) {
        r = { ops: [], records: [], entryCount: 0 };
        this.replicas.set(k, r);
      }
      r.ops.push(op);
      const n = opEntries(op);
      r.entryCount += n;
      this.entryCount += n;
      if (r.records[r.records.length - 1] !== record) {
        r.records.push(record);
        record.replicasLeft++;
      }
    }
  }

  /**
   * Takes whole replicas, oldest first, until the move holds at least budgetEntries entries
   * (every pending replica for Infinity), and the rows it frees. The queue counts them as moved:
   * the caller applies the move in one transaction, and a failure there stops the writer.
   */
  take(budgetEntries: number): JournalMove {
    const ops: JournalOp[] = [];
    let entryCount = 0;
    for (const [k, r] of this.replicas) {
      if (entryCount >= budgetEntries && ops.length > 0) break;
      for (const op of r.ops) ops.push(op);
      entryCount += r.entryCount;
      for (const record of r.records) record.replicasLeft--;
      this.replicas.delete(k);
    }
    this.entryCount -= entryCount;
    let free = 0;
    while (free < this.records.length && (this.records[free] as PendingRecord).replicasLeft === 0) free++;
    let deleteThrough = 0;
    if (free > 0) {
      deleteThrough = (this.records[free - 1] as PendingRecord).seq;
      for (let i = 0; i < free; i++) this.sizeBytes -= (this.records[i] as PendingRecord).sizeBytes;
      this.records = this.records.slice(free);
    }
    return { ops, entryCount, deleteThrough };
  }
}
