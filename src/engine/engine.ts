import type { Env, TimerHandle } from "../env.ts";
import type { FileSystem } from "../fs/filesystem.ts";
import { LogDBClosedError, LogDBCorruptError, LogDBIOError } from "../logdb/errors.ts";
import type { SnapshotFileCopy, SnapshotFileWriter, SnapshotImport } from "../logdb/snapshotfile.ts";
import type { LogDB, ReplicaUpdate } from "../logdb/types.ts";
import type { Update } from "../raft/update.ts";
import type { SnapshotRecoveryJob, StateMachineManager } from "../rsm/manager.ts";
import { type Membership, type Message, MessageType, type SnapshotMeta } from "../raft/types.ts";
import type { Registry, Transport, TransportHandler } from "../transport/types.ts";
import type { PlantedBug } from "./bugs.ts";
import { LongboatError } from "./errors.ts";
import { type EventBody, EventHub, type LeaderRole, membershipEvent } from "./events.ts";
import { ReplicaLeadership, StallGuard } from "./leadership.ts";
import { compactionTarget, type Replica, type ReplicaHost } from "./replica.ts";

/**
 * A quiesced replica whose leadership view may still change with time alone (a leader's lease
 * running out, a shard without a leader turning unavailable) is stepped at least this often
 * (in ticks); one whose view cannot is not stepped until its next input.
 */
export const QUIESCED_TICK_BATCH = 64;

/** One replica's Update on its way through the loop. */
interface Work {
  r: Replica;
  u: Update;
}

/** Payload bytes of a snapshot written per step between two engine iterations. */
export const SNAPSHOT_STEP_BYTES = 512 * 1024;

/** A snapshot being written between iterations (Engine.startSnapshot). */
interface SnapshotJob {
  r: Replica;
  request: ReturnType<Replica["takeSnapshotRequest"]>;
  applied: number;
  startedMs: number;
  /** With filePath; fileSizeBytes and checksum are set when it is recorded. */
  meta: SnapshotMeta;
  chunks: Iterator<Uint8Array>;
  writer: SnapshotFileWriter;
  /**
   * writing → syncing (the file's fsync under way) → durable → publishing (rename, the
   * directory's fsync under way) → published → recording (the log database) → done.
   */
  phase: "writing" | "syncing" | "durable" | "publishing" | "published" | "recording" | "done";
  cancelled: boolean;
}

/** Payload bytes of a snapshot recovered per step between two engine iterations (decoding costs more than writing). */
export const RECOVERY_STEP_BYTES = 128 * 1024;

/** A received snapshot being recovered between iterations (Engine.startRecovery). */
interface RecoveryWork {
  w: Work;
  job: SnapshotRecoveryJob;
}

/** One write of a batch: an Update that waits for it, or a hard state nobody waits for (w null). */
interface BatchItem {
  w: Work | null;
  update: ReplicaUpdate;
}

/** A batch handed to the log writer. */
interface SaveBatch {
  items: BatchItem[];
  startMs: number;
  entryCount: number;
}

/**
 * What an Update needs from the log writer before its messages leave and its entries apply:
 * - "sync": entries, a snapshot, or a new term or vote — what the messages promise (a vote, an
 *   append acknowledgement) must be durable first;
 * - "lazy": only the commit index moved. It is written in the next batch, in order with the
 *   replica's later writes, but nothing waits for it (etcd's MustSync): an entry known committed
 *   is durable on a quorum, so applying it and answering before the local commit index is on
 *   disk loses nothing. In order matters: a restart must never find an entry durable whose
 *   preceding commit index is not (docs/durability.md, "The commit index on disk");
 * - "none": nothing to write.
 */
function saveKind(r: Replica, u: Update): "sync" | "lazy" | "none" {
  if (u.entriesToSave.length > 0 || u.snapshot !== null) return "sync";
  if (u.state === null) return "none";
  const saved = r.logReader.hardState();
  return u.state.term !== saved.term || u.state.vote !== saved.vote ? "sync" : "lazy";
}

function toReplicaUpdate(u: Update): ReplicaUpdate {
  return {
    shardId: u.shardId,
    replicaId: u.replicaId,
    entries: u.entriesToSave,
    state: u.state,
    snapshot: u.snapshot,
  };
}

export interface EngineOptions {
  env: Env;
  logdb: LogDB;
  transport: Transport;
  registry: Registry;
  /** Milliseconds between two ticks. */
  rttMs: number;
  /** Where events go (delivered to listeners off the engine loop). Default: a hub of its own. */
  events?: EventHub;
  /**
   * Called synchronously inside the engine iteration with every event, before the hub gets it.
   * For the simulator only (it injects faults at exact points); a throw is logged and ignored.
   */
  engineListener?: (event: EventBody) => void;
  /** Election timeouts without a known leader before shardUnavailable. Default 3. */
  unavailableElectionTimeouts?: number;
  log: (event: Record<string, unknown>) => void;
  /** Called once when the engine stopped itself after an unrecoverable error (a failed fsync). */
  onFatal?: (error: Error) => void;
  /** Called after every batch the log writer made durable, with its time from hand-over to durable and its entry count (metrics). */
  onSave?: (durationMs: number, entryCount: number) => void;
  /** Called after every snapshot a replica took, with the time taking it (metrics). */
  onSnapshot?: (durationMs: number) => void;
  /** Where received snapshot files live (they are removed when not imported). */
  fs: FileSystem;
  /** Test-only: the simulator's planted bug (src/engine/bugs.ts); null in production. */
  plantedBug?: PlantedBug | null;
  /**
   * Simulator only: the virtual time each step of a snapshot write takes (a chunk written, the
   * fsync), so orderings only a slow snapshot produces get tested. Default: none (deferred).
   */
  snapshotStepLatencyMs?: () => number;
}

/** Counters the metrics endpoint and the benchmarks read. */
export interface EngineStats {
  iterations: number;
  savedBatches: number;
  savedEntries: number;
  saveMsTotal: number;
  sentMessages: number;
  droppedMessages: number;
  appliedEntries: number;
  elections: number;
  /** Messages a replica refused because they break the protocol (logged at most every few seconds). */
  refusedMessages: number;
  /** Replicas stopped because processing them threw (the host and its other replicas go on). */
  replicaFailures: number;
  /** Snapshots this host's replicas took, the bytes of their files, and the time taking them. */
  snapshotsCreated: number;
  snapshotBytesCreated: number;
  snapshotMsTotal: number;
}

