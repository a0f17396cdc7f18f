import type { LogReader } from "../logdb/logreader.ts";
import type { SnapshotDir } from "../logdb/snapshotfile.ts";
import type { Peer } from "../raft/peer.ts";
import type { ReadCtx, Update } from "../raft/update.ts";
import {
  type ConfigChange,
  type Entry,
  type Membership,
  type Message,
  answersRequest,
  makeEntry,
  type RequestTag,
} from "../raft/types.ts";
import type { ApplyOutcome, StateMachineManager } from "../rsm/manager.ts";
import type { ReplicaConfig } from "./config.ts";
import type { PlantedBug } from "./bugs.ts";
import { LongboatError } from "./errors.ts";
import { PendingProposals, PendingReads, RequestState } from "./request.ts";

/** A proposal waiting for the next engine cycle. */
interface QueuedProposal {
  entry: Entry;
  state: RequestState;
}

/** A one-at-a-time request (config change, snapshot). */
export interface SingleRequest<T> {
  state: RequestState;
  input: T;
  /** True once handed to the core (config change) or started (snapshot). */
  started: boolean;
}

export interface SnapshotRequestInput {
  exportPath: string;
  /** Entries to keep behind the snapshot instead of the replica's compactionOverhead. */
  compactionOverhead: number | null;
  /** Compact the log up to this index (at most the snapshot's) instead. */
  compactionIndex: number | null;
}

/**
 * The index a new snapshot at snapshotIndex compacts the log to (≤ 0: nothing): the
 * request's compaction index or overhead when it names one, else the replica's overhead
 * unless automatic compaction is off (engine.md §1.15).
 */
export function compactionTarget(
  config: Pick<ReplicaConfig, "compactionOverhead" | "disableAutoCompactions">,
  snapshotIndex: number,
  request: SnapshotRequestInput | null,
): number {
  if (request !== null && request.compactionIndex !== null) {
    return Math.min(request.compactionIndex, snapshotIndex);
  }
  if (request !== null && request.compactionOverhead !== null) {
    return snapshotIndex - request.compactionOverhead;
  }
  return config.disableAutoCompactions ? 0 : snapshotIndex - config.compactionOverhead;
}

/** What the engine gives a replica to reach the rest of the NodeHost. */
export interface ReplicaHost {
  /** Current engine tick (deadlines are counted in ticks). */
  tick(): number;
  /** The epoch in every request tag of this engine (Engine.requestEpoch). */
  readonly requestEpoch: number;
  nextRequestKey(): number;
  randomNonZero(): number;
  onMembershipApplied(replica: Replica, membership: Membership): void;
  onLeaderChanged(replica: Replica, leaderId: number, term: number): void;
  onSnapshotSaved(replica: Replica, index: number): void;
  /** The state machine was rebuilt from a received snapshot. */
  onSnapshotRecovered(replica: Replica, index: number): void;
  /** Proposals the core refused and reads that failed as dropped in one cycle. */
  onDropped(replica: Replica, proposalCount: number, readCount: number): void;
  /** A received message broke the protocol and was dropped (Peer.step's reason). */
  onRefused(replica: Replica, reason: string): void;
  onRemoved(replica: Replica): void;
  log(event: Record<string, unknown>): void;
  /** Test-only planted bug (src/engine/bugs.ts), or null. */
  readonly plantedBug: PlantedBug | null;
}

/** Maximum inbound messages queued per replica between engine cycles; more are dropped. */
export const MAX_INBOX_MESSAGES = 8192;
/** ReadIndex context horizon in ticks (engine.md §1.9). */
const READ_CTX_HORIZON_TICKS = 30;

/**
 * One replica of one shard on this NodeHost: its Raft core, state machine, log view and the
 * requests waiting on it. The engine drives it; it never schedules itself.
 */
