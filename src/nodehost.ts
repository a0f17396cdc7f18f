import { join as joinPath } from "node:path";
import { type PlantedBug, plantedBugOption } from "./engine/bugs.ts";
import { type ReplicaConfig, type ReplicaConfigInput, validateReplicaConfig } from "./engine/config.ts";
import { Engine, type EngineStats } from "./engine/engine.ts";
import { SnapshotExport } from "./engine/export.ts";
import { LongboatError } from "./engine/errors.ts";
import {
  type EventBody,
  type EventHandler,
  EventHub,
  type EventListener,
  type LeaderRole,
  type ListenerStats,
  listenerHandler,
  type SubscribeOptions,
  type Subscription,
} from "./engine/events.ts";
import { Replica } from "./engine/replica.ts";
import { awaitCompleted, type RequestState } from "./engine/request.ts";
import {
  SERIES_ID_FIRST_PROPOSAL,
  SERIES_ID_REGISTER,
  SERIES_ID_UNREGISTER,
  Session,
} from "./engine/session.ts";
import { type Env, realEnv } from "./env.ts";
import { mkdirDurable } from "./fs/durable.ts";
import type { FileSystem } from "./fs/filesystem.ts";
import { nodeFileSystem } from "./fs/node.ts";
import { LogReader } from "./logdb/logreader.ts";
import { SnapshotDir } from "./logdb/snapshotfile.ts";
import { openSqliteLogDB } from "./logdb/sqlite.ts";
import {
  type BootstrapRecord,
  LOGDB_FORMAT_VERSION,
  type LogDB,
  type ReplicaKey,
  type WriterStats,
} from "./logdb/types.ts";
import { validateRaftConfig } from "./raft/config.ts";
import { Peer } from "./raft/peer.ts";
import {
  type ConfigChange,
  ConfigChangeType,
  type Entry,
  type Member,
  type Membership,
  EntryType,
} from "./raft/types.ts";
import { committedMembership, isMember } from "./rsm/committed.ts";
import { StateMachineManager } from "./rsm/manager.ts";
import type { CreateStateMachine, SMResult } from "./statemachine/types.ts";
import { Http2Transport } from "./transport/http2.ts";
import { MapRegistry } from "./transport/registry.ts";
import type { Registry, Transport, TransportStats } from "./transport/types.ts";

export { LongboatError, isTemporary } from "./engine/errors.ts";
export type {
  EventKind,
  EventListener,
  EventHandler,
  EventOf,
  LeaderRole,
  ListenerStats,
  NodeHostEvent,
  SubscribeOptions,
  Subscription,
} from "./engine/events.ts";
export { EVENT_KINDS } from "./engine/events.ts";
export type { ReplicaConfigInput } from "./engine/config.ts";
export { Session } from "./engine/session.ts";
export type { SnapshotExport } from "./engine/export.ts";

/**
 * Data format of a NodeHost directory written by this build: the log database's
 * (LOGDB_FORMAT_VERSION; 2 since the journal, which opening migrates format 1 to).
 */
export const DATA_FORMAT_VERSION = LOGDB_FORMAT_VERSION;

export interface NodeHostConfig {
  /** Directory for the log database and snapshots. */
  nodeHostDir: string;
  /** host:port other NodeHosts reach this one at (and that it listens on). */
  raftAddress: string;
  /** Milliseconds per tick. Default 100. */
  rttMs?: number;
  /** Messages from NodeHosts of another deployment are dropped. Default 1. */
  deploymentId?: number;
  /** Mutual TLS between NodeHosts when set. */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /**
   * Event methods (leaderUpdated, roleChanged, …), delivered off the engine loop like
   * subscribe(); more listeners can be added with subscribe().
   */
  listener?: EventListener;
  /** Election timeouts a replica knows no leader before it reports shardUnavailable. Default 3. */
  unavailableElectionTimeouts?: number;
  /** Structured log sink; default: nothing. */
  log?: (event: Record<string, unknown>) => void;
  /** Clock and randomness; default the real ones (the simulator injects its own). */
  env?: Env;
  /** Called after every log database save (one fsync) with its duration and entry count. */
  onSave?: (durationMs: number, entryCount: number) => void;
  /** Called after every snapshot a replica of this host took, with the time taking it. */
  onSnapshot?: (durationMs: number) => void;
  /** Replace the log database, transport or file system (tests, the simulator). */
  expert?: {
    logdb?: LogDB;
    transport?: (registry: Registry, env: Env) => Transport;
    /**
     * Called synchronously inside the engine loop with every event (the simulator injects
     * faults at exact points with it). It delays the engine: applications use subscribe().
     */
    engineListener?: (event: EventBody) => void;
    /** Where snapshot files and the data directory live; default the real file system. */
    fs?: FileSystem;
    /**
     * Test-only: switches on one of the simulator's planted bugs (src/engine/bugs.ts), which
     * break a safety rule on purpose. Ignored by a production build; never set it otherwise.
     */
    plantedBug?: PlantedBug;
    /** Simulator only: virtual time per step of a snapshot write (EngineOptions.snapshotStepLatencyMs). */
    snapshotStepLatencyMs?: () => number;
  };
}

export interface ShardInfo {
  shardId: number;
  replicaId: number;
  app: string;
  role: number;
  isLeader: boolean;
  leaderId: number;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  membership: Membership;
  configChangeId: number;
  quiesced: boolean;
}

export interface NodeHostInfo {
  raftAddress: string;
  deploymentId: number;
  shards: ShardInfo[];
  logsOnDisk: ReplicaKey[];
}

/** What syncPropose returns: the state machine's result and the entry's log index. */
export interface ProposeResult extends SMResult {
  index: number;
}

interface TimeoutOption {
  timeoutMs: number;
}