/** A replica logs a refused message at most once per this many ticks; the others are counted. */
const REFUSAL_LOG_EVERY_TICKS = 50;

/**
 * The engine loop of one NodeHost (DESIGN.md, "The engine"). One iteration steps every replica
 * with work, sends the leaders' replication messages, persists every Update of every shard in
 * one LogDB transaction, sends the remaining messages, applies, and hands the Updates back.
 */
export class Engine implements TransportHandler, ReplicaHost {
  private readonly replicas = new Map<number, Replica>();
  private ready = new Set<Replica>();
  /**
   * Replicas in the per-tick work (onTick). A quiesced idle replica leaves it once nothing but
   * its input can change it, and is back with its next step (iterate, finishSaved): 10,000
   * quiesced shards cost the tick nothing (issue #16 item 5).
   */
  private readonly ticking = new Set<Replica>();
  /** Replicas that have known a leader: their "no leader" is logged at info (onLeaderChanged). */
  private readonly knewLeader = new WeakSet<Replica>();
  private tickCount = 0;
  private scheduled = false;
  private running = false;
  private stopped = false;
  private tickTimer: TimerHandle | null = null;
  /** The engine is stalled until this time (stall()). */
  private stalledUntilMs = 0;
  private keySeq = 0;
  /** Writes waiting for the writer to be idle (the next batch), in call order. */
  private batch: BatchItem[] = [];
  /** The batch the writer has, or null when it is idle. */
  private inflight: SaveBatch | null = null;
  /**
   * A batch of nothing but commit-index-only states may go to the writer on its own: set by the
   * tick when such a batch waited across it. Until then it waits for a write to ride with.
   */
  private lazyDue = false;
  /** Batches the writer finished, waiting for the loop. */
  private saved: { batch: SaveBatch; error: Error | null }[] = [];
  /** Replicas with an Update in `batch` or `inflight`. */
  private readonly saving = new Set<Replica>();
  /** Snapshots being written between iterations, one per replica at most. */
  private readonly snapshotJobs = new Map<Replica, SnapshotJob>();
  /** Replicas recovering a received snapshot: no Update, apply, read or snapshot until it ends. */
  private readonly recoveries = new Map<Replica, RecoveryWork>();
  /** Received snapshot files being verified and made durable (onSnapshotReceived), per replica. */
  private readonly imports = new Map<Replica, SnapshotImport>();
  /** Snapshot exports being copied (exportSnapshot): stop() removes their .tmp. */
  private readonly exports = new Set<SnapshotFileCopy>();
  /** Recoveries of replicas not started yet (recoverBeforeStart): stop() ends them. */
  private readonly startRecoveries = new Set<() => void>();
  /** shard → replica ids of it that applied their own removal on this host. */
  private readonly removedReplicas = new Map<number, Set<number>>();
  readonly events: EventHub;
  private readonly stallGuard: StallGuard;
  private readonly leadership = new Map<Replica, ReplicaLeadership>();
  private readonly unavailableTimeouts: number;
  /**
   * This engine's epoch, in [1, 2^53): a request is tagged (proposer replica id, epoch, key)
   * and only the entry carrying that whole tag completes it (raft.proto, Entry). Keys count
   * from 1 at every start, so the epoch is what keeps an entry an earlier incarnation proposed
   * — replayed from the log after a restart — from completing a request of this one; the
   * replica id keeps another replica's entries apart even when two hosts draw the same epoch.
   * Drawn as 26 + 27 bits because an Env's nextInt may carry only 32 bits of randomness: two
   * incarnations of one replica share an epoch with probability 2^-53.
   */
  readonly requestEpoch: number;
  fatalError: Error | null = null;
  readonly stats: EngineStats = {
    iterations: 0,
    savedBatches: 0,
    savedEntries: 0,
    saveMsTotal: 0,
    sentMessages: 0,
    droppedMessages: 0,
    appliedEntries: 0,
    elections: 0,
    refusedMessages: 0,
    replicaFailures: 0,
    snapshotsCreated: 0,
    snapshotBytesCreated: 0,
    snapshotMsTotal: 0,
  };

  /** Test-only planted bug (src/engine/bugs.ts), or null. */
  readonly plantedBug: PlantedBug | null;

  constructor(private readonly opts: EngineOptions) {
    this.requestEpoch = opts.env.nextInt(2 ** 26) * 2 ** 27 + opts.env.nextInt(2 ** 27 - 1) + 1;
    this.events =
      opts.events ??
      new EventHub(opts.env, (name, error) =>
        this.log({ level: "warn", event: "listener-error", listener: name, error: String(error) }),
      );
    this.stallGuard = new StallGuard(opts.rttMs);
    this.unavailableTimeouts = opts.unavailableElectionTimeouts ?? 3;
    if (!Number.isSafeInteger(this.unavailableTimeouts) || this.unavailableTimeouts < 1) {
      throw new LongboatError(
        "invalidOption",
        `unavailableElectionTimeouts must be a positive integer, got ${opts.unavailableElectionTimeouts}`,
      );
    }
    this.plantedBug = opts.plantedBug ?? null;
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.onTick();
      this.tickTimer = this.opts.env.setTimer(this.opts.rttMs, loop);
    };
    this.tickTimer = this.opts.env.setTimer(this.opts.rttMs, loop);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.tickTimer?.cancel();
    for (const job of [...this.snapshotJobs.values()]) this.cancelSnapshot(job);
    for (const { job } of this.recoveries.values()) job.abort();
    this.recoveries.clear();
    for (const end of [...this.startRecoveries]) end();
    for (const copy of this.exports) copy.abort();
    this.exports.clear();
    for (const imp of this.imports.values()) imp.abort();
    this.imports.clear();
    for (const r of this.replicas.values()) r.failAll("the NodeHost is stopping");
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Simulator hook: the engine stalls for ms, as a stopped process (SIGSTOP, a long GC pause)
   * or an apply that takes that long would stall it: no tick is counted and no iteration
   * runs until it ends; requests and inbound messages queue. An iteration under way finishes.
   */
  stall(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError(`Engine.stall: ms must be finite and ≥ 0, got ${ms}`);
    const untilMs = this.opts.env.nowMs() + ms;
    if (untilMs <= this.stalledUntilMs) return;
    this.stalledUntilMs = untilMs;
    this.opts.env.setTimer(ms, () => {
      if (!this.stalled) this.schedule();
    });
  }

  private get stalled(): boolean {
    return this.opts.env.nowMs() < this.stalledUntilMs;
  }

  // ---- replicas ----

