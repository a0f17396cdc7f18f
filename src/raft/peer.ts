import { type RaftConfig, Role, validateRaftConfig } from "./config.ts";
import { encodeConfigChange } from "./configchange.ts";
import { Raft } from "./raft.ts";
import type { LogStorage, Rng } from "./storage.ts";
import {
  type ConfigChange,
  ConfigChangeType,
  type Entry,
  EntryType,
  LOCAL_MESSAGE_TYPES,
  MESSAGE_TYPE_MAX,
  type Member,
  type Message,
  MessageType,
  makeEntry,
  makeMessage,
  type RequestTag,
  type SnapshotMeta,
  type State,
} from "./types.ts";
import type { ReadCtx, Update } from "./update.ts";

const MT = MessageType;

/** Peer.create or a Peer method got input that breaks its contract. */
export class PeerArgumentError extends Error {
  override readonly name = "PeerArgumentError";
}

export interface PeerStatus {
  shardId: number;
  replicaId: number;
  role: Role;
  term: number;
  vote: number;
  leaderId: number;
  commit: number;
  applied: number;
  lastIndex: number;
  quiesced: boolean;
  isTransferring: boolean;
  /** The in-memory log limit is hit: the engine should answer proposals "busy". */
  rateLimited: boolean;
}

/** The Raft facts the engine's leadership view reads (src/engine/leadership.ts). */
export interface LeadershipFacts {
  replicaId: number;
  /** The role is Leader. */
  isLeader: boolean;
  term: number;
  /** The leader this replica knows of (0: none). */
  leaderId: number;
  /** Commit index. */
  commit: number;
  /** Index of the last entry in the log (persisted or not). */
  lastIndex: number;
  /** Voting replicas (full members and witnesses) that make a quorum. */
  quorum: number;
  isVoter(replicaId: number): boolean;
}

export interface PeerCreateOptions {
  config: RaftConfig;
  storage: LogStorage;
  rng: Rng;
  /** Bootstrap members (empty on restart or join). */
  initialMembers: Member[];
  /** True only on the very first start of an initial member. */
  newNode: boolean;
  /** Index the state machine has applied (the snapshot index on restart). */
  lastApplied: number;
}

/** Responses dropped when their sender is not a known member (engine.md §1.1). */
const RESPONSE_TYPES: ReadonlySet<number> = new Set([
  MT.ReplicateResp,
  MT.RequestVoteResp,
  MT.HeartbeatResp,
  MT.ReadIndexResp,
  MT.LeaderTransfer,
  MT.RateLimit,
]);

/**
 * One replica's Raft core behind the surface the engine drives. Inputs: tick(), step() for
 * remote messages, propose(), readIndex(), proposeConfigChange(), requestLeaderTransfer(),
 * report*(). Output: getUpdate() → Update (see update.ts for the durability contract), then
 * commitUpdate(update) once the host persisted it, sent its messages and applied its entries.
 *
 * Messages, ready reads, dropped items and the leader notice move into the Update when
 * getUpdate() builds it; positions (stable index, processed index, hard state) advance only
 * in commitUpdate(), so a crash before commitUpdate loses nothing the host did not persist.
 * @example
 *   const peer = Peer.create({ config, storage, rng, initialMembers, newNode: true, lastApplied: 0 });
 *   peer.tick();
 *   if (peer.hasUpdate(true)) { const u = peer.getUpdate(true, applied); persist(u); send(u); apply(u); peer.commitUpdate(u); }
 */
export class Peer {
  /** @internal The protocol state; tests drive it directly. */
  readonly raft: Raft;
  private persisted: State;
  private reportedLeader = { leaderId: 0, term: 0 };

  private constructor(raft: Raft, persisted: State) {
    this.raft = raft;
    this.persisted = persisted;
  }

  static create(opts: PeerCreateOptions): Peer {
    const config = validateRaftConfig(opts.config);
    if (opts.storage === null || opts.storage === undefined)
      throw new PeerArgumentError("Peer.create: storage is required");
    if (!Number.isSafeInteger(opts.lastApplied) || opts.lastApplied < 0) {
      throw new PeerArgumentError(
        `Peer.create: lastApplied must be a non-negative integer, got ${opts.lastApplied}`,
      );
    }
    if (opts.newNode) checkBootstrap(config, opts.storage, opts.initialMembers);
    const raft = new Raft(config, opts.storage, opts.rng, { lastApplied: opts.lastApplied });
    const peer = new Peer(raft, opts.storage.nodeState().state);
    if (opts.newNode) peer.bootstrap(opts.initialMembers);
    return peer;
  }