/** What NodeHost.requestCompaction did. Sizes count entrySizeBytes (payload + 128). */
export interface CompactionReport {
  shardId: number;
  replicaId: number;
  /** Index of the snapshot the removed entries are in (0: no snapshot, nothing removed). */
  snapshotIndex: number;
  /** First index left in the log. */
  firstIndex: number;
  entriesRemoved: number;
  logBytesRemoved: number;
  /** What the replica's log holds now. */
  logEntries: number;
  logBytes: number;
  /** Size of the log database files (all shards) before and after space was handed back. */
  fileBytesBefore: number;
  fileBytesAfter: number;
}

/** A slice of a replica's log (NodeHost.queryRaftLog). */
export interface RaftLogQuery {
  shardId: number;
  replicaId: number;
  /** The stored range: entries below firstIndex are compacted into the snapshot. */
  firstIndex: number;
  lastIndex: number;
  /** Entries above it are not committed yet (as this replica knows). */
  commitIndex: number;
  snapshotIndex: number;
  entries: Entry[];
}

/**
 * A NodeHost runs many replicas of many shards over one log database, one transport and
 * one engine loop.
 *
 * ```ts
 * const nh = new NodeHost({ nodeHostDir: "./data", raftAddress: "127.0.0.1:7001" });
 * await nh.startReplica({ 1: "127.0.0.1:7001" }, false, builtinApps().get("kv"),
 *   { shardId: 1, replicaId: 1 }, { app: "kv" });
 * const session = nh.getNoOpSession(1);
 * await nh.syncPropose(session, encodeKvCommand({ put: { key: "a", value: bytes } }), { timeoutMs: 2000 });
 * const value = await nh.syncRead(1, encodeKvQuery({ get: { key: "a" } }), { timeoutMs: 2000 });
 * await nh.stop();
 * ```
 */
export class NodeHost {
  readonly raftAddress: string;
  readonly deploymentId: number;
  readonly rttMs: number;
  /** Resolves once the transport listens; rejects when it cannot. */
  readonly ready: Promise<void>;
  private readonly env: Env;
  private readonly logdb: LogDB;
  private readonly registry = new MapRegistry();
  private readonly transport: Transport;
  private readonly engine: Engine;
  private readonly dir: string;
  private readonly fs: FileSystem;
  private readonly plantedBug: PlantedBug | null;
  private readonly log: (event: Record<string, unknown>) => void;
  private readonly events: EventHub;
  private closed = false;
  /** Shards whose replica waits for its bootstrap record to be durable (startReplica). */
  private readonly starting = new Set<number>();

  constructor(config: NodeHostConfig) {
    this.raftAddress = config.raftAddress;
    this.deploymentId = config.deploymentId ?? 1;
    this.rttMs = config.rttMs ?? 100;
    if (!Number.isSafeInteger(this.rttMs) || this.rttMs < 1) {
      throw new LongboatError("invalidOption", `rttMs must be a positive integer, got ${config.rttMs}`);
    }
    if (!Number.isSafeInteger(this.deploymentId) || this.deploymentId < 1) {
      throw new LongboatError(
        "invalidOption",
        `deploymentId must be a positive integer, got ${config.deploymentId}`,
      );
    }
    this.env = config.env ?? realEnv();
    this.log = config.log ?? (() => {});
    this.dir = config.nodeHostDir;
    this.fs = config.expert?.fs ?? nodeFileSystem;
    this.plantedBug = plantedBugOption(config.expert?.plantedBug);
    // Durable: the log database about to be created here will hold votes and acknowledged entries.
    mkdirDurable(this.fs, this.dir);
    const identity = {
      raftAddress: this.raftAddress,
      deploymentId: this.deploymentId,
      formatVersion: DATA_FORMAT_VERSION,
    };
    this.logdb = config.expert?.logdb ?? openSqliteLogDB({ dir: this.dir, identity });
    this.transport =
      config.expert?.transport?.(this.registry, this.env) ??
      new Http2Transport({
        address: this.raftAddress,
        deploymentId: this.deploymentId,
        registry: this.registry,
        env: this.env,
        tls: config.tls,
        snapshotDir: joinPath(this.dir, "incoming"),
        fs: this.fs,
        log: this.log,
      });
    this.events = new EventHub(this.env, (name, error) =>
      this.log({ level: "warn", event: "listener-error", listener: name, error: String(error) }),
    );
    if (config.listener) this.events.subscribe(listenerHandler(config.listener), { name: "config.listener" });
    this.engine = new Engine({
      env: this.env,
      logdb: this.logdb,
      transport: this.transport,
      registry: this.registry,
      rttMs: this.rttMs,
      events: this.events,
      engineListener: config.expert?.engineListener,
      unavailableElectionTimeouts: config.unavailableElectionTimeouts,
      log: this.log,
      onSave: config.onSave,
      onSnapshot: config.onSnapshot,
      fs: this.fs,
      plantedBug: this.plantedBug,
      snapshotStepLatencyMs: config.expert?.snapshotStepLatencyMs,
    });
    this.ready = this.transport.start(this.engine).then(() => this.engine.start());
    this.ready.catch(() => {});
  }

  /** Engine counters (iterations, fsyncs, entries…), for metrics and benchmarks. */
  get stats(): Readonly<EngineStats> {
    return this.engine.stats;
  }

  /**
   * Simulator hook: this host's engine stalls for ms as a paused process or a slow apply
   * would (no ticks, no iterations; requests and messages queue). See Engine.stall.
   */
  stallForTest(ms: number): void {
    this.engine.stall(ms);
  }

  /**
   * Calls handler with every event (filtered by opts.kinds and opts.shardId), in order, off the
   * engine loop: each listener has a bounded queue (opts.queueMax, default 1024); when it is
   * full, new events are dropped, counted (eventListenerStats, /metrics) and announced by an
   * eventsDropped event. A throwing or rejecting listener is logged and keeps receiving.
   *
   * ```ts
   * const sub = nh.subscribe((e) => console.log(e.kind, e.shardId), { kinds: ["roleChanged"] });
   * sub.close();
   * ```
   */
  subscribe(handler: EventHandler, opts: SubscribeOptions = {}): Subscription {
    return this.events.subscribe(handler, opts);
  }

