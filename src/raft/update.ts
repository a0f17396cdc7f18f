import type { Entry, Message, SnapshotMeta, State } from "./types.ts";

/** A 128-bit read context: low is random non-zero, high is a tick horizon for garbage collection. */
export interface ReadCtx {
  low: number;
  high: number;
}

/** A read that may be served once the local applied index reaches `index`. */
export interface ReadyToRead {
  index: number;
  ctx: ReadCtx;
}

export interface LeaderUpdate {
  /** 0 when the replica knows no leader. */
  leaderId: number;
  term: number;
}

/**
 * What one replica asks its host to do, produced by `Peer.getUpdate()`.
 *
 * The durability contract, in the order the engine must keep it:
 * 1. `fastMessages` (a leader's Replicate and Heartbeat messages, and a HeartbeatResp in a
 *    term already durable) may leave at once, before anything of this Update is persisted:
 *    a leader may write its log in parallel with its followers (Raft thesis §10.2.1)
 *    because it counts its own match only from what it persisted (`commitUpdate`), and a
 *    heartbeat or its answer promises nothing the disk does not already hold. While an
 *    Update is at the writer, `Peer.takeFastMessages` lets these leave too.
 * 2. `entriesToSave`, `state` and `snapshot` are persisted (one fsync for every replica
 *    of the NodeHost).
 * 3. Only then may `messages` leave: they promise state (a granted vote, an append
 *    acknowledgement, a heartbeat answer confirming a term) that must survive a crash.
 * 4. `committedEntries` are applied to the state machine and `readyToReads` answered
 *    once applied has reached their index. When `snapshot` is set it is recovered into
 *    the state machine before any committed entry after it is applied.
 * 5. `commitUpdate(update)` hands the Update back: entries become stable, the applied
 *    cursor advances, consumed reads and messages are cleared.
 */
export interface Update {
  shardId: number;
  replicaId: number;
  /** Sendable before persistence (Peer.isFast: a leader's Replicate and Heartbeat, a HeartbeatResp in a durable term). */
  fastMessages: Message[];
  /** Entries to append (they may overwrite a suffix of the stored log). */
  entriesToSave: Entry[];
  /** Changed hard state, or null when unchanged since the last Update. */
  state: State | null;
  /** A snapshot received from the leader, to persist and recover; null otherwise. */
  snapshot: SnapshotMeta | null;
  /** Sendable only after this Update is persisted. */
  messages: Message[];
  /** Committed entries to apply, in index order. */
  committedEntries: Entry[];
  /** True when more committed entries wait than this Update carried. */
  moreCommittedEntries: boolean;
  readyToReads: ReadyToRead[];
  /** Proposals the core refused (no leader, transfer in progress, rate limited…). */
  droppedEntries: Entry[];
  /** Read requests the core refused (no leader, no current-term commit, witness…). */
  droppedReadIndexes: ReadCtx[];
  leaderUpdate: LeaderUpdate | null;
  /** Bookkeeping the core needs back in commitUpdate(); the host does not interpret it. */
  commit: UpdateCommit;
}

export interface UpdateCommit {
  /** Highest index handed out for applying (processed). */
  processed: number;
  lastApplied: number;
  stableLogIndex: number;
  stableLogTerm: number;
  stableSnapshotIndex: number;
  readyToReadCount: number;
}