export class Replica {
  readonly shardId: number;
  readonly replicaId: number;
  private inbox: Message[] = [];
  /** Engine tick up to which this replica's ticks were stepped (the rest wait: pendingTicks). */
  private tickedTo: number;
  private proposals: QueuedProposal[] = [];
  readonly pendingProposals: PendingProposals;
  readonly reads: PendingReads;
  private configChange: SingleRequest<ConfigChange> | null = null;
  private snapshotRequest: SingleRequest<SnapshotRequestInput> | null = null;
  private transferTarget = 0;
  private unreachable: number[] = [];
  private snapshotStatus: { replicaId: number; failed: boolean }[] = [];
  leaderId = 0;
  term = 0;
  lastSnapshotIndex: number;
  /** Applied index of the last failed automatic snapshot; the next try waits for new entries. */
  lastSnapshotAttemptIndex = 0;
  droppedInboxMessages = 0;
  /** Tick of the last refused message logged (-1: none yet), and refusals since, counted only. */
  refusalLoggedTick = -1;
  refusalsUnlogged = 0;
  stopped = false;

  constructor(
    readonly config: ReplicaConfig,
    readonly app: string,
    readonly peer: Peer,
    readonly logReader: LogReader,
    readonly rsm: StateMachineManager,
    readonly snapshotDir: SnapshotDir | null,
    private readonly host: ReplicaHost,
  ) {
    this.shardId = config.shardId;
    this.replicaId = config.replicaId;
    this.pendingProposals = new PendingProposals(config.maxPendingProposals);
    this.reads = new PendingReads(config.maxReadQueue, config.maxPendingReads);
    this.lastSnapshotIndex = logReader.snapshot()?.index ?? 0;
    this.tickedTo = host.tick();
  }

  /**
   * Engine ticks not stepped into the core yet. Counted from the engine's clock, not added one
   * by one: a quiesced idle replica is left out of the engine's per-tick work altogether
   * (Engine.onTick) and steps the ticks it missed with its next input.
   */
  get pendingTicks(): number {
    return this.host.tick() - this.tickedTo;
  }

  // ---- inputs (called between engine cycles) ----

  deliver(message: Message): boolean {
    if (this.inbox.length >= MAX_INBOX_MESSAGES) {
      this.droppedInboxMessages++;
      return false;
    }
    this.inbox.push(message);
    return true;
  }

  reportUnreachable(replicaId: number): void {
    if (this.unreachable.length < 1024 && !this.unreachable.includes(replicaId))
      this.unreachable.push(replicaId);
  }

  reportSnapshotStatus(replicaId: number, failed: boolean): void {
    if (this.snapshotStatus.length < 1024) this.snapshotStatus.push({ replicaId, failed });
  }

  /** Queues a proposal; throws systemBusy when a bound is reached. */
  propose(fields: Partial<Entry>, timeoutTicks: number): RequestState {
    if (this.proposals.length >= this.config.maxProposalQueue || !this.pendingProposals.hasRoom()) {
      throw new LongboatError("systemBusy", `shard ${this.shardId} has too many proposals in flight`);
    }
    if (this.config.maxInMemLogSizeBytes > 0 && this.peer.status().rateLimited) {
      throw new LongboatError("systemBusy", `shard ${this.shardId} is rate limited (in-memory log full)`);
    }
    const key = this.host.nextRequestKey();
    const state = new RequestState(key, this.host.tick() + timeoutTicks);
    this.proposals.push({ entry: makeEntry({ ...fields, ...this.tagOf(key) }), state });
    return state;
  }

  /** Queues a linearizable read; a null query only waits for the read index (membership reads). */
  read(query: Uint8Array | null, timeoutTicks: number): RequestState {
    const state = new RequestState(0, this.host.tick() + timeoutTicks);
    if (
      this.host.plantedBug === "stale-read" &&
      query !== null &&
      this.peer.status().leaderId === this.replicaId
    ) {
      state.complete(0, this.rsm.lookup(query), this.rsm.lastApplied()); // test-only: see src/engine/bugs.ts
      return state;
    }
    if (!this.reads.enqueue({ state, query })) {
      throw new LongboatError(
        "systemBusy",
        `shard ${this.shardId} has too many reads waiting (maxReadQueue per cycle, maxPendingReads in all)`,
      );
    }
    return state;
  }

