/**
 * A scheduler test bench: a DrummerDB (TestDB), NodeHosts as the leader's observations, and
 * a clock. `pass()` runs the scheduler and commits its step; `execute()` plays the NodeHosts
 * carrying out every decision in flight (instantly, as a perfect NodeHost would).
 */
import type { SchedulerOutput } from "../../src/drummer/scheduler/types.ts";
import {
  DEFAULT_SCHEDULER_CONFIG,
  type HostObservation,
  type ReplicaObservation,
  replicaKey,
  type SchedulerConfig,
} from "../../src/drummer/scheduler/types.ts";
import { schedule } from "../../src/drummer/scheduler/schedule.ts";
import { DecisionKind, type ShardMember } from "../../src/drummer/types.ts";
import { TestDB } from "./helpers.ts";

export const DEAD_MS = 10_000;

export class Fleet {
  readonly db: TestDB;
  readonly hosts = new Map<string, HostObservation>();
  /** Hosts that report when time advances. */
  readonly up = new Set<string>();
  nowMs = 1_000_000;
  listeningSinceMs = 0;
  config: SchedulerConfig = {
    ...DEFAULT_SCHEDULER_CONFIG,
    deadTimeoutMs: DEAD_MS,
    decisionTimeoutMs: DEAD_MS,
  };
  last: SchedulerOutput | null = null;
  lastMessage = "";
  /** Decision kinds to leave undone in execute() (a NodeHost that never does them). */
  readonly ignore = new Set<string>();

  constructor(
    shards: { shardId: number; replicaCount?: number; regions?: { region: string; count: number }[] }[],
  ) {
    this.db = new TestDB();
    this.db.apply({ kind: "setDeployment", deploymentId: 1 });
    for (const s of shards) {
      this.db.apply({
        kind: "createShard",
        shard: { shardId: s.shardId, app: "kv", replicaCount: s.replicaCount ?? 3, regions: s.regions ?? [] },
      });
    }
    this.db.apply({ kind: "bootstrap" });
    this.db.apply({ kind: "leaderStarted", leaderTerm: 1, drummerId: 1 });
  }

  get state() {
    return this.db.state;
  }

  addHost(address: string, region = "r1", apiAddress = ""): HostObservation {
    const h: HostObservation = {
      raftAddress: address,
      apiAddress,
      region,
      lastReportMs: this.nowMs,
      replicas: [],
      logsOnDisk: new Set(),
      results: new Map(),
    };
    this.hosts.set(address, h);
    this.up.add(address);
    return h;
  }

  /** The host stops reporting (its process is gone; its data stays). */
  kill(address: string): void {
    this.up.delete(address);
  }

  /** The host comes back: it runs nothing, its data (logs) is still there. */
  restart(address: string): void {
    const h = this.hosts.get(address)!;
    h.replicas = [];
    h.lastReportMs = this.nowMs;
    this.up.add(address);
  }

  advance(ms: number): void {
    this.nowMs += ms;
    for (const a of this.up) this.hosts.get(a)!.lastReportMs = this.nowMs;
  }

  pass(): SchedulerOutput {
    const out = schedule({
      state: this.db.state,
      hosts: this.hosts,
      nowMs: this.nowMs,
      listeningSinceMs: this.listeningSinceMs,
      config: this.config,
    });
    this.lastMessage = this.db.step({
      leaderTerm: 1,
      nowMs: this.nowMs,
      maxRepairs: this.config.maxRepairs,
      ...out.step,
    }).message;
    this.last = out;
    return out;
  }

  /** Plays every up host carrying out its in-flight decisions. */
  execute(): void {
    for (const d of [...this.state.inFlight.values()]) {
      if (!this.up.has(d.executorAddress) || this.ignore.has(kindName(d.kind))) continue;
      const view = this.state.views.get(d.shardId)!;
      const target = this.hosts.get(d.replicaAddress)!;
      if (d.kind === DecisionKind.Create || d.kind === DecisionKind.Restore || d.kind === DecisionKind.Join) {
        if (!this.up.has(d.replicaAddress)) continue;
        this.run(
          target,
          d.shardId,
          d.replicaId,
          this.runningMembership(d.shardId) ?? {
            cc: view.configChangeId || view.members.length,
            members: view.members,
          },
        );
      } else if (d.kind === DecisionKind.Add || d.kind === DecisionKind.Remove) {
        const m = this.runningMembership(d.shardId)!;
        const members =
          d.kind === DecisionKind.Add
            ? [...m.members, { replicaId: d.replicaId, raftAddress: d.replicaAddress }]
            : m.members.filter((x) => x.replicaId !== d.replicaId);
        this.setMembership(d.shardId, { cc: m.cc + 1, members });
      } else if (d.kind === DecisionKind.Kill) {
        target.replicas = target.replicas.filter(
          (r) => !(r.shardId === d.shardId && r.replicaId === d.replicaId),
        );
        target.logsOnDisk.delete(replicaKey(d.shardId, d.replicaId));
      }
    }
  }

  /** pass, execute, advance: n times. */
  cycle(n = 1, stepMs = 1000): void {
    for (let i = 0; i < n; i++) {
      this.pass();
      this.execute();
      this.advance(stepMs);
    }
  }

  run(
    h: HostObservation,
    shardId: number,
    replicaId: number,
    m: { cc: number; members: ShardMember[] },
  ): void {
    h.replicas = h.replicas.filter((r) => r.shardId !== shardId);
    h.replicas.push(replica(shardId, replicaId, m));
    h.logsOnDisk.add(replicaKey(shardId, replicaId));
  }

  /** The membership the shard's running replicas (on up hosts) have, the newest. */
  runningMembership(shardId: number): { cc: number; members: ShardMember[] } | null {
    let best: { cc: number; members: ShardMember[] } | null = null;
    for (const a of this.up) {
      for (const r of this.hosts.get(a)!.replicas) {
        if (r.shardId === shardId && (!best || r.configChangeId > best.cc))
          best = { cc: r.configChangeId, members: r.members };
      }
    }
    return best;
  }

  setMembership(shardId: number, m: { cc: number; members: ShardMember[] }): void {
    for (const a of this.up) {
      const h = this.hosts.get(a)!;
      h.replicas = h.replicas.map((r) => (r.shardId === shardId ? replica(shardId, r.replicaId, m) : r));
    }
  }

  /** Addresses of the shard's committed members. */
  members(shardId: number): string[] {
    return (this.state.views.get(shardId)?.members ?? []).map((m) => m.raftAddress);
  }

  kinds(): string[] {
    return (this.last?.step.decisions ?? []).map(
      (d) => `${kindName(d.kind)} ${d.shardId}/${d.replicaId || "new"}@${d.replicaAddress}`,
    );
  }
}

export function kindName(kind: number): string {
  return ["", "create", "add", "join", "remove", "restore", "kill"][kind] ?? `kind${kind}`;
}

function replica(
  shardId: number,
  replicaId: number,
  m: { cc: number; members: ShardMember[] },
): ReplicaObservation {
  return {
    shardId,
    replicaId,
    app: "kv",
    isLeader: false,
    leaderReplicaId: 0,
    configChangeId: m.cc,
    members: m.members.map((x) => ({ ...x })),
    appliedIndex: 1,
    pending: false,
  };
}