  /** Delivered, dropped and queued events of every listener (metrics). */
  eventListenerStats(): ListenerStats[] {
    return this.events.stats();
  }

  /** Queued and pending requests and inbound messages over all replicas (metrics). */
  queueDepths(): { proposals: number; reads: number; inbox: number } {
    return this.engine.queueDepths();
  }

  /** The transport's counters (bytes, batches, drops), when it keeps them. */
  transportStats(): TransportStats | null {
    const t = this.transport as Transport & { stats?: () => TransportStats };
    return typeof t.stats === "function" ? t.stats() : null;
  }

  /** The log writer's counters (appends, moves, time in each), when the LogDB keeps them. */
  logWriterStats(): WriterStats | null {
    return this.logdb.writerStats?.() ?? null;
  }

  /** Stops every replica (pending requests end as terminated), the transport and the log database. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.engine.stop();
    for (const r of [...this.engine.allReplicas()]) {
      this.engine.removeReplica(r.shardId, "the NodeHost is stopping");
      r.rsm.close();
    }
    await this.transport.stop();
    this.logdb.close();
  }

  // ---- replicas ----

  /**
   * Starts a replica of a shard on this NodeHost. On first start an initial member passes the
   * initial members (replica id → raft address) and join=false; a replica added to a running
   * shard passes no members and join=true; a restart may pass the same members or none.
   */
  async startReplica(
    initialMembers: Record<number, string> | Map<number, string>,
    join: boolean,
    create: CreateStateMachine,
    configInput: ReplicaConfigInput,
    options: { app?: string } = {},
  ): Promise<void> {
    this.checkOpen();
    await this.ready;
    const config = validateReplicaConfig(configInput);
    const key = { shardId: config.shardId, replicaId: config.replicaId };
    const tombstone = this.logdb.getTombstone(key);
    if (tombstone !== null) {
      throw new LongboatError(
        "replicaRemoved",
        `replica ${key.replicaId} of shard ${key.shardId} was removed and its data deleted on this host (${tombstone.reason}); ids never return: start a new replica id, or drop this shard from the host's configuration`,
      );
    }
    if (this.engine.wasRemoved(config.shardId, config.replicaId)) {
      throw new LongboatError(
        "replicaRemoved",
        `replica ${config.replicaId} of shard ${config.shardId} was removed from its shard on this host; ids never return`,
      );
    }
    if (this.engine.getReplica(config.shardId) || this.starting.has(config.shardId)) {
      throw new LongboatError(
        "shardAlreadyExist",
        `shard ${config.shardId} already runs on ${this.raftAddress}`,
      );
    }
    const members = toMembers(initialMembers);
    const app = options.app ?? "custom";
    const { record: boot, durable } = this.bootstrap(key, members, join, app, config);
    // The replica's snapshot folder is made on its first snapshot (SnapshotDir), not here.
    const snapshotDir = config.isWitness
      ? null
      : new SnapshotDir(joinPath(this.dir, "snapshots"), config.shardId, config.replicaId, {
          fs: this.fs,
          plantedNoFileSync: this.plantedBug === "snapshot-no-fsync",
        });
    if (durable !== null) {
      // A new replica's bootstrap record is durable before it runs; records of replicas
      // started together share one fsync (LogDB.saveBootstrapAsync).
      this.starting.add(config.shardId);
      try {
        await durable;
      } finally {
        this.starting.delete(config.shardId);
      }
      this.checkOpen();
    }
    const logState = this.logdb.readLogState(key);
    const newNode = !boot.join && logState.lastIndex === 0 && logState.snapshot === null;
    const rsm = new StateMachineManager({
      shardId: config.shardId,
      replicaId: config.replicaId,
      app: boot.app,
      sm: create(config.shardId, config.replicaId),
      snapshotDir,
      isWitness: config.isWitness,
      deploymentId: this.deploymentId,
    });
    rsm.open();
    if (logState.snapshot !== null && !config.isWitness) {
      // In steps between engine iterations (issue #16 item 4): the host's other shards go on.
      this.starting.add(config.shardId);
      try {
        await this.engine.recoverBeforeStart(rsm, logState.snapshot);
        this.checkOpen();
      } catch (error) {
        rsm.close();
        throw error;
      } finally {
        this.starting.delete(config.shardId);
      }
    }
    const logReader = new LogReader(this.logdb, key, logState);
    const peer = Peer.create({
      config: validateRaftConfig({
        ...config,
        plantedCommitAnyTerm: this.plantedBug === "old-term-commit",
      }),
      storage: logReader,
      rng: this.env,
      initialMembers: newNode ? boot.addresses : [],
      newNode,
      lastApplied: rsm.lastApplied(),
    });
    for (const m of boot.addresses) this.registry.add(config.shardId, m.replicaId, m.address);
    const snapMembership = logState.snapshot?.membership;
    const replica = new Replica(config, boot.app, peer, logReader, rsm, snapshotDir, this.engine);
    if (snapMembership) this.engine.onMembershipApplied(replica, snapMembership);
    if (logState.snapshot !== null && !config.isWitness)
      this.engine.onSnapshotRecovered(replica, logState.snapshot.index);
    this.engine.addReplica(replica);
    this.log({
      level: "info",
      event: "replica-started",
      shard: config.shardId,
      replica: config.replicaId,
      newNode,
      join: boot.join,
    });
  }

