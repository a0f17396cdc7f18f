// A cluster of NodeHosts in one process: simulated network, in-memory log databases and a
// virtual clock, so engine tests run fast and replay exactly.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualEnv } from "../../src/env.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import type { FileSystem } from "../../src/fs/filesystem.ts";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { NodeHost, type NodeHostConfig } from "../../src/nodehost.ts";
import { Role } from "../../src/raft/config.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import type { CreateStateMachine } from "../../src/statemachine/types.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import type { ReplicaConfigInput } from "../../src/engine/config.ts";
import { currentTest, parkIfEnded, type Tracked, track } from "../support/resources.ts";

export const RTT_MS = 10;

export function hostAddress(i: number): string {
  return `10.0.0.${i}:7001`;
}

/** Lets every pending promise continuation run (a macrotask boundary drains all microtasks). */
export function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The real file system without syncAsync and syncDirAsync: a snapshot's fsyncs then complete in
 * the engine's (virtual) time instead of whenever the disk answers, so runs stay deterministic.
 */
const virtualTimeFs: FileSystem = {
  ...nodeFileSystem,
  syncDirAsync: undefined,
  open(path, mode) {
    const h = nodeFileSystem.open(path, mode);
    return {
      write: (data) => h.write(data),
      read: (into, position) => h.read(into, position),
      sizeBytes: () => h.sizeBytes(),
      sync: () => h.sync(),
      close: () => h.close(),
    };
  },
};

/** A promise that never settles: where a loop of a closed cluster stops for good. */
const PARKED = new Promise<never>(() => {});

/** What a cluster's driving loop is doing (for the afterEach report of a test that timed out). */
interface Activity {
  what: string;
  startMs: number;
  maxMs: number;
}

export class SimCluster {
  readonly env: ManualEnv;
  readonly net: SimNetwork;
  readonly hosts = new Map<number, NodeHost>();
  readonly logdbs = new Map<number, MemoryLogDB>();
  readonly root: string;
  readonly kv: CreateStateMachine = builtinApps().get("kv");
  private closed = false;
  private activity: Activity | null = null;
  /** Replica id and kind of each shard a NodeHost runs (see view). */
  private readonly replicaCache = new WeakMap<
    NodeHost,
    Map<number, { replicaId: number; witness: boolean }>
  >();
  private readonly tracked: Tracked;

  /**
   * writerLatencyMs: each log writer batch takes this long on the virtual clock (default 0).
   * snapshotStepLatencyMs: so does each step of a snapshot write (a chunk, the fsync).
   */
  constructor(
    readonly seed = 1,
    private readonly opts: { writerLatencyMs?: number; snapshotStepLatencyMs?: number } = {},
  ) {
    this.env = new ManualEnv(seed);
    this.net = new SimNetwork(this.env);
    this.root = mkdtempSync(join(tmpdir(), "longboat-engine-"));
    // Stopped after the test however it ends; a loop still running then (the test timed out)
    // stops where it is instead of driving this cluster, or the next test's, any further.
    this.tracked = track(`SimCluster(seed ${seed})`, () => this.close(), { busy: () => this.busy() });
  }

  /** Starts (or restarts over its durable log) NodeHost i. */
  async startHost(i: number, extra: Partial<NodeHostConfig> = {}): Promise<NodeHost> {
    this.checkOpen();
    const address = hostAddress(i);
    let logdb = this.logdbs.get(i);
    if (!logdb) {
      logdb = new MemoryLogDB({
        identity: { raftAddress: address, deploymentId: 1, formatVersion: 1 },
        // The log writer on the virtual clock: by default a batch is durable as soon as the loop yields.
        writer: {
          nowMs: () => this.env.nowMs(),
          setTimer: (ms, fn) => this.env.setTimer(ms, fn),
          latencyMs: () => this.opts.writerLatencyMs ?? 0,
        },
      });
      this.logdbs.set(i, logdb);
    }
    const db = logdb;
    const nh = new NodeHost({
      nodeHostDir: join(this.root, `host-${i}`),
      raftAddress: address,
      rttMs: RTT_MS,
      env: this.env,
      expert: {
        logdb: db,
        fs: virtualTimeFs,
        ...(this.opts.snapshotStepLatencyMs === undefined
          ? {}
          : { snapshotStepLatencyMs: () => this.opts.snapshotStepLatencyMs ?? 0 }),
        transport: (registry) => this.net.transport(address, 1, registry),
      },
      ...extra,
    });
    this.hosts.set(i, nh);
    await this.settle(nh.ready);
    return nh;
  }

  host(i: number): NodeHost {
    const nh = this.hosts.get(i);
    if (!nh) throw new Error(`host ${i} is not running`);
    return nh;
  }

  members(ids: number[]): Record<number, string> {
    const out: Record<number, string> = {};
    for (const id of ids) out[id] = hostAddress(id);
    return out;
  }

  /** Starts replica i of shardId on host i for every id, all initial members. */
  async startShard(shardId: number, ids: number[], config: Partial<ReplicaConfigInput> = {}): Promise<void> {
    for (const id of ids) {
      await this.settle(
        this.host(id).startReplica(
          this.members(ids),
          false,
          this.kv,
          { shardId, replicaId: id, ...config },
          { app: "kv" },
        ),
      );
    }
  }

  /** Advances virtual time until the promise settles (or maxMs passes, then throws). */
  async settle<T>(promise: Promise<T>, maxMs = 30_000): Promise<T> {
    this.checkOpen();
    return this.drive(promise, maxMs, "settling a promise");
  }