  addReplica(replica: Replica): void {
    if (this.replicas.has(replica.shardId)) {
      throw new LongboatError("shardAlreadyExist", `shard ${replica.shardId} is already running here`);
    }
    this.replicas.set(replica.shardId, replica);
    this.ticking.add(replica);
    this.leadership.set(
      replica,
      new ReplicaLeadership(replica.shardId, replica.replicaId, {
        leaseMs: replica.config.electionRtt * this.opts.rttMs,
        electionRtt: replica.config.electionRtt,
        unavailableTimeouts: this.unavailableTimeouts,
        startTick: this.tickCount,
      }),
    );
    this.emit({ kind: "replicaReady", shardId: replica.shardId, replicaId: replica.replicaId });
    this.markReady(replica);
  }

  removeReplica(shardId: number, reason: string): Replica | undefined {
    const replica = this.replicas.get(shardId);
    if (!replica) return undefined;
    this.replicas.delete(shardId);
    this.ready.delete(replica);
    this.ticking.delete(replica);
    this.saving.delete(replica);
    const job = this.snapshotJobs.get(replica);
    if (job !== undefined) this.cancelSnapshot(job);
    this.recoveries.get(replica)?.job.abort();
    this.recoveries.delete(replica);
    replica.stopped = true;
    replica.failAll(`replica ${replica.replicaId} of shard ${shardId} stopped: ${reason}`);
    this.opts.registry.removeShard(shardId);
    const none = this.leadership.get(replica)?.stop();
    this.leadership.delete(replica);
    if (none) this.emit(none);
    this.emit({ kind: "replicaStopped", shardId, replicaId: replica.replicaId, reason });
    return replica;
  }

  /** Requests and messages waiting in every replica's queues (metrics). */
  queueDepths(): { proposals: number; reads: number; inbox: number } {
    const depth = { proposals: 0, reads: 0, inbox: 0 };
    for (const r of this.replicas.values()) {
      const q = r.queueDepths();
      depth.proposals += q.proposals;
      depth.reads += q.reads;
      depth.inbox += q.inbox;
    }
    return depth;
  }

  getReplica(shardId: number): Replica | undefined {
    return this.replicas.get(shardId);
  }

  allReplicas(): IterableIterator<Replica> {
    return this.replicas.values();
  }

  markReady(replica: Replica): void {
    if (this.stopped || replica.stopped) return;
    this.ready.add(replica);
    this.schedule();
  }

  // ---- ReplicaHost ----

  tick(): number {
    return this.tickCount;
  }

  /** Advances the logical clock by one tick for every replica (the timer calls it every rttMs). */
  onTick(): void {
    if (this.stalled) return;
    this.stallGuard.onTick(this.opts.env.nowMs());
    this.tickCount++;
    const skipQuiesced = this.tickCount % QUIESCED_TICK_BATCH !== 0;
    for (const r of this.ticking) {
      // A quiesced replica with nothing pending only counts ticks (Raft.quiescedTick); they are
      // counted from the engine's clock (Replica.pendingTicks) and stepped at once with its next
      // input. It leaves the per-tick work when nothing but input can change its leadership
      // view, else it is stepped on every QUIESCED_TICK_BATCH-th tick until that holds.
      if (r.peer.isQuiesced() && r.isIdle() && !this.saving.has(r)) {
        if (!this.leadership.get(r)?.changesWithTime(r.peer.leadershipFacts())) {
          this.ticking.delete(r);
          continue;
        }
        if (skipQuiesced) continue;
      }
      this.ready.add(r);
    }
    if (this.batch.length > 0) {
      this.lazyDue = true;
      if (!this.running) this.submitBatch();
    }
    this.schedule();
  }

  /** Puts a replica stepped now back in the per-tick work (onTick), if it was left out. */
  private resumeTicking(r: Replica): void {
    if (this.ticking.has(r) || this.replicas.get(r.shardId) !== r) return;
    this.ticking.add(r);
    this.leadership.get(r)?.resumed(this.tickCount);
  }

  /** Keys of this engine's requests: 1, 2, 3… (never reused within an epoch; 2^53 will not be reached). */
  nextRequestKey(): number {
    this.keySeq++;
    if (!Number.isSafeInteger(this.keySeq))
      throw new Error(`request key sequence exhausted at ${this.keySeq}`);
    return this.keySeq;
  }

  randomNonZero(): number {
    return 1 + this.opts.env.nextInt(2 ** 52);
  }

  onMembershipApplied(replica: Replica, membership: Membership): void {
    const registry = this.opts.registry;
    for (const list of [membership.addresses, membership.nonVotings, membership.witnesses]) {
      for (const m of list) registry.add(replica.shardId, m.replicaId, m.address);
    }
    for (const id of membership.removed) registry.remove(replica.shardId, id);
    if (this.wantsEvent("membershipChanged"))
      this.emit(membershipEvent(replica.shardId, replica.replicaId, membership));
  }

  onLeaderChanged(replica: Replica, leaderId: number, term: number): void {
    if (leaderId === replica.replicaId) this.stats.elections++;
    // "No leader" is news once a leader was known; before the first (every shard at start-up,
    // while it elects one) it is noise, logged at debug. The event goes out either way.
    const lost = leaderId === 0 && this.knewLeader.has(replica);
    if (leaderId !== 0) this.knewLeader.add(replica);
    this.log({
      level: leaderId !== 0 || lost ? "info" : "debug",
      event: "leader-updated",
      shard: replica.shardId,
      replica: replica.replicaId,
      leaderId,
      term,
    });
    this.emit({
      kind: "leaderUpdated",
      shardId: replica.shardId,
      replicaId: replica.replicaId,
      leaderId,
      term,
    });
  }

  onSnapshotSaved(replica: Replica, index: number): void {
    this.emit({ kind: "snapshotCreated", shardId: replica.shardId, replicaId: replica.replicaId, index });
  }

  onRefused(replica: Replica, reason: string): void {
    this.stats.refusedMessages++;
    if (
      replica.refusalLoggedTick >= 0 &&
      this.tickCount - replica.refusalLoggedTick < REFUSAL_LOG_EVERY_TICKS
    ) {
      replica.refusalsUnlogged++;
      return;
    }
    this.log({
      level: "warn",
      event: "message-refused",
      shard: replica.shardId,
      replica: replica.replicaId,
      reason,
      refusedSinceLastLog: replica.refusalsUnlogged,
    });
    replica.refusalLoggedTick = this.tickCount;
    replica.refusalsUnlogged = 0;
  }