  requestConfigChange(cc: ConfigChange, timeoutTicks: number): RequestState {
    if (this.configChange !== null) {
      throw new LongboatError("systemBusy", `shard ${this.shardId} already has a config change in flight`);
    }
    const state = new RequestState(this.host.nextRequestKey(), this.host.tick() + timeoutTicks);
    this.configChange = { state, input: cc, started: false };
    return state;
  }

  requestSnapshot(input: SnapshotRequestInput, timeoutTicks: number): RequestState {
    if (this.snapshotRequest !== null) {
      throw new LongboatError("systemBusy", `shard ${this.shardId} already has a snapshot request in flight`);
    }
    const state = new RequestState(this.host.nextRequestKey(), this.host.tick() + timeoutTicks);
    this.snapshotRequest = { state, input, started: false };
    return state;
  }

  requestLeaderTransfer(target: number): void {
    if (this.transferTarget !== 0) {
      throw new LongboatError("systemBusy", `shard ${this.shardId} already has a leader transfer queued`);
    }
    this.transferTarget = target;
  }

  queueDepths(): { proposals: number; reads: number; inbox: number } {
    return {
      proposals: this.proposals.length + this.pendingProposals.size,
      reads: this.reads.pendingCount,
      inbox: this.inbox.length,
    };
  }

  /** Nothing but ticks waits, and no request is pending on this replica. */
  isIdle(): boolean {
    return (
      this.inbox.length === 0 &&
      this.proposals.length === 0 &&
      this.pendingProposals.size === 0 &&
      this.reads.pendingCount === 0 &&
      this.configChange === null &&
      this.snapshotRequest === null &&
      this.transferTarget === 0 &&
      this.unreachable.length === 0 &&
      this.snapshotStatus.length === 0
    );
  }

  hasInput(): boolean {
    return (
      this.inbox.length > 0 ||
      this.pendingTicks > 0 ||
      this.proposals.length > 0 ||
      this.reads.queuedCount > 0 ||
      (this.configChange !== null && !this.configChange.started) ||
      (this.snapshotRequest !== null && !this.snapshotRequest.started) ||
      this.transferTarget !== 0 ||
      this.unreachable.length > 0 ||
      this.snapshotStatus.length > 0
    );
  }

  // ---- engine cycle, phase 1: step every input into the core ----

  stepInputs(): void {
    const now = this.host.tick();
    const ticks = now - this.tickedTo;
    this.tickedTo = now;
    if (ticks > 0) {
      this.peer.ticks(ticks);
      this.expire(now);
    }
    for (const id of this.unreachable) this.peer.reportUnreachable(id);
    this.unreachable = [];
    for (const s of this.snapshotStatus) this.peer.reportSnapshotStatus(s.replicaId, s.failed);
    this.snapshotStatus = [];
    const inbox = this.inbox;
    this.inbox = [];
    for (const m of inbox) {
      const refusal = this.peer.step(m);
      if (refusal !== null) this.host.onRefused(this, refusal);
    }
    this.stepProposals();
    this.stepReads(now);
    this.stepConfigChange();
    if (this.transferTarget !== 0) {
      this.peer.requestLeaderTransfer(this.transferTarget);
      this.transferTarget = 0;
    }
  }

  private stepProposals(): void {
    if (this.proposals.length === 0) return;
    const batch = this.proposals;
    this.proposals = [];
    const entries: Entry[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      this.pendingProposals.add(p.state);
      entries[i] = p.entry;
    }
    this.peer.propose(entries);
  }

  private stepReads(now: number): void {
    if (this.reads.queuedCount === 0) return;
    const ctx: ReadCtx = { low: this.host.randomNonZero(), high: now + READ_CTX_HORIZON_TICKS };
    this.reads.startBatch(ctx);
    this.peer.readIndex(ctx);
  }

