import { type RaftConfig, Role, roleName } from "./config.ts";
import { EntryLog } from "./log.ts";
import { applyConfigChange, restoreRemotes, snapshotRoleProblem } from "./membership.ts";
import {
  broadcastHeartbeatWithCtx,
  broadcastPlainHeartbeat,
  commitAdvanced,
  sendHeartbeat,
  sendReplicate,
  tryCommit,
} from "./replicate.ts";
import { QuiesceState } from "./quiesce.ts";
import { RateLimiter } from "./ratelimit.ts";
import { ReadIndexQueue } from "./readindex.ts";
import { Remote, RemoteState } from "./remote.ts";
import type { LogStorage, Rng } from "./storage.ts";
import {
  type ConfigChange,
  type Entry,
  EntryType,
  type Member,
  type Membership,
  type Message,
  MessageType,
  makeEntry,
  makeMessage,
  type SnapshotMeta,
} from "./types.ts";
import type { ReadCtx, ReadyToRead } from "./update.ts";

const MT = MessageType;

/** Messages whose sender is (or claims to be) the leader of the message's term. */
export function isLeaderMessage(type: number): boolean {
  return (
    type === MT.Replicate ||
    type === MT.InstallSnapshot ||
    type === MT.Heartbeat ||
    type === MT.TimeoutNow ||
    type === MT.ReadIndexResp
  );
}

/** Requests routed to the leader; they carry term 0. */
export function isRequestMessage(type: number): boolean {
  return type === MT.Propose || type === MT.ReadIndex || type === MT.LeaderTransfer;
}

/** Proposed entries, ready reads and dropped items the core keeps at most between Updates. */
export const MAX_PENDING_OUTPUTS = 1 << 20;

/**
 * The Raft protocol state of one replica: every input is a Message handed to step() (local
 * events included), every output accumulates in the fields the Peer drains into an Update.
 * No I/O, no clock: time is tick(), randomness is the injected Rng.
 */
export class Raft {
  readonly replicaId: number;
  readonly shardId: number;
  term = 0;
  vote = 0;
  leaderId = 0;
  role: Role;
  readonly log: EntryLog;
  /** Full (voting, log-holding) members, the local replica included when it is one. */
  readonly remotes = new Map<number, Remote>();
  readonly nonVotings = new Map<number, Remote>();
  readonly witnesses = new Map<number, Remote>();
  /** Ids removed from the shard; they never return. */
  readonly removed = new Set<number>();
  private votes = new Map<number, boolean>();
  msgs: Message[] = [];
  readyToReads: ReadyToRead[] = [];
  droppedEntries: Entry[] = [];
  droppedReadIndexes: ReadCtx[] = [];
  electionTick = 0;
  heartbeatTick = 0;
  randomizedElectionTimeout = 0;
  private tickCount = 0;
  /** Leader: the replica leadership is being handed to (0 = none). */
  transferTarget = 0;
  /** Follower: a TimeoutNow made this replica the transfer target of its next campaign. */
  private isTransferTarget = false;
  pendingConfigChange = false;
  readonly readIndex = new ReadIndexQueue();
  readonly rateLimiter: RateLimiter;
  readonly quiesce: QuiesceState;
  /** Highest index the host reported applied. */
  applied: number;
  /** Count of campaigns skipped because committed entries were unapplied. */
  campaignsSkipped = 0;
  /**
   * Why the last stepped message was refused, or null (Peer.step reads and clears it). A peer
   * may send anything well-formed; what breaks the protocol is dropped, never thrown: nothing
   * a peer sends may stop the host.
   */
  refusal: string | null = null;

  constructor(
    readonly config: RaftConfig,
    storage: LogStorage,
    private readonly rng: Rng,
    opts: { lastApplied: number },
  ) {
    this.replicaId = config.replicaId;
    this.shardId = config.shardId;
    const { state, membership } = storage.nodeState();
    this.log = new EntryLog(storage, { committed: state.commit, processed: opts.lastApplied });
    this.applied = this.log.processed;
    this.term = state.term;
    this.vote = state.vote;
    this.role = config.isWitness ? Role.Witness : config.isNonVoting ? Role.NonVoting : Role.Follower;
    this.rateLimiter = new RateLimiter(config.maxInMemLogSizeBytes, () => this.log.tailSizeBytes);
    this.quiesce = new QuiesceState(config.quiesce, config.electionRtt);
    this.restoreMembership(membership);
    this.resetRandomizedElectionTimeout();
  }

