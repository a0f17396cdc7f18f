/**
 * The per-replica tables of the SQLite log database ("home": entries keyed by shard, replica
 * and index; hard state, snapshot metadata, bootstrap record, tombstone keyed by replica) and
 * the checkpoint that moves journal records into them (docs/durability.md, "The journal").
 * The writer Worker checkpoints while running; the engine thread checkpoints what a previous
 * process left in the journal when it opens the database. No code runs at import.
 */
import type { Database, Statement } from "bun:sqlite";
import type { Entry } from "../raft/types.ts";
import { decodeRecord, forEachStoredEntry, type JournalOp, OpKind } from "./journal.ts";
import type { JournalMove } from "./journal-queue.ts";

const WHERE = "WHERE shard = ? AND replica = ?";

export const HOME_WHERE = WHERE;

/** Tables every replica's records live in (removeReplica and importSnapshot clear them). */
const REPLICA_TABLES = ["entries", "state", "snapshots", "bootstrap"] as const;

export function prepareHome(db: Database) {
  const q = (sql: string): Statement => db.prepare(sql);
  return {
    // OR REPLACE: every op is a blind write (its effect does not depend on what the tables
    // hold), so replaying journal rows whose ops a move already applied changes nothing.
    insertEntry: q(
      "INSERT OR REPLACE INTO entries (shard, replica, idx, term, type, ekey, client, series, responded, cmd, proposer, epoch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
    ),
    deleteFrom: q(`DELETE FROM entries ${WHERE} AND idx >= ?`),
    deleteTo: q(`DELETE FROM entries ${WHERE} AND idx <= ?`),
    deleteEntries: q(`DELETE FROM entries ${WHERE}`),
    upsertState: q(
      "INSERT OR REPLACE INTO state (shard, replica, term, vote, commit_index) VALUES (?,?,?,?,?)",
    ),
    upsertSnapshot: q(
      "INSERT OR REPLACE INTO snapshots (shard, replica, idx, term, meta) VALUES (?,?,?,?,?)",
    ),
    upsertBootstrap: q("INSERT OR REPLACE INTO bootstrap (shard, replica, record) VALUES (?,?,?)"),
    upsertTombstone: q(
      "INSERT OR REPLACE INTO tombstones (shard, replica, removed_at_ms, reason) VALUES (?,?,?,?)",
    ),
    removeAll: REPLICA_TABLES.map((t) => q(`DELETE FROM ${t} ${WHERE}`)),
    journalRows: q("SELECT seq, record FROM journal ORDER BY seq"),
    insertJournal: q("INSERT INTO journal (seq, record) VALUES (?, ?)"),
    deleteJournalThrough: q("DELETE FROM journal WHERE seq <= ?"),
  };
}

export type HomeStatements = ReturnType<typeof prepareHome>;

/** Applies ops in order to the per-replica tables (inside the caller's transaction). */
export function applyOps(s: HomeStatements, ops: readonly JournalOp[]): void {
  for (const op of ops) {
    const { shard, replica } = op;
    switch (op.kind) {
      case OpKind.update: {
        if (op.state !== null)
          s.upsertState.run(shard, replica, op.state.term, op.state.vote, op.state.commit);
        if (op.snapshot !== null) {
          if (op.snapshot.resetEntries) s.deleteEntries.run(shard, replica);
          s.upsertSnapshot.run(shard, replica, op.snapshot.index, op.snapshot.term, op.snapshot.meta);
        }
        if (op.truncateFrom > 0) s.deleteFrom.run(shard, replica, op.truncateFrom);
        const insert = s.insertEntry;
        const put = (e: Entry) =>
          insert.run(
            shard,
            replica,
            e.index,
            e.term,
            e.type,
            e.key,
            e.clientId,
            e.seriesId,
            e.respondedTo,
            e.cmd,
            e.proposerId,
            e.proposerEpoch,
          );
        for (const e of op.entries) put(e);
        if (op.stored !== undefined) forEachStoredEntry(op.stored, put);
        break;
      }
      case OpKind.bootstrap:
        s.upsertBootstrap.run(shard, replica, op.record);
        break;
      case OpKind.compact:
        s.deleteTo.run(shard, replica, op.index);
        break;
      case OpKind.remove:
        for (const st of s.removeAll) st.run(shard, replica);
        if (op.tombstone !== null)
          s.upsertTombstone.run(shard, replica, op.tombstone.removedAtMs, op.tombstone.reason);
        break;
      case OpKind.import:
        for (const st of s.removeAll) st.run(shard, replica);
        s.upsertSnapshot.run(shard, replica, op.snapshot.index, op.snapshot.term, op.snapshot.meta);
        s.upsertState.run(shard, replica, op.state.term, op.state.vote, op.state.commit);
        s.upsertBootstrap.run(shard, replica, op.bootstrap);
        break;
    }
  }
}

/**
 * Applies journal records (oldest first) to the per-replica tables and removes them from the
 * journal, in the caller's transaction: the move is all or nothing.
 * @throws JournalRecordError (journal.ts) for a damaged record.
 */
export function checkpointRecords(
  s: HomeStatements,
  records: readonly { seq: number; record: Uint8Array }[],
): void {
  if (records.length === 0) return;
  for (const r of records) applyOps(s, decodeRecord(r.record));
  s.deleteJournalThrough.run((records[records.length - 1] as { seq: number }).seq);
}

/** Applies a move the writer chose (journal-queue.ts), in the caller's transaction. */
export function applyMove(s: HomeStatements, move: JournalMove): void {
  applyOps(s, move.ops);
  if (move.deleteThrough > 0) s.deleteJournalThrough.run(move.deleteThrough);
}
