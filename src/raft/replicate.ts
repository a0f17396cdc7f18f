import type { Raft } from "./raft.ts";
import type { Remote } from "./remote.ts";
import { CompactedError } from "./storage.ts";
import {
  type Entry,
  EntryType,
  entrySizeBytes,
  MessageType,
  makeEntry,
  makeMessage,
  type SnapshotMeta,
} from "./types.ts";
import type { ReadCtx } from "./update.ts";

/**
 * The leader's outgoing replication: Replicate batches within the follower's flow-control
 * window, snapshots when the entries are compacted, heartbeats, and the commit rule.
 */

/** Raft §5.4.2: commit the quorum-th highest match only when its entry is of this term. */
export function tryCommit(r: Raft): boolean {
  const matches: number[] = [];
  for (const x of r.remotes.values()) matches.push(x.match);
  for (const x of r.witnesses.values()) matches.push(x.match);
  if (matches.length === 0) return false;
  matches.sort((a, b) => b - a);
  const q = matches[r.quorum() - 1]!;
  if (q > r.log.committed && (r.log.termOrNone(q) === r.term || r.config.plantedCommitAnyTerm)) {
    r.log.commitTo(q);
    return true;
  }
  return false;
}

/**
 * Sends the next batch (at most maxEntryBytesPerMessage, at least one entry) to a follower
 * that is not paused; an empty one only when allowEmpty (it carries the commit index, or
 * probes at next − 1). Returns true when a message left.
 */
export function sendReplicate(r: Raft, to: number, remote: Remote, allowEmpty: boolean): boolean {
  if (remote.isPaused()) return false;
  const prevIndex = remote.next - 1;
  let prevTerm: number;
  let entries: Entry[];
  try {
    prevTerm = r.log.term(prevIndex);
    entries = r.log.entries(remote.next, r.log.lastIndex() + 1, r.config.maxEntryBytesPerMessage);
  } catch (e) {
    if (e instanceof CompactedError) return sendSnapshot(r, to, remote);
    throw e;
  }
  if (entries.length === 0 && !allowEmpty) return false;
  let sizeBytes = 0;
  for (const e of entries) sizeBytes += entrySizeBytes(e);
  if (r.witnesses.has(to)) entries = entries.map(toWitnessEntry);
  r.send(
    makeMessage({
      type: MessageType.Replicate,
      to,
      logIndex: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: r.log.committed,
    }),
  );
  remote.sent(prevIndex + entries.length, entries.length, sizeBytes);
  remote.replicateSent(prevIndex + entries.length);
  return true;
}

/**
 * The leader's commit index moved: only followers with entries waiting get a Replicate (it
 * carries the new commit index). The others learn it lazily, from their next Replicate or
 * heartbeat (Raft §5.3), within two heartbeat intervals — not from an empty Replicate each,
 * and its answer, per commit (issue #16: that broadcast was half the messages of a write at
 * 48 shards). While a config change is in flight the commit still goes to everyone at once:
 * a replica being removed learns its removal before the leader applies it and stops sending
 * to it, and every member moves to the new membership as soon as it can. docs/architecture.md,
 * "The commit index travels lazily".
 */
export function commitAdvanced(r: Raft): void {
  const eager = r.pendingConfigChange;
  r.forEachPeer((id, remote) => sendReplicate(r, id, remote, eager));
}

function sendSnapshot(r: Raft, to: number, remote: Remote): boolean {
  if (!remote.active) return false; // never heard from it this round: do not ship a snapshot blind
  const snap = r.log.snapshot();
  if (snap === null) throw new Error(`replica ${to} needs compacted entries but there is no snapshot`);
  const sent = r.witnesses.has(to) ? toWitnessSnapshot(snap) : snap;
  r.send(makeMessage({ type: MessageType.InstallSnapshot, to, snapshot: sent }));
  remote.becomeSnapshot(snap.index);
  return true;
}

/**
 * A heartbeat round without a read to confirm. Under steady replication the plain heartbeat
 * to a follower is skipped when it repeats what the Replicate stream already did
 * (Remote.heartbeatRedundant); an idle, paused, probing or silent follower gets one every
 * round. Only when the election timeout leaves room: two heartbeat intervals may then pass
 * between two messages to a follower, so the timeout must be at least four of them.
 */
export function broadcastPlainHeartbeat(r: Raft): void {
  const skip = r.config.electionRtt >= MIN_ELECTION_HEARTBEATS_TO_SKIP * r.config.heartbeatRtt;
  r.forEachPeer((id, remote) => {
    if (skip && remote.heartbeatRedundant()) return;
    sendHeartbeat(r, id, remote, null);
  });
}

/** electionRtt ÷ heartbeatRtt from which a redundant plain heartbeat is skipped. */
export const MIN_ELECTION_HEARTBEATS_TO_SKIP = 4;

/** A read-confirmation round: voters get the ctx, non-voting replicas a plain heartbeat. */
export function broadcastHeartbeatWithCtx(r: Raft, ctx: ReadCtx): void {
  r.forEachPeer((id, remote) => sendHeartbeat(r, id, remote, r.nonVotings.has(id) ? null : ctx));
}

/** A heartbeat commits no further than the follower is known to match. */
export function sendHeartbeat(r: Raft, to: number, remote: Remote, ctx: ReadCtx | null): void {
  remote.heartbeatRedundant(); // a heartbeat of any kind ends the follower's round
  const commit = Math.min(remote.match, r.log.committed);
  r.send(
    makeMessage({ type: MessageType.Heartbeat, to, commit, hint: ctx?.low ?? 0, hintHigh: ctx?.high ?? 0 }),
  );
}

/** A witness keeps no payload: entries become metadata (index, term), config changes stay whole. */
function toWitnessEntry(e: Entry): Entry {
  if (e.type === EntryType.ConfigChange) return e;
  return makeEntry({ term: e.term, index: e.index, type: EntryType.Metadata });
}

/** A witness gets the snapshot's metadata and membership only, flagged, with no file. */
function toWitnessSnapshot(s: SnapshotMeta): SnapshotMeta {
  return { ...s, filePath: "", fileSizeBytes: 0, witness: true, dummy: false };
}