  /** The replica's bootstrap record; a new one is being written and is durable once `durable` resolves. */
  private bootstrap(
    key: ReplicaKey,
    members: Member[],
    join: boolean,
    app: string,
    config: ReplicaConfig,
  ): { record: BootstrapRecord; durable: Promise<void> | null } {
    const existing = this.logdb.getBootstrap(key);
    if (existing !== null) {
      if (members.length > 0 && !sameMembers(members, existing.addresses)) {
        throw new LongboatError(
          "invalidShardSettings",
          `replica ${key.replicaId} of shard ${key.shardId} was bootstrapped with other initial members`,
        );
      }
      return { record: existing, durable: null };
    }
    if (join && members.length > 0) {
      throw new LongboatError("invalidShardSettings", "a joining replica takes no initial members");
    }
    if (!join && members.length === 0) {
      throw new LongboatError(
        "shardNotBootstrapped",
        `replica ${key.replicaId} of shard ${key.shardId} has no data here: pass initial members or join=true`,
      );
    }
    if (!join && !members.some((m) => m.replicaId === key.replicaId)) {
      throw new LongboatError(
        "invalidShardSettings",
        `replica ${key.replicaId} is not among the initial members`,
      );
    }
    validateMembers(members);
    const record = { addresses: members, join, app, configJson: JSON.stringify(config) };
    const durable = new Promise<void>((resolve, reject) =>
      this.logdb.saveBootstrapAsync(key, record, (error) => (error === null ? resolve() : reject(error))),
    );
    // Awaited by startReplica unless it fails first; never an unhandled rejection.
    durable.catch(() => {});
    return { record, durable };
  }

  /** Stops this NodeHost's replica of a shard; its data stays on disk. */
  stopShard(shardId: number): void {
    const r = this.engine.removeReplica(shardId, "stopped by request");
    if (!r) throw new LongboatError("shardNotFound", `shard ${shardId} on ${this.raftAddress}`);
    r.rsm.close();
  }

  stopReplica(shardId: number, replicaId: number): void {
    const r = this.replica(shardId);
    if (r.replicaId !== replicaId) {
      throw new LongboatError(
        "shardNotFound",
        `replica ${replicaId} of shard ${shardId} is not on ${this.raftAddress}`,
      );
    }
    this.stopShard(shardId);
  }

  // ---- proposals and reads ----

  getNoOpSession(shardId: number): Session {
    return Session.noop(shardId);
  }

  /** Registers a new client session through Raft. */
  async getNewSession(shardId: number, opts: TimeoutOption): Promise<Session> {
    const r = this.writable(shardId);
    const clientId = 1 + this.env.nextInt(2 ** 52);
    const state = r.propose({ clientId, seriesId: SERIES_ID_REGISTER }, this.ticks(opts.timeoutMs));
    this.engine.markReady(r);
    await awaitCompleted(state);
    return new Session(shardId, clientId, SERIES_ID_FIRST_PROPOSAL, 0);
  }

  async closeSession(session: Session, opts: TimeoutOption): Promise<void> {
    if (session.isNoOp) throw new LongboatError("invalidSession", "the no-op session cannot be closed");
    const r = this.writable(session.shardId);
    const state = r.propose(
      { clientId: session.clientId, seriesId: SERIES_ID_UNREGISTER },
      this.ticks(opts.timeoutMs),
    );
    this.engine.markReady(r);
    await awaitCompleted(state);
  }

  /** Queues a proposal and returns its request state without waiting. */
  propose(session: Session, cmd: Uint8Array, opts: TimeoutOption): RequestState {
    const r = this.writable(session.shardId);
    session.validateForProposal(session.shardId);
    if (cmd.byteLength > r.config.maxProposalBytes) {
      throw new LongboatError(
        "payloadTooBig",
        `${cmd.byteLength} bytes exceeds the limit of ${r.config.maxProposalBytes} bytes for shard ${session.shardId}`,
      );
    }
    const max = r.config.maxInMemLogSizeBytes;
    if (max > 0 && cmd.byteLength + 128 > max) {
      throw new LongboatError(
        "payloadTooBig",
        `${cmd.byteLength} bytes do not fit maxInMemLogSizeBytes ${max}`,
      );
    }
    const refused = r.rsm.validateCommand(cmd);
    if (refused !== null) {
      throw new LongboatError("invalidCommand", `shard ${session.shardId} (app ${r.app}): ${refused}`);
    }
    const state = r.propose(
      {
        type: EntryType.Application,
        clientId: session.clientId,
        seriesId: session.seriesId,
        respondedTo: session.respondedTo,
        cmd,
      },
      this.ticks(opts.timeoutMs),
    );
    this.engine.markReady(r);
    return state;
  }

  /**
   * Proposes cmd and waits until it is applied; returns the state machine's result and the log
   * index it was applied at. A command the state machine's validateCommand refuses throws
   * invalidCommand at once, and nothing is proposed.
   */
  async syncPropose(session: Session, cmd: Uint8Array, opts: TimeoutOption): Promise<ProposeResult> {
    const result = await awaitCompleted(this.propose(session, cmd, opts));
    return { value: result.value, data: result.data, index: result.index };
  }

  /** A linearizable read (ReadIndex): the query sees every write completed before the call. */
  async syncRead(shardId: number, query: Uint8Array, opts: TimeoutOption): Promise<Uint8Array> {
    const r = this.readable(shardId);
    const state = r.read(query, this.ticks(opts.timeoutMs));
    this.engine.markReady(r);
    return (await awaitCompleted(state)).data;
  }

  /** Reads the local state machine as it is now: fast, possibly stale. */
  staleRead(shardId: number, query: Uint8Array): Uint8Array {
    const r = this.readable(shardId);
    // A query the state machine cannot answer is the caller's mistake, as in syncRead (the
    // engine answers its lookup failures with rejected): never an internal error.
    try {
      return r.rsm.lookup(query);
    } catch (error) {
      throw new LongboatError("rejected", `lookup failed: ${(error as Error).message}`);
    }
  }