  /** Synthesizes one committed AddNode entry per initial member (term 1, index 1..n). */
  private bootstrap(members: Member[]): void {
    const sorted = [...members].sort((a, b) => a.replicaId - b.replicaId);
    const entries = sorted.map((m, i) =>
      makeEntry({
        term: 1,
        index: i + 1,
        type: EntryType.ConfigChange,
        cmd: encodeConfigChange({
          configChangeId: 0,
          type: ConfigChangeType.AddNode,
          replicaId: m.replicaId,
          address: m.address,
          initialize: true,
        }),
      }),
    );
    this.raft.term = 1;
    this.raft.log.append(entries);
    this.raft.log.commitTo(entries.length);
    this.raft.addMembers(sorted);
  }

  tick(): void {
    const q = this.raft.quiesce;
    if (q.tick()) {
      for (const id of this.raft.remotes.keys()) {
        if (id !== this.raft.replicaId) this.raft.send(makeMessage({ type: MT.Quiesce, to: id }));
      }
    }
    if (q.quiesced) this.raft.quiescedTick();
    else this.raft.tick();
  }

  /**
   * n ticks, as n calls of tick(); once the replica is quiesced the rest only count, at once
   * (a replica quiesced for an hour is not stepped 72,000 times when it wakes).
   */
  ticks(n: number): void {
    const q = this.raft.quiesce;
    for (; n > 0 && !q.quiesced; n--) this.tick();
    if (n <= 0) return;
    q.quiescedTicks(n);
    this.raft.quiescedTick(n);
  }

  /**
   * Steps a message from another replica. Never throws for what the message says: one that
   * breaks the protocol (a local type, a pre-vote when preVote is off, entries that contradict
   * the committed log, a snapshot for another role…) is dropped, and the reason returned for
   * the host to log and count; null when the message was taken.
   */
  step(m: Message): string | null {
    if (LOCAL_MESSAGE_TYPES.has(m.type)) {
      return `message type ${m.type} from ${m.from} is local and never comes from the network`;
    }
    if (m.type > MESSAGE_TYPE_MAX || m.to !== this.raft.replicaId) return null;
    if (m.from === this.raft.replicaId || m.from === 0) {
      return `message type ${m.type} claims to come from replica ${m.from}, which is not another replica`;
    }
    if (this.raft.removed.has(m.from)) return null;
    if (RESPONSE_TYPES.has(m.type) && !this.raft.isKnown(m.from)) return null;
    if (m.type === MT.Quiesce) {
      this.raft.quiesce.peerQuiesced();
      return null;
    }
    const plainHeartbeat = (m.type === MT.Heartbeat || m.type === MT.HeartbeatResp) && m.hint === 0;
    this.activity(plainHeartbeat);
    this.raft.refusal = null;
    this.raft.step(m);
    const refusal = this.raft.refusal;
    this.raft.refusal = null;
    return refusal;
  }

  private activity(plainHeartbeat = false): void {
    const q = this.raft.quiesce;
    if (!q.enabled) return;
    const woke = plainHeartbeat ? q.recordHeartbeat() : q.recordActivity();
    // Waking: give the leader a full election timeout to show up before campaigning.
    if (woke) this.raft.electionTick = 0;
  }

  /** Proposes entries; refused ones come back in Update.droppedEntries. */
  propose(entries: Entry[]): void {
    if (entries.length === 0) return;
    this.activity();
    this.raft.step(makeMessage({ type: MT.Propose, from: this.raft.replicaId, entries }));
  }

  /** Proposes a membership change encoded into a ConfigChange entry tagged with its request. */
  proposeConfigChange(cc: ConfigChange, tag: RequestTag): void {
    this.propose([makeEntry({ ...tag, type: EntryType.ConfigChange, cmd: encodeConfigChange(cc) })]);
  }

  /** Requests a linearizable read index; refused ones come back in Update.droppedReadIndexes. */
  readIndex(ctx: ReadCtx): void {
    if (ctx.low === 0)
      throw new PeerArgumentError("Peer.readIndex: ctx.low must be non-zero (0 means no read)");
    this.activity();
    this.raft.step(
      makeMessage({ type: MT.ReadIndex, from: this.raft.replicaId, hint: ctx.low, hintHigh: ctx.high }),
    );
  }

  requestLeaderTransfer(targetReplicaId: number): void {
    if (!Number.isSafeInteger(targetReplicaId) || targetReplicaId <= 0) {
      throw new PeerArgumentError(
        `Peer.requestLeaderTransfer: target must be a replica id > 0, got ${targetReplicaId}`,
      );
    }
    this.activity();
    this.raft.step(
      makeMessage({ type: MT.LeaderTransfer, from: this.raft.replicaId, hint: targetReplicaId }),
    );
  }