  // ---- membership ----

  newRemote(): Remote {
    const r = new Remote(this.config.maxInflightMsgs, this.config.maxInflightBytes);
    r.reset(this.log.lastIndex() + 1);
    return r;
  }

  /** Sets the peer maps from a membership, keeping the progress of ids that stay. */
  restoreMembership(m: Membership): void {
    const old = new Map<number, Remote>([...this.remotes, ...this.nonVotings, ...this.witnesses]);
    this.remotes.clear();
    this.nonVotings.clear();
    this.witnesses.clear();
    for (const id of m.removed) this.removed.add(id);
    const put = (map: Map<number, Remote>, members: Member[]) => {
      for (const mem of members) {
        if (this.removed.has(mem.replicaId)) continue;
        map.set(mem.replicaId, old.get(mem.replicaId) ?? this.newRemote());
      }
    };
    put(this.remotes, m.addresses);
    put(this.nonVotings, m.nonVotings);
    put(this.witnesses, m.witnesses);
  }

  addMembers(members: Member[]): void {
    for (const m of members)
      if (!this.remotes.has(m.replicaId)) this.remotes.set(m.replicaId, this.newRemote());
  }

  isVoter(id: number): boolean {
    return this.remotes.has(id) || this.witnesses.has(id);
  }

  isKnown(id: number): boolean {
    return this.remotes.has(id) || this.witnesses.has(id) || this.nonVotings.has(id);
  }

  votingCount(): number {
    return this.remotes.size + this.witnesses.size;
  }

  quorum(): number {
    return Math.floor(this.votingCount() / 2) + 1;
  }

  private isSingleVoterSelf(): boolean {
    return this.votingCount() === 1 && this.remotes.has(this.replicaId);
  }

  getRemote(id: number): Remote | undefined {
    return this.remotes.get(id) ?? this.nonVotings.get(id) ?? this.witnesses.get(id);
  }

  forEachPeer(fn: (id: number, r: Remote) => void): void {
    for (const [id, r] of this.remotes) if (id !== this.replicaId) fn(id, r);
    for (const [id, r] of this.nonVotings) if (id !== this.replicaId) fn(id, r);
    for (const [id, r] of this.witnesses) if (id !== this.replicaId) fn(id, r);
  }

  // ---- state transitions ----

  private resetRandomizedElectionTimeout(): void {
    const e = this.config.electionRtt;
    this.randomizedElectionTimeout = e + this.rng.nextInt(e);
  }