  private stepConfigChange(): void {
    const cc = this.configChange;
    if (cc === null || cc.started) return;
    cc.started = true;
    this.peer.proposeConfigChange(cc.input, this.tagOf(cc.state.key));
  }

  private expire(now: number): void {
    this.pendingProposals.expire(now);
    this.reads.expire(now);
    if (this.configChange && this.configChange.state.deadlineTick <= now) {
      this.configChange.state.fail("timeout", "config change not applied within the deadline");
      this.configChange = null;
    }
    if (this.snapshotRequest && this.snapshotRequest.state.deadlineTick <= now) {
      this.snapshotRequest.state.fail("timeout", "snapshot not taken within the deadline");
      this.snapshotRequest = null;
    }
  }

  // ---- engine cycle, phase 6: apply what the update committed ----

  applyUpdate(update: Update): void {
    if (update.snapshot !== null) this.recoverSnapshot(update);
    if (update.leaderUpdate !== null)
      this.leaderChanged(update.leaderUpdate.leaderId, update.leaderUpdate.term);
    if (update.committedEntries.length > 0) this.applyEntries(update.committedEntries);
    for (const r of update.readyToReads) this.reads.ready(r.ctx, r.index);
    let droppedReads = 0;
    for (const ctx of update.droppedReadIndexes) {
      droppedReads += this.reads.dropped(ctx, `shard ${this.shardId} has no leader able to serve reads now`);
    }
    for (const e of update.droppedEntries) this.dropped(e);
    if (droppedReads > 0 || update.droppedEntries.length > 0)
      this.host.onDropped(this, update.droppedEntries.length, droppedReads);
    this.answerReads();
  }

  private recoverSnapshot(update: Update): void {
    const meta = update.snapshot!;
    this.rsm.recoverFromSnapshot(meta);
    this.peer.restoreRemotes(meta);
    this.lastSnapshotIndex = meta.index;
    if (meta.membership) this.host.onMembershipApplied(this, meta.membership);
    this.host.log({
      event: "snapshot-recovered",
      shard: this.shardId,
      replica: this.replicaId,
      index: meta.index,
    });
    this.host.onSnapshotRecovered(this, meta.index);
  }

  private leaderChanged(leaderId: number, term: number): void {
    const changed = leaderId !== this.leaderId || term !== this.term;
    this.leaderId = leaderId;
    this.term = term;
    if (!changed) return;
    // A read confirmed by a former leader stays valid; one still waiting for a confirmation
    // round would only time out, so it fails now and the client retries against the new leader.
    const dropped = this.reads.failUnconfirmed("dropped", `leader of shard ${this.shardId} changed`);
    if (dropped > 0) this.host.onDropped(this, 0, dropped);
    this.host.onLeaderChanged(this, leaderId, term);
  }

  private applyEntries(entries: Entry[]): void {
    const outcomes = this.rsm.apply(entries);
    for (const o of outcomes) this.completeOutcome(o);
  }

  private completeOutcome(o: ApplyOutcome): void {
    switch (o.kind) {
      case "noop":
        return;
      case "update": {
        this.takeProposal(o.tag)?.complete(o.result.value, o.result.data, o.index);
        return;
      }
      case "session-registered":
      case "session-unregistered":
        this.takeProposal(o.tag)?.complete(o.clientId, new Uint8Array(0), o.index);
        return;
      case "session-rejected":
        this.takeProposal(o.tag)?.fail("rejected", o.reason);
        return;
      case "config-change":
        this.configChangeApplied(o);
        return;
    }
  }

  private configChangeApplied(o: Extract<ApplyOutcome, { kind: "config-change" }>): void {
    if (o.accepted) {
      this.peer.applyConfigChange(o.cc);
      this.host.onMembershipApplied(this, this.rsm.membership());
    } else {
      this.peer.rejectConfigChange();
    }
    const pending = this.configChange;
    if (pending && this.isOwnRequest(o.tag, pending.state)) {
      this.configChange = null;
      if (o.accepted) pending.state.complete(o.index, new Uint8Array(0), o.index);
      else pending.state.fail("rejected", o.reason);
    }
    if (o.accepted && o.cc.type === 1 && o.cc.replicaId === this.replicaId) this.host.onRemoved(this);
  }