  reportUnreachable(replicaId: number): void {
    this.raft.step(makeMessage({ type: MT.Unreachable, from: replicaId }));
  }

  reportSnapshotStatus(replicaId: number, rejected: boolean): void {
    this.raft.step(makeMessage({ type: MT.SnapshotStatus, from: replicaId, reject: rejected }));
  }

  /** The state machine applied a config change: peer maps follow, the pending flag clears. */
  applyConfigChange(cc: ConfigChange): void {
    this.activity();
    this.raft.applyConfigChange(cc);
  }

  /** The state machine rejected a config change: the pending flag clears. */
  rejectConfigChange(): void {
    this.raft.pendingConfigChange = false;
  }

  /** The state machine recovered a received snapshot: peer maps follow its membership. */
  restoreRemotes(snapshot: SnapshotMeta): void {
    this.raft.restoreRemotes(snapshot);
  }

  private stateChanged(): boolean {
    const r = this.raft;
    const p = this.persisted;
    return r.term !== p.term || r.vote !== p.vote || r.log.committed !== p.commit;
  }

  private leaderChanged(): boolean {
    return this.raft.leaderId !== this.reportedLeader.leaderId || this.raft.term !== this.reportedLeader.term;
  }

  hasUpdate(moreToApply: boolean): boolean {
    const r = this.raft;
    return (
      r.msgs.length > 0 ||
      r.log.entriesToSave().length > 0 ||
      (moreToApply && r.log.hasEntriesToApply()) ||
      this.stateChanged() ||
      r.log.unpersistedSnapshot() !== null ||
      r.readyToReads.length > 0 ||
      r.droppedEntries.length > 0 ||
      r.droppedReadIndexes.length > 0 ||
      this.leaderChanged()
    );
  }

  /** Builds the next Update; see update.ts for what the host must do with it, in order. */
  getUpdate(moreToApply: boolean, lastApplied: number): Update {
    const r = this.raft;
    const log = r.log;
    if (lastApplied > r.applied) r.applied = Math.min(lastApplied, log.committed);
    const entriesToSave = log.entriesToSave();
    const committedEntries = moreToApply ? log.entriesToApply(this.raft.config.maxApplyBytes) : [];
    const processed =
      committedEntries.length > 0 ? committedEntries[committedEntries.length - 1]!.index : log.processed;
    if (processed > log.committed)
      throw new Error(`handing out entry ${processed} beyond commit ${log.committed}`);
    const state = this.stateChanged() ? { term: r.term, vote: r.vote, commit: log.committed } : null;
    const { fastMessages, messages } = this.splitMessages(r.msgs);
    r.msgs = [];
    let leaderUpdate = null;
    if (this.leaderChanged()) {
      leaderUpdate = { leaderId: r.leaderId, term: r.term };
      this.reportedLeader = leaderUpdate;
    }
    const readyToReads = r.readyToReads;
    r.readyToReads = [];
    const droppedEntries = r.droppedEntries;
    r.droppedEntries = [];
    const droppedReadIndexes = r.droppedReadIndexes;
    r.droppedReadIndexes = [];
    const last = entriesToSave[entriesToSave.length - 1];
    const snapshot = log.unpersistedSnapshot();
    return {
      shardId: r.shardId,
      replicaId: r.replicaId,
      fastMessages,
      entriesToSave,
      state,
      snapshot,
      messages,
      committedEntries,
      moreCommittedEntries: log.committed > processed,
      readyToReads,
      droppedEntries,
      droppedReadIndexes,
      leaderUpdate,
      commit: {
        processed,
        lastApplied: r.applied,
        stableLogIndex: last?.index ?? 0,
        stableLogTerm: last?.term ?? 0,
        stableSnapshotIndex: snapshot?.index ?? 0,
        readyToReadCount: readyToReads.length,
      },
    };
  }

  /**
   * What may leave before this replica's pending writes are durable: messages that promise no
   * state the log writer has not made durable yet. A leader's Replicate and Heartbeat messages
   * (its term was persisted with its candidacy; the check keeps the contract local and obvious:
   * a leader counts its own match only from what it persisted), and a HeartbeatResp once the
   * term and vote it answers in are durable (it promises only that term). Everything else —
   * votes, append acknowledgements, an answer in a term not yet durable — waits for the fsync.
   * Heartbeats and their answers must not wait for the disk: a write slower than an election
   * timeout would otherwise cost the shard its leader (followers hear nothing; CheckQuorum
   * hears no answer) and every proposal in flight its outcome.
   */
  private isFast(m: Message): boolean {
    const r = this.raft;
    const p = this.persisted;
    if (p.term !== r.term) return false;
    if (m.type === MT.Replicate || m.type === MT.Heartbeat) return r.role === Role.Leader;
    return m.type === MT.HeartbeatResp && p.vote === r.vote;
  }