  private reset(term: number, resetElectionTick: boolean): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = 0;
    }
    this.leaderId = 0;
    this.votes.clear();
    if (resetElectionTick) this.electionTick = 0;
    this.heartbeatTick = 0;
    this.resetRandomizedElectionTimeout();
    this.readIndex.reset();
    this.pendingConfigChange = false;
    this.transferTarget = 0;
    this.isTransferTarget = false;
    this.rateLimiter.resetFollowerState();
    const next = this.log.lastIndex() + 1;
    for (const [, r] of [...this.remotes, ...this.nonVotings, ...this.witnesses]) r.reset(next);
    const self = this.remotes.get(this.replicaId);
    if (self !== undefined) self.match = Math.min(this.log.savedTo, this.log.lastIndex());
  }

  becomeFollower(term: number, leaderId: number, resetElectionTick = true): void {
    if (this.role !== Role.NonVoting && this.role !== Role.Witness) this.role = Role.Follower;
    this.reset(term, resetElectionTick);
    this.leaderId = leaderId;
  }

  private becomePreVoteCandidate(): void {
    this.assertCanCampaign("PreVoteCandidate");
    this.role = Role.PreVoteCandidate;
    this.votes.clear();
    this.leaderId = 0;
    this.electionTick = 0;
    this.resetRandomizedElectionTimeout();
    this.votes.set(this.replicaId, true);
  }

  private becomeCandidate(): void {
    this.assertCanCampaign("Candidate");
    const transfer = this.isTransferTarget;
    this.reset(this.term + 1, true);
    this.isTransferTarget = transfer;
    this.role = Role.Candidate;
    this.vote = this.replicaId;
    this.votes.set(this.replicaId, true);
  }

  private assertCanCampaign(to: string): void {
    if (this.role === Role.Leader || this.role === Role.NonVoting || this.role === Role.Witness) {
      throw new Error(`replica ${this.replicaId}: illegal transition ${roleName(this.role)} → ${to}`);
    }
  }

  becomeLeader(): void {
    if (this.role !== Role.Candidate) {
      throw new Error(`replica ${this.replicaId}: illegal transition ${roleName(this.role)} → Leader`);
    }
    this.reset(this.term, true);
    this.role = Role.Leader;
    this.leaderId = this.replicaId;
    for (const [, r] of [...this.remotes, ...this.nonVotings, ...this.witnesses]) r.active = false;
    // A correct leader never leaves more than one config change uncommitted; should a peer
    // have written more into this log, none is added until they are applied (still one at a
    // time, each through the state machine's rules).
    const pending = this.log.countConfigChangesAfterCommit(EntryType.ConfigChange);
    this.pendingConfigChange = pending > 0;
    // Thesis p72: an entry of the new term lets the leader learn and advance the commit index.
    this.appendEntries([makeEntry({ type: EntryType.Application })]);
    this.broadcastReplicate();
  }

  // ---- sending ----

  send(m: Message): void {
    m.from = this.replicaId;
    m.shardId = this.shardId;
    if (isRequestMessage(m.type)) {
      m.term = 0;
    } else if (
      m.type === MT.RequestVote ||
      m.type === MT.RequestPreVote ||
      m.type === MT.RequestPreVoteResp
    ) {
      if (m.term === 0) throw new Error(`${m.type} sent without an explicit term`);
    } else {
      if (m.term !== 0) throw new Error(`message type ${m.type} must not carry a preset term`);
      m.term = this.term;
    }
    if (this.msgs.length >= MAX_PENDING_OUTPUTS)
      throw new Error("outgoing message queue overflow (no Update taken)");
    this.msgs.push(m);
  }

  // ---- ticks ----

  tick(): void {
    this.tickCount++;
    if (this.role === Role.Leader) this.leaderTick();
    else this.nonLeaderTick();
    // Refreshed once per tick (and on each proposal) so status() reads it without side effects.
    this.rateLimiter.rateLimited();
  }

  /** n quiesced ticks (default 1): time passes, nothing is sent and no election starts. */
  quiescedTick(n = 1): void {
    this.tickCount += n;
  }

  private nonLeaderTick(): void {
    this.electionTick++;
    if (this.tickCount % this.config.electionRtt === 0) {
      this.rateLimiter.tick();
      if (this.leaderId !== 0 && this.rateLimiter.enabled()) {
        const sizeBytes = this.rateLimiter.overLimit() ? this.rateLimiter.ownSizeBytes : 0;
        this.send(makeMessage({ type: MT.RateLimit, to: this.leaderId, hint: sizeBytes }));
      }
    }
    if (this.role === Role.NonVoting || this.role === Role.Witness) return;
    if (!this.remotes.has(this.replicaId)) return;
    // The sole voter has no one to split a vote with: it campaigns on its first tick instead of
    // waiting out a randomized election timeout (10,000 new single-replica shards at start-up).
    if (this.electionTick >= this.randomizedElectionTimeout || this.isSingleVoterSelf()) {
      this.electionTick = 0;
      this.step(makeMessage({ type: MT.Election, from: this.replicaId }));
    }
  }

  private leaderTick(): void {
    this.electionTick++;
    if (this.tickCount % this.config.electionRtt === 0) this.rateLimiter.tick();
    if (this.electionTick >= this.config.electionRtt) {
      this.electionTick = 0;
      if (this.transferTarget !== 0) this.transferTarget = 0;
      if (this.config.checkQuorum) {
        this.step(makeMessage({ type: MT.CheckQuorum, from: this.replicaId }));
        if (this.role !== Role.Leader) return;
      }
    }
    this.heartbeatTick++;
    if (this.heartbeatTick >= this.config.heartbeatRtt) {
      this.heartbeatTick = 0;
      this.step(makeMessage({ type: MT.LeaderHeartbeat, from: this.replicaId }));
    }
  }

  // ---- step ----

  step(m: Message): void {
    if (!this.checkTerm(m)) return;
    switch (m.type) {
      case MT.Election:
        this.handleElection(false);
        return;
      case MT.RequestVote:
      case MT.RequestPreVote:
        this.handleVoteRequest(m);
        return;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        return;
      case Role.Candidate:
      case Role.PreVoteCandidate:
        this.stepCandidate(m);
        return;
      default:
        this.stepFollower(m);
        return;
    }
  }

  /**
   * The term rules common to every role (engine.md §1.5, §1.6). Returns false when the
   * message must go no further.
   */
  private checkTerm(m: Message): boolean {
    if (m.term === 0 || m.term === this.term) return true;
    if (m.term > this.term) {
      const isVote = m.type === MT.RequestVote || m.type === MT.RequestPreVote;
      if (isVote && this.inLease() && m.hint !== m.from) return false; // vote suppression
      if (m.type === MT.RequestPreVote || (m.type === MT.RequestPreVoteResp && !m.reject)) return true;
      const leader = isLeaderMessage(m.type) ? m.from : 0;
      // followerKE: a higher-term RequestVote keeps the election tick so a replica with a
      // slow clock is not starved of campaigning chances.
      this.becomeFollower(m.term, leader, m.type !== MT.RequestVote);
      return true;
    }
    // lower term
    if (
      (this.config.checkQuorum || this.config.preVote) &&
      (isLeaderMessage(m.type) || m.type === MT.RequestPreVote)
    ) {
      // Frees a stale leader or a stuck pre-candidate: it adopts our term.
      this.send(makeMessage({ type: MT.NoOP, to: m.from }));
    }
    return false;
  }

  /** CheckQuorum lease: a known leader was heard from within an election timeout. */
  private inLease(): boolean {
    return this.config.checkQuorum && this.leaderId !== 0 && this.electionTick < this.config.electionRtt;
  }

  // ---- election ----

  handleElection(transfer: boolean): void {
    if (this.role === Role.Leader || this.role === Role.NonVoting || this.role === Role.Witness) return;
    if (!this.remotes.has(this.replicaId)) return;
    // A committed config change not yet applied could make us campaign with the wrong quorum.
    if (this.log.committed > this.applied) {
      this.campaignsSkipped++;
      return;
    }
    if (transfer) this.isTransferTarget = true;
    this.campaign(this.config.preVote && !this.isTransferTarget);
  }

  private campaign(preVote: boolean): void {
    if (preVote) this.becomePreVoteCandidate();
    else this.becomeCandidate();
    if (this.isSingleVoterSelf()) {
      if (preVote) this.campaign(false);
      else this.becomeLeader();
      return;
    }
    const term = preVote ? this.term + 1 : this.term;
    const type = preVote ? MT.RequestPreVote : MT.RequestVote;
    const hint = this.isTransferTarget ? this.replicaId : 0;
    for (const id of [...this.remotes.keys(), ...this.witnesses.keys()]) {
      if (id === this.replicaId) continue;
      this.send(
        makeMessage({
          type,
          to: id,
          term,
          logIndex: this.log.lastIndex(),
          logTerm: this.log.lastTerm(),
          hint,
        }),
      );
    }
  }

  /** Drops m, saying why (Peer.step returns it; the host logs and counts it). */
  refuse(m: Message, reason: string): void {
    this.refusal = `message type ${m.type} from ${m.from} (term ${m.term}): ${reason}`;
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MT.RequestPreVote;
    if (pre && !this.config.preVote) {
      this.refuse(m, "a pre-vote request, but preVote is off here (every member must have the same preVote)");
      return;
    }
    const canVote =
      this.vote === m.from || (this.vote === 0 && this.leaderId === 0) || (pre && m.term > this.term);
    const grant = canVote && this.log.isUpToDate(m.logIndex, m.logTerm);
    if (pre) {
      this.send(
        makeMessage({
          type: MT.RequestPreVoteResp,
          to: m.from,
          term: grant ? m.term : this.term,
          reject: !grant,
        }),
      );
      return;
    }
    if (grant) {
      this.electionTick = 0;
      this.vote = m.from;
    }
    // Sent only after the Update holding this vote is persisted (Update.messages).
    this.send(makeMessage({ type: MT.RequestVoteResp, to: m.from, reject: !grant }));
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MT.Propose:
        this.dropEntries(m.entries);
        return;
      case MT.ReadIndex:
        this.dropRead(m);
        return;
      case MT.Replicate:
      case MT.Heartbeat:
      case MT.InstallSnapshot:
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case MT.RequestVoteResp:
        if (this.role === Role.Candidate) this.countVote(m, false);
        return;
      case MT.RequestPreVoteResp:
        if (this.role === Role.PreVoteCandidate) this.countVote(m, true);
        return;
    }
  }

  private countVote(m: Message, pre: boolean): void {
    if (!this.isVoter(m.from)) return; // non-voting votes never count
    if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
    let granted = 0;
    for (const v of this.votes.values()) if (v) granted++;
    const rejected = this.votes.size - granted;
    if (granted >= this.quorum()) {
      if (pre) this.campaign(false);
      else this.becomeLeader();
    } else if (rejected >= this.quorum()) {
      this.becomeFollower(this.term, 0);
    }
  }

  // ---- follower / non-voting / witness ----

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MT.Propose:
        if (this.role === Role.Witness || this.leaderId === 0) {
          this.dropEntries(m.entries);
          return;
        }
        this.send(makeMessage({ type: MT.Propose, to: this.leaderId, entries: m.entries }));
        return;
      case MT.ReadIndex:
        if (this.role === Role.Witness || this.leaderId === 0) {
          this.dropRead(m);
          return;
        }
        this.send(makeMessage({ type: MT.ReadIndex, to: this.leaderId, hint: m.hint, hintHigh: m.hintHigh }));
        return;
      case MT.LeaderTransfer:
        if (this.leaderId === 0) return;
        this.send(makeMessage({ type: MT.LeaderTransfer, to: this.leaderId, hint: m.hint }));
        return;
      case MT.Replicate:
        this.heardFromLeader(m);
        this.handleReplicate(m);
        return;
      case MT.Heartbeat:
        this.heardFromLeader(m);
        this.handleHeartbeat(m);
        return;
      case MT.InstallSnapshot:
        this.heardFromLeader(m);
        this.handleInstallSnapshot(m);
        return;
      case MT.ReadIndexResp:
        this.heardFromLeader(m);
        // As a heartbeat's: the commit index travels lazily, and the read waits for it.
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.pushReady({ index: m.logIndex, ctx: { low: m.hint, high: m.hintHigh } });
        return;
      case MT.TimeoutNow:
        this.heardFromLeader(m);
        if (this.role !== Role.Follower) return;
        this.handleElection(true);
        return;
    }
  }

  private heardFromLeader(m: Message): void {
    this.leaderId = m.from;
    this.electionTick = 0;
  }

  private handleReplicate(m: Message): void {
    if (m.logIndex < this.log.committed) {
      this.send(makeMessage({ type: MT.ReplicateResp, to: m.from, logIndex: this.log.committed }));
      return;
    }
    const bad = replicateProblem(m);
    if (bad !== null) {
      this.refuse(m, bad);
      return;
    }
    if (this.log.matchTerm(m.logIndex, m.logTerm)) {
      const conflict = this.log.firstConflict(m.entries);
      if (conflict !== 0 && conflict <= this.log.committed) {
        this.refuse(
          m,
          `entry ${conflict} differs from the committed entry there (commit ${this.log.committed})`,
        );
        return;
      }
      const lastNew = this.log.tryAppend(m.logIndex, m.entries);
      this.log.commitTo(Math.min(lastNew, m.commit));
      this.send(makeMessage({ type: MT.ReplicateResp, to: m.from, logIndex: lastNew }));
      return;
    }
    const hintIndex = this.log.findConflictByTerm(Math.min(m.logIndex, this.log.lastIndex()), m.logTerm);
    const hintTerm = Math.max(0, this.log.termOrNone(hintIndex));
    this.send(
      makeMessage({
        type: MT.ReplicateResp,
        to: m.from,
        reject: true,
        logIndex: m.logIndex,
        hint: hintIndex,
        hintHigh: hintTerm,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(makeMessage({ type: MT.HeartbeatResp, to: m.from, hint: m.hint, hintHigh: m.hintHigh }));
  }

  private handleInstallSnapshot(m: Message): void {
    const snap = m.snapshot;
    const bad = snap === null ? "an InstallSnapshot without a snapshot" : snapshotRoleProblem(this, snap);
    if (bad !== null || snap === null) {
      this.refuse(m, bad ?? "");
      return;
    }
    if (snap.index <= this.log.committed) {
      this.send(makeMessage({ type: MT.ReplicateResp, to: m.from, logIndex: this.log.committed }));
      return;
    }
    if (this.log.matchTerm(snap.index, snap.term)) {
      this.log.commitTo(snap.index);
      this.send(makeMessage({ type: MT.ReplicateResp, to: m.from, logIndex: this.log.committed }));
      return;
    }
    this.log.restore(snap);
    this.send(makeMessage({ type: MT.ReplicateResp, to: m.from, logIndex: snap.index }));
  }

  // ---- leader ----

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MT.LeaderHeartbeat:
        this.broadcastHeartbeat();
        return;
      case MT.CheckQuorum:
        this.checkQuorum();
        return;
      case MT.Propose:
        this.leaderPropose(m);
        return;
      case MT.ReadIndex:
        this.leaderReadIndex(m);
        return;
      case MT.LeaderTransfer:
        this.leaderTransfer(m);
        return;
      case MT.ReplicateResp:
        this.handleReplicateResp(m);
        return;
      case MT.HeartbeatResp:
        this.handleHeartbeatResp(m);
        return;
      case MT.SnapshotStatus:
        this.handleSnapshotStatus(m);
        return;
      case MT.Unreachable:
        this.getRemote(m.from)?.unreachable();
        return;
      case MT.RateLimit:
        if (this.rateLimiter.enabled()) {
          this.rateLimiter.setFollowerState(m.from, m.hint);
          this.rateLimiter.rateLimited();
        }
        return;
    }
  }

  private checkQuorum(): void {
    let active = 0;
    for (const [id, r] of [...this.remotes, ...this.witnesses]) {
      if (id === this.replicaId || r.active) active++;
    }
    for (const [, r] of [...this.remotes, ...this.nonVotings, ...this.witnesses]) r.active = false;
    if (active < this.quorum()) this.becomeFollower(this.term, 0);
  }

  hasCommittedEntryAtCurrentTerm(): boolean {
    return this.log.termOrNone(this.log.committed) === this.term;
  }

  /** Request tags of recently appended forwarded proposals (bounded; duplicates are dropped). */
  private readonly forwardedKeys = new RecentKeys(FORWARDED_KEYS_MAX);

  private appendEntries(entries: Entry[]): void {
    let index = this.log.lastIndex();
    const stamped = entries.map((e) => makeEntry({ ...e, term: this.term, index: ++index }));
    this.log.append(stamped);
  }

  private leaderPropose(m: Message): void {
    if (this.transferTarget !== 0) {
      this.dropEntries(m.entries);
      return;
    }
    if (this.rateLimiter.rateLimited()) {
      this.dropEntries(m.entries);
      return;
    }
    const entries: Entry[] = [];
    const forwarded = m.from !== this.replicaId;
    for (const e of m.entries) {
      // A forwarded proposal the network delivered twice must not be appended twice: its
      // request tag identifies it (no-op sessions have no other dedup). The whole tag, as
      // two proposers' keys may be equal.
      if (forwarded && e.key !== 0 && !this.forwardedKeys.add(requestTagKey(e))) continue;
      if (e.type === EntryType.ConfigChange) {
        if (this.pendingConfigChange) {
          this.dropEntries([e]);
          entries.push(makeEntry({ type: EntryType.Application }));
          continue;
        }
        this.pendingConfigChange = true;
      }
      entries.push(e);
    }
    if (entries.length === 0) return;
    this.appendEntries(entries);
    this.broadcastReplicate();
  }

  private leaderReadIndex(m: Message): void {
    const ctx = { low: m.hint, high: m.hintHigh };
    if (this.witnesses.has(m.from) || !this.hasCommittedEntryAtCurrentTerm()) {
      this.dropRead(m);
      return;
    }
    if (this.votingCount() === 1) {
      const index = this.log.committed;
      if (m.from === this.replicaId) {
        this.pushReady({ index, ctx });
        return;
      }
      this.send(
        makeMessage({
          type: MT.ReadIndexResp,
          to: m.from,
          logIndex: index,
          hint: ctx.low,
          hintHigh: ctx.high,
          commit: this.knownCommit(m.from),
        }),
      );
      return;
    }
    if (!this.readIndex.add(this.log.committed, ctx, m.from)) {
      this.dropRead(m);
      return;
    }
    this.sendReadHeartbeats(ctx);
  }

  /**
   * The heartbeats that confirm a read. A quorum needs quorum − 1 echoes besides the leader's
   * own, so they go only to the voters whose echoes released the previous read of this term
   * (the ones that answered first), when those are still enough voters; otherwise to every
   * peer. At 48 shards with a read or two per shard and turn, this halves a 3-replica read's
   * messages (one heartbeat and one answer instead of two each) and leaves one follower idle.
   * Safety is untouched: a read still needs a quorum of echoes of its own ctx, sent after it
   * arrived. Liveness: should a chosen voter not answer, the next regular heartbeat carries the
   * newest pending ctx to every peer (broadcastHeartbeat), so a read waits at most one
   * heartbeat interval longer, and the voter that answers instead becomes the one asked next.
   */
  private sendReadHeartbeats(ctx: ReadCtx): void {
    const chosen = this.readIndex.lastConfirmers();
    let usable = chosen.length + 1 >= this.quorum();
    for (const id of chosen) if (id === this.replicaId || !this.isVoter(id)) usable = false;
    if (!usable) {
      this.broadcastHeartbeatWithCtx(ctx);
      return;
    }
    for (const id of chosen) sendHeartbeat(this, id, this.getRemote(id)!, ctx);
  }

  private leaderTransfer(m: Message): void {
    const target = m.hint;
    if (this.transferTarget !== 0 || target === this.replicaId || !this.remotes.has(target)) return;
    this.transferTarget = target;
    this.electionTick = 0;
    if (this.remotes.get(target)!.match === this.log.lastIndex()) this.sendTimeoutNow(target);
  }

  /**
   * The commit index a message to a peer may carry without entries: no further than the peer
   * is known to match (as a heartbeat's), so it commits nothing its log may not hold.
   */
  private knownCommit(id: number): number {
    return Math.min(this.getRemote(id)?.match ?? 0, this.log.committed);
  }

  private sendTimeoutNow(to: number): void {
    this.send(makeMessage({ type: MT.TimeoutNow, to }));
  }

  private handleReplicateResp(m: Message): void {
    const r = this.getRemote(m.from);
    if (r === undefined) return;
    if (m.logIndex > this.log.lastIndex()) {
      this.refuse(
        m,
        `answers for index ${m.logIndex}, beyond this leader's last index ${this.log.lastIndex()}`,
      );
      return;
    }
    r.active = true;
    if (m.reject) {
      let hint = m.hint;
      if (m.hintHigh > 0) hint = this.log.findConflictByTerm(m.hint, m.hintHigh);
      if (r.decreaseTo(m.logIndex, hint)) this.sendReplicate(m.from, r, false);
      return;
    }
    r.replicateAccepted(m.logIndex);
    const paused = r.isPaused();
    if (!r.tryUpdate(m.logIndex)) {
      this.pump(m.from, r);
      return;
    }
    r.respondedTo();
    if (this.tryCommit()) commitAdvanced(this);
    else if (paused) this.sendReplicate(m.from, r, false);
    this.pump(m.from, r);
    if (m.from === this.transferTarget && r.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  /** Pipelining: keeps sending while the follower's window has room and entries wait. */
  private pump(id: number, r: Remote): void {
    for (let i = 0; i < this.config.maxInflightMsgs && r.state === RemoteState.Replicate; i++) {
      if (!this.sendReplicate(id, r, false)) break;
    }
  }

  private handleHeartbeatResp(m: Message): void {
    const r = this.getRemote(m.from);
    if (r === undefined) return;
    r.active = true;
    if (r.state === RemoteState.Wait) r.becomeRetry();
    if (r.state === RemoteState.Replicate && r.inflightFull()) r.freeFirstInflight();
    // An empty Replicate probes at next − 1: a follower that lost pipelined messages rejects
    // it and the leader backs off, so a lost message never stalls a follower for good.
    if (r.match < this.log.lastIndex()) this.sendReplicate(m.from, r, true);
    if (m.hint !== 0 && this.isVoter(m.from)) {
      const released = this.readIndex.confirm({ low: m.hint, high: m.hintHigh }, m.from, this.quorum());
      for (const x of released) {
        if (x.from === this.replicaId) this.pushReady({ index: x.index, ctx: x.ctx });
        else {
          this.send(
            makeMessage({
              type: MT.ReadIndexResp,
              to: x.from,
              logIndex: x.index,
              hint: x.ctx.low,
              hintHigh: x.ctx.high,
              commit: this.knownCommit(x.from),
            }),
          );
        }
      }
    }
  }

  private handleSnapshotStatus(m: Message): void {
    const r = this.getRemote(m.from);
    if (r === undefined || r.state !== RemoteState.Snapshot) return;
    if (m.reject) r.snapshotIndex = 0;
    r.becomeWait();
  }

  // ---- replication messages and the commit rule (replicate.ts) ----

  tryCommit(): boolean {
    return tryCommit(this);
  }

  broadcastReplicate(): void {
    this.forEachPeer((id, r) => sendReplicate(this, id, r, true));
  }

  sendReplicate(to: number, r: Remote, allowEmpty: boolean): boolean {
    return sendReplicate(this, to, r, allowEmpty);
  }

  private broadcastHeartbeat(): void {
    const ctx = this.readIndex.newest();
    if (ctx !== null) broadcastHeartbeatWithCtx(this, ctx);
    else broadcastPlainHeartbeat(this);
  }

  private broadcastHeartbeatWithCtx(ctx: ReadCtx): void {
    broadcastHeartbeatWithCtx(this, ctx);
  }

  /** The host persisted the log up to savedTo: the leader counts its own copy now. */
  selfPersisted(): void {
    if (this.role !== Role.Leader) return;
    const self = this.remotes.get(this.replicaId) ?? this.witnesses.get(this.replicaId);
    if (self === undefined) return;
    if (self.tryUpdate(Math.min(this.log.savedTo, this.log.lastIndex())) && this.tryCommit()) {
      commitAdvanced(this);
    }
  }

  // ---- outputs ----

  dropEntries(entries: Entry[]): void {
    if (this.droppedEntries.length + entries.length > MAX_PENDING_OUTPUTS) {
      throw new Error("dropped entry list overflow (no Update taken)");
    }
    for (const e of entries) this.droppedEntries.push(e);
  }

  private dropRead(m: Message): void {
    if (m.from !== this.replicaId) return; // a remote requester's client times out
    if (this.droppedReadIndexes.length >= MAX_PENDING_OUTPUTS) throw new Error("dropped read list overflow");
    this.droppedReadIndexes.push({ low: m.hint, high: m.hintHigh });
  }

  private pushReady(r: ReadyToRead): void {
    if (this.readyToReads.length >= MAX_PENDING_OUTPUTS) throw new Error("ready read list overflow");
    this.readyToReads.push(r);
  }

  // ---- membership changes applied by the state machine (membership.ts) ----

  applyConfigChange(cc: ConfigChange): void {
    applyConfigChange(this, cc);
  }

  /** After the state machine recovered a received snapshot: peer maps follow its membership. */
  restoreRemotes(snap: SnapshotMeta): void {
    restoreRemotes(this, snap);
  }
}

/**
 * Why a Replicate's entries cannot continue the log at (logIndex, logTerm) as a leader of
 * m.term sends them, or null: consecutive indexes from logIndex + 1, terms that never go down,
 * from logTerm up to the message's term.
 */
function replicateProblem(m: Message): string | null {
  let term = m.logTerm;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    if (e.index !== m.logIndex + 1 + i)
      return `entry ${i} has index ${e.index}, expected ${m.logIndex + 1 + i}`;
    if (e.term < term || e.term > m.term) {
      return `entry ${e.index} has term ${e.term}, outside [${term}, ${m.term}]`;
    }
    term = e.term;
  }
  return null;
}

/** Forwarded proposal keys remembered by a leader; a duplicate older than this many is possible. */
const FORWARDED_KEYS_MAX = 65536;

/** One string per request tag: proposer, epoch and key. */
function requestTagKey(e: Entry): string {
  return `${e.proposerId}/${e.proposerEpoch}/${e.key}`;
}

/** A bounded set of strings that forgets the oldest first. */
class RecentKeys {
  private readonly set = new Set<string>();
  private readonly order: string[] = [];
  private head = 0;

  constructor(private readonly max: number) {}

  /** Adds key; false when it was already there. */
  add(key: string): boolean {
    if (this.set.has(key)) return false;
    this.set.add(key);
    this.order.push(key);
    if (this.order.length - this.head > this.max) this.set.delete(this.order[this.head++]!);
    if (this.head > this.max) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
    return true;
  }
}