  /**
   * Resolves once the shard has a leader that serves linearizable requests (its election is
   * over and its term's first entry committed); throws timeout after timeoutMs. Useful right
   * after startReplica, when proposals would otherwise be dropped as shardNotReady.
   */
  async waitReady(shardId: number, opts: TimeoutOption): Promise<void> {
    const deadlineMs = this.env.nowMs() + opts.timeoutMs;
    const attemptMs = Math.max(10 * this.rttMs, 200);
    for (;;) {
      const leftMs = deadlineMs - this.env.nowMs();
      if (leftMs < this.rttMs)
        throw new LongboatError("timeout", `shard ${shardId} has no leader ready after ${opts.timeoutMs} ms`);
      try {
        await this.syncGetShardMembership(shardId, { timeoutMs: Math.min(attemptMs, leftMs) });
        return;
      } catch (error) {
        if (!(error instanceof LongboatError) || !error.temporary) throw error;
      }
      await new Promise<void>((resolve) => this.env.setTimer(this.rttMs, resolve));
    }
  }

  // ---- membership ----

  async syncGetShardMembership(shardId: number, opts: TimeoutOption): Promise<Membership> {
    const r = this.readable(shardId);
    const state = r.read(null, this.ticks(opts.timeoutMs));
    this.engine.markReady(r);
    await awaitCompleted(state);
    return structuredClone(r.rsm.membership());
  }

  syncRequestAddReplica(
    shardId: number,
    replicaId: number,
    address: string,
    configChangeId: number,
    opts: TimeoutOption,
  ) {
    return this.configChange(shardId, ConfigChangeType.AddNode, replicaId, address, configChangeId, opts);
  }

  syncRequestAddNonVoting(
    shardId: number,
    replicaId: number,
    address: string,
    configChangeId: number,
    opts: TimeoutOption,
  ) {
    return this.configChange(
      shardId,
      ConfigChangeType.AddNonVoting,
      replicaId,
      address,
      configChangeId,
      opts,
    );
  }

  syncRequestAddWitness(
    shardId: number,
    replicaId: number,
    address: string,
    configChangeId: number,
    opts: TimeoutOption,
  ) {
    return this.configChange(shardId, ConfigChangeType.AddWitness, replicaId, address, configChangeId, opts);
  }

  syncRequestDeleteReplica(shardId: number, replicaId: number, configChangeId: number, opts: TimeoutOption) {
    return this.configChange(shardId, ConfigChangeType.RemoveNode, replicaId, "", configChangeId, opts);
  }

  private async configChange(
    shardId: number,
    type: ConfigChange["type"],
    replicaId: number,
    address: string,
    configChangeId: number,
    opts: TimeoutOption,
  ): Promise<void> {
    const r = this.writable(shardId);
    if (!Number.isSafeInteger(replicaId) || replicaId < 1) {
      throw new LongboatError("invalidTarget", `replica id must be a positive integer, got ${replicaId}`);
    }
    if (type !== ConfigChangeType.RemoveNode) checkAddress(address);
    else {
      // Removing a replica that is not a member would only add its id to `removed` for ever.
      const m = r.rsm.membership();
      if (!isMember(m, replicaId)) {
        throw new LongboatError(
          "invalidTarget",
          `replica ${replicaId} is not a member of shard ${shardId} (members: ${memberList(m)}; config change ${m.configChangeId}), nothing to remove`,
        );
      }
    }
    const cc: ConfigChange = { configChangeId, type, replicaId, address, initialize: false };
    const state = r.requestConfigChange(cc, this.ticks(opts.timeoutMs));
    this.engine.markReady(r);
    await awaitCompleted(state);
  }

  getShardMembershipLocal(shardId: number): Membership {
    return structuredClone(this.replica(shardId).rsm.membership());
  }

  /** The leader this replica knows of; valid is false when it knows none. */
  getLeaderId(shardId: number): { leaderId: number; term: number; valid: boolean } {
    const s = this.replica(shardId).peer.status();
    return { leaderId: s.leaderId, term: s.term, valid: s.leaderId !== 0 };
  }

  /**
   * The leadership this host's replica may act on (docs/leader-hooks.md): "leader" only while
   * it leads, has committed in its term and heard from a quorum within an election timeout.
   */
  getLeaderRole(shardId: number): { role: LeaderRole; term: number; leaderId: number } {
    return this.engine.leaderRole(this.replica(shardId));
  }

  requestLeaderTransfer(shardId: number, targetReplicaId: number): void {
    const r = this.writable(shardId);
    if (!Number.isSafeInteger(targetReplicaId) || targetReplicaId < 1) {
      throw new LongboatError(
        "invalidTarget",
        `target replica id must be a positive integer, got ${targetReplicaId}`,
      );
    }
    const m = r.rsm.membership();
    if (!m.addresses.some((x) => x.replicaId === targetReplicaId)) {
      const what = isMember(m, targetReplicaId)
        ? "is a non-voting member or a witness, which cannot lead"
        : "is not a member";
      throw new LongboatError(
        "invalidTarget",
        `replica ${targetReplicaId} ${what} of shard ${shardId} (voting members: ${memberList(m, true)}): leadership can move only to a voting member`,
      );
    }
    r.requestLeaderTransfer(targetReplicaId);
    this.engine.markReady(r);
  }

  /**
   * Takes a snapshot now (optionally also copied into exportPath); resolves with its index.
   * Afterwards the log is compacted as the replica's compactionOverhead says, or keeping
   * `compactionOverhead` entries behind the snapshot, or up to `compactionIndex` (at most the
   * snapshot's index); name at most one of the two.
   */
  async syncRequestSnapshot(
    shardId: number,
    opts: TimeoutOption & { exportPath?: string; compactionOverhead?: number; compactionIndex?: number },
  ): Promise<number> {
    const r = this.writable(shardId);
    if (opts.exportPath && this.fs.stat(opts.exportPath)?.isDirectory !== true) {
      throw new LongboatError("dirNotExist", `export directory ${opts.exportPath} does not exist`);
    }
    const compactionOverhead = optionalCount("compactionOverhead", opts.compactionOverhead);
    const compactionIndex = optionalCount("compactionIndex", opts.compactionIndex);
    if (compactionOverhead !== null && compactionIndex !== null) {
      throw new LongboatError(
        "invalidOption",
        `name compactionOverhead or compactionIndex, not both (got ${compactionOverhead} and ${compactionIndex})`,
      );
    }
    const state = r.requestSnapshot(
      { exportPath: opts.exportPath ?? "", compactionOverhead, compactionIndex },
      this.ticks(opts.timeoutMs),
    );
    this.engine.markReady(r);
    return (await awaitCompleted(state)).index;
  }