  private splitMessages(msgs: Message[]): { fastMessages: Message[]; messages: Message[] } {
    const fastMessages: Message[] = [];
    const messages: Message[] = [];
    for (const m of msgs) {
      if (this.isFast(m)) fastMessages.push(m);
      else messages.push(m);
    }
    return { fastMessages, messages };
  }

  /**
   * Takes the messages that may leave now (see isFast) while this replica's last Update is
   * still at the log writer and it gives no new one; the rest wait for its next Update.
   */
  takeFastMessages(): Message[] {
    const r = this.raft;
    if (r.msgs.length === 0) return [];
    const { fastMessages, messages } = this.splitMessages(r.msgs);
    r.msgs = messages;
    return fastMessages;
  }

  /** The host persisted, sent and applied `update`: positions advance. */
  commitUpdate(update: Update): void {
    const r = this.raft;
    if (update.replicaId !== r.replicaId || update.shardId !== r.shardId) {
      throw new PeerArgumentError(
        `commitUpdate: update of shard ${update.shardId} replica ${update.replicaId} given to shard ${r.shardId} replica ${r.replicaId}`,
      );
    }
    const c = update.commit;
    if (update.state !== null) this.persisted = { ...update.state };
    if (c.stableSnapshotIndex > 0) r.log.snapshotPersisted(c.stableSnapshotIndex);
    if (c.stableLogIndex > 0) r.log.stableTo(c.stableLogIndex, c.stableLogTerm);
    if (c.processed > r.log.processed) r.log.processed = c.processed;
    if (r.log.processed > r.applied) r.applied = r.log.processed;
    r.log.trimTo(r.applied);
    r.selfPersisted();
  }

  /**
   * What the engine's leadership view reads (src/engine/leadership.ts): in-memory fields only,
   * never the log storage (it runs after every iteration).
   */
  leadershipFacts(): LeadershipFacts {
    const r = this.raft;
    return {
      replicaId: r.replicaId,
      isLeader: r.role === Role.Leader,
      // The durable term, not r.term: the core's term runs ahead of the disk while the log
      // writer has the Update that raised it, and a crash then loses it (docs/durability.md);
      // a term reported once must never come back lower. A leader's term is always durable
      // (it won with votes asked for only after its candidacy was persisted).
      term: this.persisted.term,
      leaderId: r.leaderId,
      commit: r.log.committed,
      lastIndex: r.log.lastIndex(),
      quorum: r.quorum(),
      isVoter: (id) => r.isVoter(id),
    };
  }

  /** True while the replica is quiesced (a tick only counts; see QuiesceState). */
  isQuiesced(): boolean {
    return this.raft.quiesce.quiesced;
  }

  status(): PeerStatus {
    const r = this.raft;
    return {
      shardId: r.shardId,
      replicaId: r.replicaId,
      role: r.role,
      term: r.term,
      vote: r.vote,
      leaderId: r.leaderId,
      commit: r.log.committed,
      applied: r.applied,
      lastIndex: r.log.lastIndex(),
      quiesced: r.quiesce.quiesced,
      isTransferring: r.transferTarget !== 0,
      rateLimited: r.rateLimiter.isLimited(),
    };
  }
}

function checkBootstrap(config: RaftConfig, storage: LogStorage, members: Member[]): void {
  const where = `shard ${config.shardId} replica ${config.replicaId}`;
  if (config.isNonVoting || config.isWitness) {
    throw new PeerArgumentError(
      `${where}: a non-voting replica or witness cannot be an initial member (join it instead)`,
    );
  }
  if (members.length === 0) throw new PeerArgumentError(`${where}: newNode requires initial members`);
  if (storage.lastIndex() > 0) {
    throw new PeerArgumentError(
      `${where}: newNode but the log already holds entries up to ${storage.lastIndex()}`,
    );
  }
  const ids = new Set<number>();
  const addresses = new Set<string>();
  for (const m of members) {
    if (!Number.isSafeInteger(m.replicaId) || m.replicaId <= 0) {
      throw new PeerArgumentError(`${where}: initial member replica id must be > 0, got ${m.replicaId}`);
    }
    if (ids.has(m.replicaId))
      throw new PeerArgumentError(`${where}: initial member ${m.replicaId} is listed twice`);
    if (addresses.has(m.address)) {
      throw new PeerArgumentError(`${where}: initial member address ${m.address} is used twice`);
    }
    ids.add(m.replicaId);
    addresses.add(m.address);
  }
  if (!ids.has(config.replicaId)) {
    throw new PeerArgumentError(`${where}: the replica itself is not among the initial members`);
  }
}