  /**
   * Runs one replica's part of a loop turn. A throw stops that replica — its requests fail, its
   * data stays on disk — and never the host: a state machine's bug, or a committed change this
   * replica cannot follow, must not take the other shards down. (Persisting is not guarded: a
   * failed write stops the engine, as the state it would promise is not on disk.)
   */
  private guard(r: Replica, phase: string, fn: () => void): boolean {
    if (r.stopped) return false;
    try {
      fn();
      return true;
    } catch (error) {
      // The log database failing is the host's failure, not this replica's: fatal, as a failed
      // write is (every replica shares the disk; what it would serve next cannot be trusted).
      if (isStorageFailure(error)) throw error;
      this.replicaFailed(r, phase, error);
      return false;
    }
  }

  private replicaFailed(r: Replica, phase: string, error: unknown): void {
    r.stopped = true;
    this.stats.replicaFailures++;
    const message = (error as Error)?.message ?? String(error);
    this.log({
      level: "error",
      event: "replica-failed",
      shard: r.shardId,
      replica: r.replicaId,
      phase,
      error: (error as Error)?.stack ?? String(error),
    });
    const reason = `failed while ${phase}: ${message} (its data stays on disk; restart it to retry)`;
    this.opts.env.defer(() => {
      if (this.replicas.get(r.shardId) !== r) return;
      this.removeReplica(r.shardId, reason);
      try {
        r.rsm.close();
      } catch {
        // closing a failed state machine may fail too; the replica is gone either way
      }
    });
  }

  onSnapshotRecovered(replica: Replica, index: number): void {
    this.emit({ kind: "snapshotRecovered", shardId: replica.shardId, replicaId: replica.replicaId, index });
  }

  onDropped(replica: Replica, proposalCount: number, readCount: number): void {
    const base = { shardId: replica.shardId, replicaId: replica.replicaId };
    if (proposalCount > 0) this.emit({ kind: "proposalDropped", ...base, count: proposalCount });
    if (readCount > 0) this.emit({ kind: "readDropped", ...base, count: readCount });
  }

  onRemoved(replica: Replica): void {
    // The replica applied its own removal: it stops after this cycle (never mid-iteration).
    const ids = this.removedReplicas.get(replica.shardId);
    if (ids) ids.add(replica.replicaId);
    else this.removedReplicas.set(replica.shardId, new Set([replica.replicaId]));
    this.opts.env.defer(() => this.removeReplica(replica.shardId, "removed from the shard's membership"));
  }

  /**
   * True when this host's replica replicaId of shardId (any replica of it, when replicaId is
   * not given) applied its own removal: that id never comes back. Another replica id of the
   * shard may start here later (a drummer places a new replica on a host it left).
   */
  wasRemoved(shardId: number, replicaId?: number): boolean {
    const ids = this.removedReplicas.get(shardId);
    return ids !== undefined && (replicaId === undefined || ids.has(replicaId));
  }

  log(event: Record<string, unknown>): void {
    this.opts.log(event);
  }

  // ---- events ----

  private wantsEvent(kind: EventBody["kind"]): boolean {
    return this.opts.engineListener !== undefined || this.events.wants(kind);
  }

  /** Hands an event to the simulator's in-loop listener, if any, and to the hub. */
  private emit(event: EventBody): void {
    if (this.opts.engineListener) {
      try {
        this.opts.engineListener(event);
      } catch (error) {
        this.log({ level: "warn", event: "listener-error", listener: "engine", error: String(error) });
      }
    }
    this.events.publish(event);
  }

  /** The leadership view of a replica as last reported (none when it is not running). */
  leaderRole(r: Replica): { role: LeaderRole; term: number; leaderId: number } {
    return this.leadership.get(r)?.reported ?? { role: "none", term: 0, leaderId: 0 };
  }

  /** Re-evaluates the leadership view of a replica (leadership.ts) and publishes what changed. */
  private evaluateLeadership(r: Replica): void {
    const view = this.leadership.get(r);
    if (view === undefined) return;
    const facts = r.peer.leadershipFacts();
    const role = view.evaluate(facts, this.opts.env.nowMs());
    if (role !== null) this.emit(role);
    const availability = view.availability(facts, this.tickCount);
    if (availability !== null) this.emit(availability);
  }

  // ---- TransportHandler ----

  onMessages(messages: Message[], sourceAddress: string): void {
    const nowMs = this.opts.env.nowMs();
    const renews = this.stallGuard.accepts(nowMs);
    for (const m of messages) {
      const r = this.replicas.get(m.shardId);
      if (!r || r.replicaId !== m.to) {
        this.stats.droppedMessages++;
        continue;
      }
      if (renews && (m.type === MessageType.ReplicateResp || m.type === MessageType.HeartbeatResp))
        this.leadership.get(r)?.noteContact(m.from, m.term, nowMs);
      // (The transport refuses a sender id of 0; should one get here, it is not remembered.)
      if (m.from > 0 && this.opts.registry.resolve(m.shardId, m.from) === undefined) {
        this.opts.registry.add(m.shardId, m.from, sourceAddress);
      }
      if (r.deliver(m)) this.ready.add(r);
      else this.stats.droppedMessages++;
    }
    this.schedule();
  }

  onUnreachable(shardId: number, replicaId: number): void {
    const r = this.replicas.get(shardId);
    if (!r) return;
    r.reportUnreachable(replicaId);
    this.markReady(r);
  }

  onSnapshotStatus(shardId: number, replicaId: number, failed: boolean): void {
    const r = this.replicas.get(shardId);
    if (!r) return;
    r.reportSnapshotStatus(replicaId, failed);
    this.markReady(r);
  }