  /**
   * Compacts a shard's log now: removes the entries its latest snapshot covers except the
   * last `compactionOverhead` (default: the replica's), then hands the space freed in the log
   * database back to the file system where it can. For replicas with disableAutoCompactions,
   * or to reclaim space at a quiet moment.
   * @example const r = nh.requestCompaction(1); console.log(r.entriesRemoved, r.logBytesRemoved);
   */
  requestCompaction(shardId: number, opts: { compactionOverhead?: number } = {}): CompactionReport {
    const r = this.replica(shardId);
    const overhead =
      optionalCount("compactionOverhead", opts.compactionOverhead) ?? r.config.compactionOverhead;
    const key = { shardId, replicaId: r.replicaId };
    const before = this.logdb.logUsage(key);
    const snapshotIndex = r.logReader.snapshot()?.index ?? 0;
    const compactTo = snapshotIndex - overhead;
    if (compactTo >= r.logReader.firstIndex()) this.engine.compactLog(r, compactTo);
    const after = this.logdb.logUsage(key);
    const space = this.logdb.reclaimSpace();
    const report: CompactionReport = {
      shardId,
      replicaId: r.replicaId,
      snapshotIndex,
      firstIndex: r.logReader.firstIndex(),
      entriesRemoved: before.entryCount - after.entryCount,
      logBytesRemoved: before.sizeBytes - after.sizeBytes,
      logEntries: after.entryCount,
      logBytes: after.sizeBytes,
      fileBytesBefore: space.sizeBytesBefore,
      fileBytesAfter: space.sizeBytesAfter,
    };
    this.log({ level: "info", event: "log-compacted", ...report });
    return report;
  }

  /**
   * Entries of a shard's log with index in [firstIndex, lastIndex) (firstIndex 0: from the first
   * stored entry): at least one when there is one, then as many as fit in maxBytes (entrySizeBytes). Reads this host's replica, running or
   * stopped (pass replicaId when several replicas of the shard have data here). The answer
   * also gives the stored range and commit index, to page on. For debugging.
   * @throws outOfRange when firstIndex was compacted away or lies beyond the log's end
   */
  queryRaftLog(
    shardId: number,
    firstIndex: number,
    lastIndex: number,
    maxBytes: number,
    opts: { replicaId?: number } = {},
  ): RaftLogQuery {
    this.checkOpen();
    for (const [name, v, min] of [
      ["firstIndex", firstIndex, 0],
      ["lastIndex", lastIndex, 1],
      ["maxBytes", maxBytes, 1],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < min)
        throw new LongboatError("invalidOption", `${name} must be an integer ≥ ${min}, got ${v}`);
    }
    const { reader, replicaId } = this.logReaderOf(shardId, opts.replicaId);
    const first = reader.firstIndex();
    if (firstIndex === 0) firstIndex = first;
    if (lastIndex < firstIndex) {
      throw new LongboatError("invalidOption", `lastIndex ${lastIndex} is below firstIndex ${firstIndex}`);
    }
    const last = reader.lastIndex();
    const snapshotIndex = reader.snapshot()?.index ?? 0;
    const where = `shard ${shardId} replica ${replicaId} on ${this.raftAddress}`;
    if (firstIndex < first) {
      throw new LongboatError(
        "outOfRange",
        `entries of ${where} below ${first} were compacted (the snapshot at ${snapshotIndex} holds them); ask from ${first}`,
      );
    }
    if (firstIndex > last + 1) {
      throw new LongboatError("outOfRange", `the log of ${where} ends at ${last}, below ${firstIndex}`);
    }
    const high = Math.min(lastIndex, last + 1);
    const entries = firstIndex < high ? reader.entries(firstIndex, high, maxBytes) : [];
    const commitIndex = reader.nodeState().state.commit;
    return { shardId, replicaId, firstIndex: first, lastIndex: last, commitIndex, snapshotIndex, entries };
  }

  private logReaderOf(
    shardId: number,
    replicaId: number | undefined,
  ): { reader: LogReader; replicaId: number } {
    const running = this.engine.getReplica(shardId);
    if (running && (replicaId === undefined || running.replicaId === replicaId)) {
      return { reader: running.logReader, replicaId: running.replicaId };
    }
    const onDisk = this.logdb
      .listReplicas()
      .filter((k) => k.shardId === shardId && (replicaId === undefined || k.replicaId === replicaId));
    const what = replicaId === undefined ? `shard ${shardId}` : `replica ${replicaId} of shard ${shardId}`;
    if (onDisk.length === 0)
      throw new LongboatError("shardNotFound", `no log of ${what} on ${this.raftAddress}`);
    if (onDisk.length > 1) {
      throw new LongboatError(
        "invalidOption",
        `${this.raftAddress} holds logs of replicas ${onDisk.map((k) => k.replicaId).join(", ")} of shard ${shardId}: name one`,
      );
    }
    return { reader: new LogReader(this.logdb, onDisk[0]!), replicaId: onDisk[0]!.replicaId };
  }

  // ---- removing data ----

