/**
 * What the SQLite log database's per-replica tables held when it opened, read in one scan of
 * each small table (hard states, snapshot points, bootstrap records, tombstones), so that a
 * replica's start asks a Map instead of running a statement for each (10,000 replicas starting
 * ran ~6 statements each). Only valid until something of the replica is written: every journal
 * op handed to the writer marks the fields it may change as written (markWritten), and a
 * written field is read from the overlay and the tables again, as before. A field never
 * written since open is what the tables still hold: nothing else writes them.
 */
import type { Database } from "bun:sqlite";
import type { State } from "../raft/types.ts";
import { type JournalOp, OpKind } from "./journal.ts";
import type { Tombstone } from "./types.ts";

type Field = "state" | "snapshot" | "bootstrap" | "tombstone";

export interface SnapshotAtOpen {
  index: number;
  term: number;
  /** SnapshotMeta encoded (codec.ts). */
  meta: Uint8Array;
}

const keyOf = (shardId: number, replicaId: number) => `${shardId}:${replicaId}`;

export class TablesAtOpen {
  private readonly state = new Map<string, State>();
  private readonly snapshot = new Map<string, SnapshotAtOpen>();
  private readonly bootstrap = new Map<string, string>();
  private readonly tombstone = new Map<string, Tombstone>();
  private readonly written: Record<Field, Set<string>> = {
    state: new Set(),
    snapshot: new Set(),
    bootstrap: new Set(),
    tombstone: new Set(),
  };
  /** The entries table was empty at open: a replica has no stored entry until one is written. */
  readonly noEntries: boolean;

  constructor(db: Database) {
    for (const r of db.query("SELECT shard, replica, term, vote, commit_index FROM state").values()) {
      this.state.set(keyOf(Number(r[0]), Number(r[1])), {
        term: Number(r[2]),
        vote: Number(r[3]),
        commit: Number(r[4]),
      });
    }
    for (const r of db.query("SELECT shard, replica, idx, term, meta FROM snapshots").values()) {
      this.snapshot.set(keyOf(Number(r[0]), Number(r[1])), {
        index: Number(r[2]),
        term: Number(r[3]),
        meta: r[4] as Uint8Array,
      });
    }
    for (const r of db.query("SELECT shard, replica, record FROM bootstrap").values()) {
      this.bootstrap.set(keyOf(Number(r[0]), Number(r[1])), String(r[2]));
    }
    for (const r of db.query("SELECT shard, replica, removed_at_ms, reason FROM tombstones").values()) {
      this.tombstone.set(keyOf(Number(r[0]), Number(r[1])), {
        removedAtMs: Number(r[2]),
        reason: String(r[3]),
      });
    }
    this.noEntries = db.query("SELECT 1 FROM entries LIMIT 1").values().length === 0;
  }

  /** The replica's hard state at open (null: none); undefined when written since (read the tables). */
  stateOf(k: string): State | null | undefined {
    if (this.written.state.has(k)) return undefined;
    return this.state.get(k) ?? null;
  }

  snapshotOf(k: string): SnapshotAtOpen | null | undefined {
    if (this.written.snapshot.has(k)) return undefined;
    return this.snapshot.get(k) ?? null;
  }

  bootstrapOf(k: string): string | null | undefined {
    if (this.written.bootstrap.has(k)) return undefined;
    return this.bootstrap.get(k) ?? null;
  }

  tombstoneOf(k: string): Tombstone | null | undefined {
    if (this.written.tombstone.has(k)) return undefined;
    return this.tombstone.get(k) ?? null;
  }

  /** Op was handed to the writer: the fields it may change are the tables' (and the overlay's) from now on. */
  markWritten(op: JournalOp): void {
    const k = keyOf(op.shard, op.replica);
    const mark = (f: Field) => {
      this.written[f].add(k);
      if (f === "state") this.state.delete(k);
      else if (f === "snapshot") this.snapshot.delete(k);
      else if (f === "bootstrap") this.bootstrap.delete(k);
      else this.tombstone.delete(k);
    };
    switch (op.kind) {
      case OpKind.update:
        if (op.state !== null) mark("state");
        if (op.snapshot !== null) mark("snapshot");
        break;
      case OpKind.bootstrap:
        mark("bootstrap");
        break;
      case OpKind.compact:
        break;
      default:
        // remove, import: every record of the replica (and the tombstone, to be safe).
        mark("state");
        mark("snapshot");
        mark("bootstrap");
        mark("tombstone");
    }
  }
}
