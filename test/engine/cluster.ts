// A cluster of NodeHosts in one process: simulated network, in-memory log databases and a
// virtual clock, so engine tests run fast and replay exactly.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualEnv } from "../../src/env.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { NodeHost, type NodeHostConfig } from "../../src/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import type { CreateStateMachine } from "../../src/statemachine/types.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import type { ReplicaConfigInput } from "../../src/engine/config.ts";

export const RTT_MS = 10;

export function hostAddress(i: number): string {
  return `10.0.0.${i}:7001`;
}

/** Lets every pending promise continuation run (a macrotask boundary drains all microtasks). */
export function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class SimCluster {
  readonly env: ManualEnv;
  readonly net: SimNetwork;
  readonly hosts = new Map<number, NodeHost>();
  readonly logdbs = new Map<number, MemoryLogDB>();
  readonly root: string;
  readonly kv: CreateStateMachine = builtinApps().get("kv");

  /** writerLatencyMs: each log writer batch takes this long on the virtual clock (default 0). */
  constructor(
    seed = 1,
    private readonly opts: { writerLatencyMs?: number } = {},
  ) {
    this.env = new ManualEnv(seed);
    this.net = new SimNetwork(this.env);
    this.root = mkdtempSync(join(tmpdir(), "longboat-engine-"));
  }

  /** Starts (or restarts over its durable log) NodeHost i. */
  async startHost(i: number, extra: Partial<NodeHostConfig> = {}): Promise<NodeHost> {
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
    await drain();
    for (let t = 0; !done && t < maxMs; t += 1) {
      this.env.advance(1);
      await drain();
    }
    if (!done) throw new Error(`promise did not settle within ${maxMs} simulated ms`);
    if (failed) throw error;
    return value as T;
  }

  /** Advances virtual time until cond() holds; throws after maxMs. */
  async until(cond: () => boolean, maxMs = 30_000, what = "condition"): Promise<void> {
    for (let t = 0; t < maxMs; t += 1) {
      if (cond()) return;
      this.env.advance(1);
      await drain();
    }
    if (!cond()) throw new Error(`${what} not reached within ${maxMs} simulated ms`);
  }

  async run(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 1) {
      this.env.advance(1);
      await drain();
    }
  }

  leaderOf(shardId: number): number {
    for (const [i, nh] of this.hosts) {
      try {
        const info = nh.getNodeHostInfo({ skipLogInfo: true }).shards.find((s) => s.shardId === shardId);
        if (info?.isLeader) return i;
      } catch {
        // stopped host
      }
    }
    return 0;
  }

  /**
   * Waits until every running host of the shard knows the same leader and that leader serves
   * a linearizable read (its no-op of the term committed); returns the leader's host index.
   */
  async waitLeader(shardId: number, maxMs = 30_000): Promise<number> {
    const agreed = () => {
      const leader = this.leaderOf(shardId);
      if (leader === 0) return false;
      for (const nh of this.hosts.values()) {
        const s = nh.getNodeHostInfo({ skipLogInfo: true }).shards.find((x) => x.shardId === shardId);
        if (s && s.role !== 6 && s.leaderId !== leader) return false;
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
    throw new Error(`shard ${shardId} has no leader able to serve reads`);
  }

  /** Stops host i as a crash would: nothing more is written; its log database keeps what was saved. */
  async crashHost(i: number): Promise<void> {
    const nh = this.host(i);
    this.hosts.delete(i);
    await this.settle(nh.stop());
    this.logdbs.get(i)?.crash();
  }

  async close(): Promise<void> {
    for (const nh of this.hosts.values()) await this.settle(nh.stop()).catch(() => {});
    this.hosts.clear();
    rmSync(this.root, { recursive: true, force: true });
  }
}