  /**
   * Deletes everything this host stores of a replica that was removed from its shard: log,
   * hard state, snapshots, bootstrap record. A tombstone stays, so the replica id can never be
   * started on this host again (a removed id never returns). Refused while the replica runs
   * here (syncRemoveData waits for one that is stopping) and while it is still a member: the replica's
   * own log must show its removal, or `membership` — the shard's current membership as read
   * from a live member (a drummer's committed view) — must not list it. Deleting the data of a
   * member would take a vote away from its shard. Calling it again after it is done does nothing.
   * @example nh.stopShard(1); nh.removeData(1, 3, { membership: await other.syncGetShardMembership(1, { timeoutMs: 2000 }) });
   */
  removeData(shardId: number, replicaId: number, opts: { membership?: Membership } = {}): void {
    this.checkOpen();
    const key = replicaKey(shardId, replicaId);
    const running = this.engine.getReplica(shardId);
    if (running && running.replicaId === replicaId) {
      throw new LongboatError(
        "shardNotStopped",
        `replica ${replicaId} of shard ${shardId} runs on ${this.raftAddress}: remove it from the shard first (it stops when it applies its removal), or stop it`,
      );
    }
    const tombstone = this.logdb.getTombstone(key);
    const hasLog = this.logdb.listReplicas().some((k) => k.shardId === shardId && k.replicaId === replicaId);
    if (tombstone === null && !hasLog) {
      throw new LongboatError(
        "shardNotFound",
        `no data of replica ${replicaId} of shard ${shardId} on ${this.raftAddress}`,
      );
    }
    if (tombstone === null) this.checkNotMember(key, opts.membership);
    // The tombstone is written in the same transaction as the removal; snapshot files go
    // afterwards (a crash in between leaves files no record points to, removed by a rerun).
    const reason = `data of replica ${replicaId} of shard ${shardId} removed by removeData`;
    if (hasLog || tombstone === null) {
      this.logdb.removeReplica(key, tombstone ?? { removedAtMs: this.env.nowMs(), reason });
    }
    this.fs.removeTree(joinPath(this.dir, "snapshots", `${shardId}-${replicaId}`));
    this.log({ level: "info", event: "replica-data-removed", shard: shardId, replica: replicaId });
  }

  /**
   * removeData once the replica has stopped: waits (up to timeoutMs) for a replica on its way
   * out — one that applied its own removal (it stops after that engine cycle), or one that the
   * given membership no longer lists (it stops when the removal reaches it). Any other running
   * replica is refused at once (shardNotStopped), as by removeData.
   */
  async syncRemoveData(
    shardId: number,
    replicaId: number,
    opts: TimeoutOption & { membership?: Membership },
  ): Promise<void> {
    this.ticks(opts.timeoutMs);
    const deadlineMs = this.env.nowMs() + opts.timeoutMs;
    // On its way out: it applied its own removal, or the caller's membership no longer lists
    // it (it stops once the removal reaches it; a replica cut off from its shard times out).
    const leaving =
      this.engine.wasRemoved(shardId, replicaId) ||
      (opts.membership !== undefined && !isMember(opts.membership, replicaId));
    const stopping = () =>
      this.engine.getReplica(shardId)?.replicaId === replicaId &&
      (leaving || this.engine.wasRemoved(shardId, replicaId));
    while (stopping()) {
      this.checkOpen();
      if (this.env.nowMs() >= deadlineMs) {
        throw new LongboatError(
          "timeout",
          `replica ${replicaId} of shard ${shardId} still runs on ${this.raftAddress} after ${opts.timeoutMs} ms: its removal has not reached it`,
        );
      }
      await new Promise<void>((resolve) => this.env.setTimer(this.rttMs, resolve));
    }
    this.removeData(shardId, replicaId, opts.membership ? { membership: opts.membership } : {});
  }

  /** Refuses (rejected) when the replica is still a member as far as can be known here. */
  private checkNotMember(key: ReplicaKey, given: Membership | undefined): void {
    const { shardId, replicaId } = key;
    if (given !== undefined) {
      if (isMember(given, replicaId)) {
        throw new LongboatError(
          "rejected",
          `replica ${replicaId} is still a member of shard ${shardId} in the given membership (config change ${given.configChangeId}): remove it from the shard first`,
        );
      }
      return;
    }
    const boot = this.logdb.getBootstrap(key);
    const ordered = boot === null ? true : orderedConfigChangeOf(boot.configJson);
    const local = committedMembership(this.logdb, key, ordered);
    if (isMember(local.membership, replicaId)) {
      throw new LongboatError(
        "rejected",
        `replica ${replicaId} is still a member of shard ${shardId} as far as its log here knows (committed up to ${local.commitIndex}): remove it from the shard first, or pass the shard's current membership read from a live member`,
      );
    }
  }

  /**
   * A snapshot of the shard for a backup, held open until its close(). Every write completed
   * before the call is in it: a ReadIndex round with the leader comes first, then a snapshot
   * is taken when entries were applied since the last one. `unconfirmed` skips the leader
   * (for a shard that lost quorum): the snapshot then holds what this replica applied, which
   * may miss writes the shard acknowledged.
   * @example const e = await nh.syncExportSnapshot(1, { timeoutMs: 10_000 }); const head = e.read(0, 1 << 20); e.close();
   */
  async syncExportSnapshot(
    shardId: number,
    opts: TimeoutOption & { unconfirmed?: boolean },
  ): Promise<SnapshotExport> {
    const r = this.readable(shardId);
    if (r.snapshotDir === null)
      throw new LongboatError("invalidOperation", `replica of shard ${shardId} keeps no snapshots`);
    if (opts.unconfirmed !== true) await this.syncGetShardMembership(shardId, opts);
    const applied = r.rsm.lastApplied();
    if (applied > r.lastSnapshotIndex) {
      try {
        await this.syncRequestSnapshot(shardId, { timeoutMs: opts.timeoutMs });
      } catch (error) {
        // Another snapshot covering `applied` may have been taken meanwhile: then it will do.
        if (!(error instanceof LongboatError && error.code === "rejected")) throw error;
      }
    }
    // No await from here on: the recorded snapshot's file exists until a newer one replaces
    // it, and opening it now keeps it readable for the export's lifetime.
    const current = this.readable(shardId);
    const meta = current.logReader.snapshot();
    if (current !== r || meta === null || meta.index < applied || meta.filePath === "") {
      throw new LongboatError(
        "aborted",
        `no snapshot of shard ${shardId} at or above index ${applied} to export on ${this.raftAddress} (the replica restarted or was stopped meanwhile): try again`,
      );
    }
    return new SnapshotExport(meta, this.deploymentId, this.fs);
  }