  /** Advances virtual time until cond() holds; throws after maxMs. */
  async until(cond: () => boolean, maxMs = 30_000, what = "condition"): Promise<void> {
    this.checkOpen();
    this.activity = { what: `until(${what})`, startMs: this.env.nowMs(), maxMs };
    const token = currentTest();
    try {
      for (let t = 0; t < maxMs; t += 1) {
        if (cond()) return;
        await this.step(token);
      }
      if (!cond()) throw new Error(`${what} not reached within ${maxMs} simulated ms ${this.at()}`);
    } finally {
      this.activity = null;
    }
  }

  async run(ms: number): Promise<void> {
    this.checkOpen();
    this.activity = { what: `run(${ms})`, startMs: this.env.nowMs(), maxMs: ms };
    const token = currentTest();
    try {
      for (let t = 0; t < ms; t += 1) await this.step(token);
    } finally {
      this.activity = null;
    }
  }

  /** The host index whose replica leads shardId, or 0. */
  leaderOf(shardId: number): number {
    for (const i of this.hosts.keys()) {
      const v = this.view(i, shardId);
      if (v && v.leaderId === v.replicaId) return i;
    }
    return 0;
  }

  /**
   * Host i's replica of shardId and the leader it knows; undefined when host i does not run
   * the shard (or is stopped). Cheap enough to ask every simulated millisecond for every
   * shard: the leader comes from getLeaderId, and the replica id and kind, which do not change
   * while a NodeHost runs a shard, are read once from getNodeHostInfo (which copies every
   * shard's membership: asked per shard per millisecond it cost 10× the simulation itself).
   * A raft replica names itself leader exactly while it leads (becomeLeader sets it; every
   * other transition sets another replica or none).
   */
  view(i: number, shardId: number): { replicaId: number; witness: boolean; leaderId: number } | undefined {
    const nh = this.hosts.get(i);
    if (!nh) return undefined;
    let leaderId: number;
    try {
      leaderId = nh.getLeaderId(shardId).leaderId;
    } catch {
      return undefined; // not running there, or the host stopped
    }
    let replicas = this.replicaCache.get(nh);
    if (!replicas?.has(shardId)) {
      replicas = new Map();
      for (const s of nh.getNodeHostInfo({ skipLogInfo: true }).shards) {
        replicas.set(s.shardId, { replicaId: s.replicaId, witness: s.role === Role.Witness });
      }
      this.replicaCache.set(nh, replicas);
    }
    const r = replicas.get(shardId);
    return r && { ...r, leaderId };
  }

  /**
   * Waits until every running host of the shard knows the same leader and that leader serves
   * a linearizable read (its no-op of the term committed); returns the leader's host index.
   */
  async waitLeader(shardId: number, maxMs = 30_000): Promise<number> {
    const agreed = () => {
      const leader = this.leaderOf(shardId);
      if (leader === 0) return false;
      for (const i of this.hosts.keys()) {
        const v = this.view(i, shardId);
        if (v && !v.witness && v.leaderId !== leader) return false;
      }
      return true;
    };
    for (let attempt = 0; attempt < 20; attempt++) {
      await this.until(agreed, maxMs, `an agreed leader for shard ${shardId}`);
      const leader = this.leaderOf(shardId);
      try {
        await this.settle(this.host(leader).syncGetShardMembership(shardId, { timeoutMs: 1000 }));
        return leader;
      } catch {
        await this.run(50);
      }
    }
    throw new Error(`shard ${shardId} has no leader able to serve reads ${this.at()}`);
  }

  /** Stops host i as a crash would: nothing more is written; its log database keeps what was saved. */
  async crashHost(i: number): Promise<void> {
    const nh = this.host(i);
    this.hosts.delete(i);
    await this.settle(nh.stop());
    this.logdbs.get(i)?.crash();
  }

  /**
   * Stops every host and removes the data directory. Called by the test, or after it by the
   * resource registry; a loop of this cluster still running (a test that timed out) never
   * resumes, so it cannot drive this cluster, or the next test's through a shared variable.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tracked.release();
    for (const nh of this.hosts.values()) await this.drive(nh.stop(), 30_000, "stopping").catch(() => {});
    this.hosts.clear();
    rmSync(this.root, { recursive: true, force: true });
  }

  /** "at simulated N ms": where a failure happened, for its message. */
  private at(): string {
    return `(at simulated ${this.env.nowMs()} ms, seed ${this.seed})`;
  }

  private busy(): string | null {
    const a = this.activity;
    if (a === null) return null;
    const now = this.env.nowMs();
    return `in ${a.what} at simulated ${now} ms (${now - a.startMs} of at most ${a.maxMs} simulated ms into it)`;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`SimCluster(seed ${this.seed}) is closed ${this.at()}`);
  }

  /**
   * One simulated millisecond, then every continuation it made runnable. Never returns once
   * the cluster is closed or the test that started the loop (token) has ended.
   */
  private async step(token: number): Promise<void> {
    this.env.advance(1);
    await drain();
    if (this.closed) await PARKED;
    await parkIfEnded(token);
  }

  private async drive<T>(promise: Promise<T>, maxMs: number, what: string): Promise<T> {
    let done = false;
    let value: T | undefined;
    let error: unknown;
    let failed = false;
    promise.then(
      (v) => {
        done = true;
        value = v;
      },
      (e) => {
        done = true;
        failed = true;
        error = e;
      },
    );
    const closing = this.closed;
    const token = currentTest();
    if (!closing) this.activity = { what, startMs: this.env.nowMs(), maxMs };
    try {
      await drain();
      for (let t = 0; !done && t < maxMs; t += 1) {
        if (closing) {
          this.env.advance(1);
          await drain();
        } else await this.step(token);
      }
    } finally {
      if (!closing) this.activity = null;
    }
    if (!done) throw new Error(`promise did not settle within ${maxMs} simulated ms ${this.at()}`);
    if (failed) throw error;
    return value as T;
  }
}