  private dropped(entry: Entry): void {
    const detail = `shard ${this.shardId} dropped the proposal (no leader, leader transfer or rate limit)`;
    const pending = this.configChange;
    if (pending && this.isOwnRequest(entry, pending.state)) {
      this.configChange = null;
      pending.state.fail("dropped", detail);
      return;
    }
    this.takeProposal(entry)?.fail("dropped", detail);
  }

  /** The tag of this replica's request key (raft.proto, Entry.proposer_epoch). */
  private tagOf(key: number): RequestTag {
    return { key, proposerId: this.replicaId, proposerEpoch: this.host.requestEpoch };
  }

  /**
   * The pending proposal an entry answers. Only an entry this replica proposed in this epoch
   * does: another replica's, or one an earlier incarnation proposed (replayed after a
   * restart), may carry the same key but never completes our request.
   */
  private takeProposal(tag: RequestTag): RequestState | undefined {
    if (tag.proposerId !== this.replicaId || tag.proposerEpoch !== this.host.requestEpoch) return undefined;
    return this.pendingProposals.take(tag.key);
  }

  private isOwnRequest(tag: RequestTag, state: RequestState): boolean {
    return answersRequest(tag, this.tagOf(state.key));
  }

  private answerReads(): void {
    const readable = this.reads.takeReadable(this.rsm.lastApplied());
    for (const r of readable) {
      try {
        const data = r.query === null ? new Uint8Array(0) : this.rsm.lookup(r.query);
        r.state.complete(0, data, this.rsm.lastApplied());
      } catch (error) {
        r.state.fail("rejected", `lookup failed: ${(error as Error).message}`);
      }
    }
  }

  // ---- snapshots ----

  /** True when an automatic or requested snapshot is due. */
  snapshotDue(): boolean {
    if (this.snapshotDir === null) return false;
    if (this.snapshotRequest !== null && !this.snapshotRequest.started) return true;
    const every = this.config.snapshotEntries;
    const since = Math.max(this.lastSnapshotIndex, this.lastSnapshotAttemptIndex);
    return every > 0 && this.rsm.lastApplied() - since >= every;
  }

  takeSnapshotRequest(): SingleRequest<SnapshotRequestInput> | null {
    const r = this.snapshotRequest;
    if (r === null || r.started) return null;
    r.started = true;
    return r;
  }

  /**
   * Answers the snapshot request `of` (taken by takeSnapshotRequest when the snapshot began);
   * nothing when it is null (an automatic snapshot) or no longer current (it timed out, or the
   * replica stopped, while the snapshot was being written).
   */
  finishSnapshotRequest(
    of: SingleRequest<SnapshotRequestInput> | null,
    result: { index: number } | { error: string; code: "rejected" | "aborted" },
  ): void {
    if (of === null || this.snapshotRequest !== of) return;
    this.snapshotRequest = null;
    if ("index" in result) of.state.complete(result.index, new Uint8Array(0), result.index);
    else of.state.fail(result.code, result.error);
  }

  // ---- stop ----

  /**
   * Ends every request at a stop. What never reached the Raft core is "dropped" (not applied,
   * safe to retry); what did is "terminated": it may still commit through another replica.
   */
  failAll(detail: string): void {
    this.pendingProposals.failAll("terminated", detail);
    const unsent = `${detail} (before the request left this host: not applied)`;
    for (const p of this.proposals) p.state.fail("dropped", unsent);
    this.proposals = [];
    this.reads.failAll("terminated", detail);
    const cc = this.configChange;
    cc?.state.fail(cc.started ? "terminated" : "dropped", cc.started ? detail : unsent);
    this.configChange = null;
    const snap = this.snapshotRequest;
    snap?.state.fail(snap.started ? "terminated" : "dropped", snap.started ? detail : unsent);
    this.snapshotRequest = null;
  }
}