  onSnapshotReceived(message: Message): void {
    const meta = message.snapshot;
    const r = this.replicas.get(message.shardId);
    if (!meta) return;
    if (!r || r.replicaId !== message.to || r.snapshotDir === null) {
      this.opts.fs.remove(meta.filePath);
      return;
    }
    const importFailed = (error: unknown) => {
      this.log({
        level: "warn",
        event: "snapshot-import-failed",
        shard: message.shardId,
        error: String(error),
      });
      this.opts.fs.remove(meta.filePath);
    };
    // One import per replica at a time: the leader sends again if this one is dropped.
    if (this.imports.has(r)) {
      importFailed(new Error(`another snapshot for replica ${r.replicaId} is being imported`));
      return;
    }
    let imp: SnapshotImport;
    try {
      imp = r.snapshotDir.beginImport(meta.filePath);
    } catch (error) {
      importFailed(error);
      return;
    }
    this.imports.set(r, imp);
    const gone = () => this.stopped || r.stopped || this.replicas.get(r.shardId) !== r;
    // Verified RECOVERY_STEP_BYTES per step between iterations, then made durable off the
    // thread where the file system can (issue #16 item 4); only then is it delivered.
    this.runInSteps({
      abandoned: () => {
        if (this.imports.get(r) !== imp) return true;
        if (!gone()) return false;
        this.imports.delete(r);
        imp.abort();
        this.opts.fs.remove(meta.filePath);
        return true;
      },
      step: () => imp.step(RECOVERY_STEP_BYTES),
      failed: (error) => {
        this.imports.delete(r);
        importFailed(error);
      },
      done: () =>
        imp.publish((error, imported) => {
          if (this.imports.get(r) === imp) this.imports.delete(r);
          if (error !== null || imported === null) {
            importFailed(error);
            return;
          }
          if (gone()) return; // durable in the replica's directory; a restart's SnapshotDir keeps or drops it
          message.snapshot = { ...meta, filePath: imported.filePath };
          this.emit({
            kind: "snapshotReceived",
            shardId: r.shardId,
            replicaId: r.replicaId,
            index: meta.index,
            from: message.from,
          });
          if (r.deliver(message)) this.markReady(r);
        }),
    });
  }