  // ---- information ----

  getNodeHostInfo(opts: { skipLogInfo?: boolean } = {}): NodeHostInfo {
    const shards: ShardInfo[] = [];
    for (const r of this.engine.allReplicas()) shards.push(this.shardInfo(r));
    shards.sort((a, b) => a.shardId - b.shardId);
    return {
      raftAddress: this.raftAddress,
      deploymentId: this.deploymentId,
      shards,
      logsOnDisk: opts.skipLogInfo ? [] : this.logdb.listReplicas(),
    };
  }

  private shardInfo(r: Replica): ShardInfo {
    const s = r.peer.status();
    const membership = r.rsm.membership(); // a copy already (MembershipManager.get)
    return {
      shardId: r.shardId,
      replicaId: r.replicaId,
      app: r.app,
      role: s.role,
      isLeader: s.leaderId === r.replicaId && s.role === 4,
      leaderId: s.leaderId,
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: r.rsm.lastApplied(),
      membership,
      configChangeId: membership.configChangeId,
      quiesced: s.quiesced,
    };
  }

  /** A digest of a shard's state machine (replicas at equal applied index must agree). */
  stateHash(shardId: number): { appliedIndex: number; hash: string } {
    const r = this.replica(shardId);
    return { appliedIndex: r.rsm.lastApplied(), hash: r.rsm.hash() };
  }

  // ---- helpers ----

  private checkOpen(): void {
    if (this.closed || this.engine.isStopped) {
      const why = this.engine.fatalError ? `: ${this.engine.fatalError.message}` : "";
      throw new LongboatError("closed", `NodeHost ${this.raftAddress} is closed${why}`);
    }
  }

  private replica(shardId: number): Replica {
    this.checkOpen();
    const r = this.engine.getReplica(shardId);
    if (r) return r;
    if (this.engine.wasRemoved(shardId)) {
      throw new LongboatError(
        "replicaRemoved",
        `this host's replica of shard ${shardId} was removed from the shard`,
      );
    }
    throw new LongboatError("shardNotFound", `shard ${shardId} on ${this.raftAddress}`);
  }

  private readable(shardId: number): Replica {
    const r = this.replica(shardId);
    if (r.config.isWitness)
      throw new LongboatError("invalidOperation", `replica of shard ${shardId} is a witness`);
    return r;
  }

  private writable(shardId: number): Replica {
    return this.readable(shardId);
  }

  private ticks(timeoutMs: number): number {
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new LongboatError("invalidDeadline", `timeoutMs must be a positive number, got ${timeoutMs}`);
    }
    const ticks = Math.floor(timeoutMs / this.rttMs);
    if (ticks < 1) {
      throw new LongboatError(
        "timeoutTooSmall",
        `${timeoutMs} ms is shorter than one tick (${this.rttMs} ms)`,
      );
    }
    return ticks;
  }
}

/** A non-negative integer option, or null when absent. */
function optionalCount(name: string, value: number | undefined): number | null {
  if (value === undefined) return null;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new LongboatError("invalidOption", `${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

function replicaKey(shardId: number, replicaId: number): ReplicaKey {
  for (const [name, v] of [
    ["shard id", shardId],
    ["replica id", replicaId],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1)
      throw new LongboatError("invalidOption", `${name} must be a positive integer, got ${v}`);
  }
  return { shardId, replicaId };
}

/** The orderedConfigChange setting in a bootstrap record's config JSON (default true). */
function orderedConfigChangeOf(configJson: string): boolean {
  try {
    return (JSON.parse(configJson) as { orderedConfigChange?: unknown }).orderedConfigChange !== false;
  } catch {
    return true;
  }
}

function toMembers(input: Record<number, string> | Map<number, string>): Member[] {
  const entries =
    input instanceof Map
      ? [...input.entries()]
      : Object.entries(input).map(([k, v]) => [Number(k), v] as const);
  return entries
    .map(([replicaId, address]) => ({ replicaId, address }))
    .sort((a, b) => a.replicaId - b.replicaId);
}

function sameMembers(a: Member[], b: Member[]): boolean {
  if (a.length !== b.length) return false;
  const sorted = [...b].sort((x, y) => x.replicaId - y.replicaId);
  return a.every((m, i) => m.replicaId === sorted[i]!.replicaId && m.address === sorted[i]!.address);
}

function validateMembers(members: Member[]): void {
  const seen = new Set<string>();
  for (const m of members) {
    if (!Number.isSafeInteger(m.replicaId) || m.replicaId < 1) {
      throw new LongboatError(
        "invalidShardSettings",
        `initial member id must be a positive integer, got ${m.replicaId}`,
      );
    }
    checkAddress(m.address);
    if (seen.has(m.address)) {
      throw new LongboatError("invalidShardSettings", `address ${m.address} is used by two initial members`);
    }
    seen.add(m.address);
  }
}

function checkAddress(address: string): void {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new LongboatError("invalidAddress", `"${address}" is not host:port with a port in 1..65535`);
  }
}

/** The members of m as "1,2,3" (voting only, or all of them), for messages. */
function memberList(m: Membership, votingOnly = false): string {
  const all = votingOnly ? m.addresses : [...m.addresses, ...m.nonVotings, ...m.witnesses];
  return all.map((x) => x.replicaId).join(",") || "none";
}