  // ---- the loop ----

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.opts.env.defer(() => {
      this.scheduled = false;
      this.runIteration();
    });
  }

  /** One engine iteration; public so the simulator can drive the engine step by step. */
  runIteration(): void {
    if (this.stopped || this.running || this.stalled) return;
    if (this.ready.size === 0 && this.saved.length === 0) return;
    this.running = true;
    try {
      this.finishSaved();
      if (this.ready.size > 0) this.iterate();
      // One flush per turn: what finishSaved released and what iterate produced leave together,
      // one frame per peer host instead of one per phase (at 48 shards, most of a turn's
      // per-message cost was the transport's write per frame).
      this.opts.transport.flush();
      this.submitBatch();
    } catch (error) {
      this.fatal(error as Error);
    } finally {
      this.running = false;
    }
    if (this.ready.size > 0 || this.saved.length > 0) this.schedule();
  }

  /**
   * Steps every ready replica and collects the Updates of those not waiting for the writer. An
   * Update with something to persist joins the next batch; one without is finished at once.
   */
  private iterate(): void {
    this.stats.iterations++;
    const active = [...this.ready];
    this.ready = new Set();
    for (const r of active) if (!r.stopped) this.resumeTicking(r);
    const toSave: Work[] = [];
    const now: Work[] = [];
    // A replica whose Update is with the writer still steps its inputs (proposals append to its
    // log, messages are answered into its next Update), but gives no Update until that one is
    // durable and handed back: its entries would be handed out twice.
    for (const r of active) this.guard(r, "stepping its inputs", () => r.stepInputs());
    for (const r of active) {
      if (r.stopped || this.recoveries.has(r)) continue;
      if (this.saving.has(r)) {
        // Its heartbeats and their answers leave now, not after the writer's round (Peer.isFast).
        this.guard(r, "sending what need not wait for the writer", () => {
          for (const m of r.peer.takeFastMessages()) this.send(m);
        });
        continue;
      }
      let u: Update | null = null;
      this.guard(r, "building its update", () => {
        if (r.peer.hasUpdate(true)) u = r.peer.getUpdate(true, r.rsm.lastApplied());
      });
      if (u === null) continue;
      const w = { r, u };
      const kind = saveKind(r, w.u);
      if (kind === "sync") toSave.push(w);
      else now.push(w);
      if (kind === "lazy") this.queueLazyState(w);
    }
    // Leaders' replication may leave before the local fsync (Raft thesis §10.2.1).
    for (const { u } of toSave) for (const m of u.fastMessages) this.send(m);
    for (const { u } of now) for (const m of u.fastMessages) this.send(m);
    if (this.plantedBug === "early-ack") {
      // test-only (src/engine/bugs.ts): votes and acknowledgements leave before their fsync.
      for (const { u } of toSave) for (const m of u.messages) this.send(m);
      for (const w of toSave) w.u.messages = [];
    }
    for (const w of toSave) {
      this.saving.add(w.r);
      this.batch.push({ w, update: toReplicaUpdate(w.u) });
    }
    // To the writer before the applies and the leadership pass below: it is idle now when the
    // batch it had was just finished (finishSaved), and these need nothing from it.
    this.submitBatch();
    this.finish(now);
    for (const r of active) this.guard(r, "evaluating its leadership", () => this.evaluateLeadership(r));
    for (const r of active) {
      if (r.stopped || this.saving.has(r) || this.recoveries.has(r)) continue;
      this.guard(r, "taking a snapshot", () => {
        if (!this.snapshotJobs.has(r) && r.snapshotDue()) this.startSnapshot(r);
        if (r.hasInput() || r.peer.hasUpdate(true)) this.ready.add(r);
      });
    }
  }

  /**
   * Hands the accumulated batch to the log writer when it is idle (double buffering: one batch
   * syncs while the next accumulates). Called at the end of each loop turn, after the finished
   * batch's replicas gave their next Updates, so every replica with work is in every batch
   * (handing the next batch over before that made each busy replica skip every other batch).
   * Its done only queues the result: the engine loop picks it up (finishSaved), so a stalled
   * engine stays stalled and nothing runs re-entrantly.
   */
  private submitBatch(): void {
    if (this.inflight !== null || this.batch.length === 0) return;
    // Commit-index-only states (queueLazyState) wait for a write or for the next tick: handed
    // over alone, their fsync occupied the writer when the next proposal came (at concurrency 1,
    // every write waited for the previous write's commit index: two leader fsyncs per write).
    if (!this.lazyDue && this.batch.every((i) => i.w === null)) return;
    this.lazyDue = false;
    const items = this.batch;
    this.batch = [];
    const updates = items.map((i) => i.update);
    const startMs = this.opts.env.nowMs();
    const batch = { items, startMs, entryCount: updates.reduce((n, u) => n + u.entries.length, 0) };
    this.inflight = batch;
    this.opts.logdb.saveUpdatesAsync(updates, (error) => {
      if (this.stopped || this.inflight !== batch) return;
      this.saved.push({ batch, error });
      this.schedule();
    });
  }

  /**
   * The writer made a batch durable: its messages leave (they promise what is now durable), its
   * entries are applied and its Updates handed back; the loop turn then collects their next
   * Updates into the waiting batch and hands it over. A failed write stops the engine (the
   * state it would promise is not on disk).
   */
  private finishSaved(): void {
    while (this.saved.length > 0) {
      const { batch, error } = this.saved.shift()!;
      this.inflight = null;
      if (error !== null) throw error;
      const durationMs = this.opts.env.nowMs() - batch.startMs;
      this.stats.saveMsTotal += durationMs;
      this.stats.savedBatches++;
      this.stats.savedEntries += batch.entryCount;
      this.opts.onSave?.(durationMs, batch.entryCount);
      const work: Work[] = [];
      for (const i of batch.items) if (i.w !== null) work.push(i.w);
      for (const { r, u } of work) {
        this.guard(r, "recording its saved update", () => {
          if (u.snapshot !== null) r.logReader.applySnapshot(u.snapshot);
          if (u.entriesToSave.length > 0) r.logReader.append(u.entriesToSave);
          if (u.state !== null) r.logReader.setState(u.state);
        });
      }
      for (const { r } of work) this.saving.delete(r);
      // A snapshot file made durable while the replica's Update was with the writer is recorded now.
      for (const { r } of work) {
        const job = this.snapshotJobs.get(r);
        if (job !== undefined) this.recordSnapshot(job);
      }
      const live = work.filter(({ r }) => !r.stopped);
      for (const { r } of live) this.resumeTicking(r);
      this.finish(live);
      for (const { r } of live) {
        this.guard(r, "taking a snapshot", () => {
          this.evaluateLeadership(r);
          if (!this.snapshotJobs.has(r) && !this.recoveries.has(r) && r.snapshotDue()) this.startSnapshot(r);
          if (r.hasInput() || r.peer.hasUpdate(true)) this.ready.add(r);
        });
      }
    }
  }

  /**
   * A commit-index-only hard state: into the next batch, in order with the replica's later
   * writes, waited for by nothing. (Planted bug "skip-commit-write": not written at all, so a
   * later entry can be durable while the commit index before it is not.)
   */
  private queueLazyState(w: Work): void {
    const state = w.u.state as NonNullable<Update["state"]>;
    if (this.plantedBug === "skip-commit-write") return; // test-only: see src/engine/bugs.ts
    w.r.logReader.setState(state);
    this.batch.push({
      w: null,
      update: { shardId: w.u.shardId, replicaId: w.u.replicaId, entries: [], state, snapshot: null },
    });
  }

  /** Sends what waited for durability, applies, and hands the Updates back to the cores. */
  private finish(work: Work[]): void {
    if (work.length === 0) return;
    // Votes and acknowledgements promise durable state: only now may they leave.
    for (const { u } of work) for (const m of u.messages) this.send(m);
    // A received snapshot is recovered in steps; its Update is applied and handed back after.
    const applying = work.filter((w) => w.u.snapshot === null || !this.startRecovery(w));
    for (const { r, u } of applying) {
      if (this.guard(r, "applying committed entries", () => r.applyUpdate(u)))
        this.stats.appliedEntries += u.committedEntries.length;
    }
    for (const { r, u } of applying) this.guard(r, "handing its update back", () => r.peer.commitUpdate(u));
  }

  /**
   * Recovers the snapshot an Update carries in steps (issue #16 item 4): RECOVERY_STEP_BYTES of
   * the file read and decoded per step, between iterations. The replica gives no Update, applies
   * nothing, answers no read and takes no snapshot until the last step commits the state and
   * applies and hands back the Update (its messages have left: the snapshot is recorded). The
   * record is durable, so a crash meanwhile recovers the same snapshot again at the next start.
   * False when the recovery is done at once (no file to read, a bad file: applyUpdate meets it).
   */
  private startRecovery(w: Work): boolean {
    let job: SnapshotRecoveryJob | null = null;
    try {
      job = w.r.rsm.beginRecovery(w.u.snapshot!);
    } catch {
      return false; // recoverFromSnapshot in applyUpdate meets the same error, and the replica fails
    }
    if (job === null) return false;
    const work: RecoveryWork = { w, job };
    const { r, u } = w;
    this.recoveries.set(r, work);
    const finished = () => {
      this.recoveries.delete(r);
      if (this.guard(r, "applying committed entries", () => r.applyUpdate(u)))
        this.stats.appliedEntries += u.committedEntries.length;
      this.guard(r, "handing its update back", () => r.peer.commitUpdate(u));
      this.markReady(r);
    };
    this.runInSteps({
      abandoned: () => {
        if (this.recoveries.get(r) !== work) return true;
        if (!this.stopped && !r.stopped) return false;
        this.recoveries.delete(r);
        job.abort();
        return true;
      },
      step: () => job.step(RECOVERY_STEP_BYTES),
      done: finished,
      // The job is aborted: recoverFromSnapshot in applyUpdate reads the file at once and fails the replica.
      failed: finished,
    });
    return true;
  }

  /**
   * Recovers rsm from the snapshot meta names in steps before its replica starts (NodeHost
   * startReplica): the same steps as a received snapshot's, so a large one does not stall the
   * host's other shards. Resolves once recovered; rejects on a bad file or a stopped engine.
   */
  recoverBeforeStart(rsm: StateMachineManager, meta: SnapshotMeta): Promise<void> {
    const job = rsm.beginRecovery(meta);
    if (job === null) {
      rsm.recoverFromSnapshot(meta);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      let ended = false;
      const end = (error: unknown) => {
        if (ended) return;
        ended = true;
        this.startRecoveries.delete(stop);
        if (error === null) {
          resolve();
          return;
        }
        job.abort();
        reject(error);
      };
      const stop = () =>
        end(new LongboatError("closed", "the NodeHost stopped while a replica recovered its snapshot"));
      this.startRecoveries.add(stop);
      this.runInSteps({
        abandoned: () => {
          if (!ended && this.stopped) stop();
          return ended;
        },
        step: () => job.step(RECOVERY_STEP_BYTES),
        done: () => {
          try {
            rsm.recoverFromSnapshot(meta);
          } catch (error) {
            end(error);
            return;
          }
          end(null);
        },
        failed: end,
      });
    });
  }

  private send(m: Message): void {
    const ok =
      m.type === MessageType.InstallSnapshot
        ? this.opts.transport.sendSnapshot(m)
        : this.opts.transport.send(m);
    if (ok) {
      this.stats.sentMessages++;
      return;
    }
    this.stats.droppedMessages++;
    const r = this.replicas.get(m.shardId);
    // A snapshot refused at once gets no status from the transport: report it failed, or the
    // core would wait in its Snapshot state for ever (sim seeds 387, 712, 742).
    if (m.type === MessageType.InstallSnapshot) r?.reportSnapshotStatus(m.to, true);
    r?.reportUnreachable(m.to);
  }

  /**
   * Starts a snapshot of r (issue #16 item 4: off the loop). On the loop, only what must be
   * consistent: the state machine's point-in-time capture, sessions and membership
   * (StateMachineManager.beginSnapshot). The file is then written SNAPSHOT_STEP_BYTES at a time
   * between iterations (stepSnapshot), fsynced off the thread where the file system can
   * (syncDataAsync), published (rename, fsync of the directory), and only then recorded in the
   * log database (recordSnapshot); compaction and the requester's answer wait for that record
   * to be durable. The replica takes no other snapshot meanwhile and goes on serving.
   */
  private startSnapshot(r: Replica): void {
    const request = r.takeSnapshotRequest();
    const applied = r.rsm.lastApplied();
    if (applied <= r.lastSnapshotIndex) {
      r.finishSnapshotRequest(request, {
        code: "rejected",
        error: `nothing applied since the snapshot at index ${r.lastSnapshotIndex}`,
      });
      return;
    }
    const startedMs = this.opts.env.nowMs();
    let job: SnapshotJob;
    try {
      // Full even for an on-disk machine: the file may be streamed to a follower that has
      // nothing (a metadata-only snapshot could not catch it up).
      const { meta, chunks } = r.rsm.beginSnapshot({ full: true });
      if (meta.term === 0) meta.term = r.logReader.term(meta.index) ?? 0;
      const { writer, filePath } = r.snapshotDir!.begin(meta);
      job = {
        r,
        request,
        applied,
        startedMs,
        meta: { ...meta, filePath },
        chunks,
        writer,
        phase: "writing",
        cancelled: false,
      };
    } catch (error) {
      this.snapshotFailed(r, request, applied, error);
      return;
    }
    this.snapshotJobs.set(r, job);
    this.afterSnapshotLatency(() => this.stepSnapshot(job));
  }

  /** True while r writes a snapshot (it takes no other). */
  snapshotInFlight(r: Replica): boolean {
    return this.snapshotJobs.has(r);
  }

  /** Runs fn between iterations: at once (deferred), or after the simulator's modelled latency. */
  private afterSnapshotLatency(fn: () => void): void {
    const ms = this.opts.snapshotStepLatencyMs?.() ?? 0;
    if (ms > 0) this.opts.env.setTimer(ms, fn);
    else this.opts.env.defer(fn);
  }

  /**
   * Runs a job in steps between engine iterations (issue #16 item 4: a recovery, an import or an
   * export of a large snapshot must not stall the host's other shards), one step after each
   * afterSnapshotLatency. Before each step `abandoned` says whether the job was given up (the
   * engine or its replica stopped, or the job was replaced) and does its own clean-up; `step`
   * returns true on the last step, which ends the job with `done`; a throw ends it with `failed`.
   */
  private runInSteps(job: {
    abandoned(): boolean;
    step(): boolean;
    done(): void;
    failed(error: unknown): void;
  }): void {
    const next = () => {
      if (job.abandoned()) return;
      let last: boolean;
      try {
        last = job.step();
      } catch (error) {
        job.failed(error);
        return;
      }
      if (last) job.done();
      else this.afterSnapshotLatency(next);
    };
    this.afterSnapshotLatency(next);
  }

  /** A job whose replica or host went away: its file is abandoned (the .tmp removed). */
  private snapshotGone(job: SnapshotJob): boolean {
    if (!job.cancelled && !this.stopped && !job.r.stopped) return false;
    this.cancelSnapshot(job);
    return true;
  }

  /** Stops a job; the writer is closed at once unless an fsync of it is under way (then after). */
  private cancelSnapshot(job: SnapshotJob): void {
    job.cancelled = true;
    if (this.snapshotJobs.get(job.r) === job) this.snapshotJobs.delete(job.r);
    if (job.phase !== "writing" && job.phase !== "durable") return;
    job.phase = "done";
    try {
      job.writer.abort();
    } catch {
      // the .tmp is removed when the snapshot directory is next opened
    }
  }

  /**
   * Writes up to SNAPSHOT_STEP_BYTES of the payload (less when the machine yields an empty
   * chunk, its way to end a step); at its end, the trailer and the fsync.
   */
  private stepSnapshot(job: SnapshotJob): void {
    if (this.snapshotGone(job)) return;
    try {
      for (let bytes = 0; bytes < SNAPSHOT_STEP_BYTES; ) {
        const c = job.chunks.next();
        if (c.done) {
          job.writer.endData();
          this.syncSnapshot(job);
          return;
        }
        // An empty chunk is the machine pausing its own work (the kv's sort in slices): the step ends.
        if (c.value.byteLength === 0) break;
        job.writer.put(c.value);
        bytes += c.value.byteLength;
      }
    } catch (error) {
      this.snapshotJobFailed(job, error);
      return;
    }
    this.afterSnapshotLatency(() => this.stepSnapshot(job));
  }

  private syncSnapshot(job: SnapshotJob): void {
    job.phase = "syncing";
    const synced = (error: Error | null) => {
      job.phase = "durable";
      if (this.snapshotGone(job)) return;
      if (error !== null) this.snapshotJobFailed(job, error);
      else this.recordSnapshot(job);
    };
    const async = job.writer.syncDataAsync((error) => synced(error));
    if (async) return;
    let error: Error | null = null;
    try {
      job.writer.syncData();
    } catch (e) {
      error = e as Error;
    }
    this.afterSnapshotLatency(() => synced(error));
  }

  /**
   * The file's data is durable: publish it and record it in the log database. Waits while the
   * replica has an Update with the log writer (finishSaved calls it again), so the record is
   * written in order with what the replica saved before, and a snapshot it received meanwhile
   * is known: a file older than the replica's current snapshot is dropped.
   */
  private recordSnapshot(job: SnapshotJob): void {
    const r = job.r;
    if (job.phase !== "durable" && job.phase !== "published") return;
    if (this.saving.has(r) || this.snapshotGone(job)) return;
    const current = r.logReader.snapshot()?.index ?? 0;
    if (current >= job.meta.index) {
      this.cancelSnapshot(job);
      r.finishSnapshotRequest(job.request, {
        code: "rejected",
        error: `a snapshot at index ${current} replaced this replica's state while the one at ${job.meta.index} was being written`,
      });
      this.markReady(r);
      return;
    }
    if (job.phase === "durable") {
      job.phase = "publishing";
      const published = (error: Error | null) => {
        job.phase = "published";
        if (error !== null) this.snapshotJobFailed(job, error);
        else this.recordSnapshot(job);
      };
      try {
        if (job.writer.publishAsync((error) => published(error))) return;
        job.writer.publish();
      } catch (error) {
        job.phase = "published";
        this.snapshotJobFailed(job, error);
        return;
      }
      job.phase = "published";
    }
    job.phase = "recording";
    const meta: SnapshotMeta = {
      ...job.meta,
      fileSizeBytes: job.writer.sizeBytes,
      checksum: job.writer.checksum,
    };
    try {
      this.opts.logdb.saveUpdatesAsync(
        [{ shardId: r.shardId, replicaId: r.replicaId, entries: [], state: null, snapshot: meta }],
        (error) => this.snapshotRecorded(job, meta, error),
      );
    } catch (error) {
      if (isStorageFailure(error)) this.fatal(error as Error);
      else this.snapshotJobFailed(job, error);
    }
  }

  /** The log database holds the snapshot: compact, answer the requester, allow the next one. */
  private snapshotRecorded(job: SnapshotJob, meta: SnapshotMeta, error: Error | null): void {
    job.phase = "done";
    if (this.stopped) return;
    if (error !== null) {
      this.fatal(error);
      return;
    }
    const r = job.r;
    if (this.snapshotJobs.get(r) === job) this.snapshotJobs.delete(r);
    if (job.cancelled || r.stopped) return;
    const request = job.request;
    try {
      this.guard(r, "taking a snapshot", () => {
        // A snapshot received after this one was published replaced it: nothing to compact.
        if ((r.logReader.snapshot()?.index ?? 0) < meta.index) {
          r.logReader.createSnapshot(meta);
          r.lastSnapshotIndex = meta.index;
          const compactTo = compactionTarget(r.config, meta.index, request?.input ?? null);
          if (compactTo > r.logReader.firstIndex()) this.compactLog(r, compactTo);
          r.snapshotDir?.removeOlderThan(meta.index);
        }
        this.stats.snapshotsCreated++;
        this.stats.snapshotBytesCreated += meta.fileSizeBytes;
        const snapshotMs = this.opts.env.nowMs() - job.startedMs;
        this.stats.snapshotMsTotal += snapshotMs;
        this.opts.onSnapshot?.(snapshotMs);
        this.log({
          level: "info",
          event: "snapshot-created",
          shard: r.shardId,
          replica: r.replicaId,
          index: meta.index,
        });
        this.onSnapshotSaved(r, meta.index);
        const exportPath = request?.input.exportPath ?? "";
        if (exportPath !== "" && r.snapshotDir !== null) this.exportSnapshot(r, request, meta, exportPath);
        else r.finishSnapshotRequest(request, { index: meta.index });
      });
    } catch (error) {
      this.fatal(error as Error);
      return;
    }
    this.markReady(r);
  }

  /**
   * Copies the snapshot just recorded into the requester's export directory in steps between
   * iterations (SNAPSHOT_STEP_BYTES each; SnapshotFileCopy: fsync, rename, fsync of the
   * directory, off the thread where the file system can), and only then answers "done": the
   * export is durable before the requester hears of it. The replica goes on meanwhile.
   */
  private exportSnapshot(
    r: Replica,
    request: SnapshotJob["request"],
    meta: SnapshotMeta,
    exportPath: string,
  ): void {
    const failed = (error: unknown) =>
      r.finishSnapshotRequest(request, {
        code: "rejected",
        error: `exporting the snapshot failed: ${String(error)}`,
      });
    let copy: SnapshotFileCopy;
    try {
      copy = r.snapshotDir!.beginExport(meta.filePath, exportPath);
    } catch (error) {
      failed(error);
      return;
    }
    this.exports.add(copy);
    this.runInSteps({
      abandoned: () => {
        if (!this.exports.has(copy)) return true;
        if (!this.stopped && !r.stopped) return false;
        this.exports.delete(copy);
        copy.abort();
        return true;
      },
      step: () => copy.step(SNAPSHOT_STEP_BYTES),
      failed: (error) => {
        this.exports.delete(copy);
        copy.abort();
        failed(error);
      },
      done: () =>
        copy.publish((error) => {
          this.exports.delete(copy);
          if (this.stopped || r.stopped) return;
          if (error !== null) failed(error);
          else r.finishSnapshotRequest(request, { index: meta.index });
        }),
    });
  }

  private snapshotJobFailed(job: SnapshotJob, error: unknown): void {
    this.cancelSnapshot(job);
    if (this.stopped || job.r.stopped) return;
    this.snapshotFailed(job.r, job.request, job.applied, error);
    this.markReady(job.r);
  }

  /**
   * The state machine could not save (an application error, a full disk): the log stays
   * uncompacted and the replica keeps serving; the next due snapshot tries again.
   */
  private snapshotFailed(
    r: Replica,
    request: ReturnType<Replica["takeSnapshotRequest"]>,
    applied: number,
    error: unknown,
  ): void {
    r.lastSnapshotAttemptIndex = applied;
    this.log({
      level: "error",
      event: "snapshot-failed",
      shard: r.shardId,
      replica: r.replicaId,
      error: String(error),
    });
    r.finishSnapshotRequest(request, {
      code: "aborted",
      error: `saving the snapshot failed: ${String(error)}`,
    });
  }

  /**
   * Removes r's log entries up to index, which its snapshot covers: from the reader the Raft
   * core reads through, then from the log database. A follower that still needs them is
   * then sent the snapshot instead.
   */
  compactLog(r: Replica, index: number): void {
    r.logReader.compact(index);
    this.opts.logdb.compact({ shardId: r.shardId, replicaId: r.replicaId }, index);
    this.emit({ kind: "logCompacted", shardId: r.shardId, replicaId: r.replicaId, index });
  }

  private fatal(error: Error): void {
    this.fatalError = error;
    this.log({ level: "error", event: "engine-fatal", error: error.stack ?? String(error) });
    this.stop();
    this.opts.onFatal?.(error);
  }
}

/** Errors of the log database itself (I/O, corruption, closed): the engine stops on them. */
function isStorageFailure(error: unknown): boolean {
  return (
    error instanceof LogDBIOError || error instanceof LogDBCorruptError || error instanceof LogDBClosedError
  );
}
