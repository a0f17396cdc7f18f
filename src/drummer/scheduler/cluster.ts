/**
 * One scheduling pass's view of the deployment, built from the committed state and the live
 * reports: which NodeHosts are alive, dead or not yet judged, which replica runs where, which
 * logs each host holds, and how loaded each host is. Everything is computed on first use, so
 * a pass that looks at a few shards of a large deployment costs little.
 */
import type { DbState } from "../db/state.ts";
import {
  type HostObservation,
  type ReplicaIndex,
  type ReplicaObservation,
  replicaKey,
  type SchedulerInput,
} from "./types.ts";

export type HostState = "alive" | "dead" | "unknown";

export interface RunningReplica {
  address: string;
  replica: ReplicaObservation;
}

const NONE: readonly RunningReplica[] = Object.freeze([]);

/** Builds the shard → host → replica index from the hosts' reports. */
export function indexReplicas(hosts: ReadonlyMap<string, HostObservation>): ReplicaIndex {
  const index: ReplicaIndex = new Map();
  for (const h of hosts.values()) {
    for (const r of h.replicas) {
      const m = index.get(r.shardId);
      if (m) m.set(h.raftAddress, r);
      else index.set(r.shardId, new Map([[h.raftAddress, r]]));
    }
  }
  return index;
}

export class ClusterView {
  readonly state: Readonly<DbState>;
  readonly nowMs: number;
  /** True while the leader has listened for less than a dead timeout: nobody is dead yet. */
  readonly listening: boolean;
  private readonly input: SchedulerInput;
  private index: ReplicaIndex | null;
  private readonly running_ = new Map<number, readonly RunningReplica[]>();
  private alive: HostObservation[] | null = null;
  private loads: Map<string, number> | null = null;

  constructor(input: SchedulerInput) {
    this.input = input;
    this.state = input.state;
    this.nowMs = input.nowMs;
    this.listening = input.nowMs - input.listeningSinceMs < input.config.deadTimeoutMs;
    this.index = input.index ?? null;
  }

  /** Alive: heard within the dead timeout. Dead: silent longer, once the leader has listened long enough. */
  hostState(address: string): HostState {
    const h = this.input.hosts.get(address);
    if (h && this.nowMs - h.lastReportMs <= this.input.config.deadTimeoutMs) return "alive";
    return this.listening ? "unknown" : "dead";
  }

  host(address: string): HostObservation | undefined {
    return this.input.hosts.get(address);
  }

  /** Alive hosts in address order. */
  aliveHosts(): readonly HostObservation[] {
    this.alive ??= [...this.input.hosts.values()]
      .filter((h) => this.hostState(h.raftAddress) === "alive")
      .sort((a, b) => (a.raftAddress < b.raftAddress ? -1 : a.raftAddress > b.raftAddress ? 1 : 0));
    return this.alive;
  }

  /** Replicas of shardId that alive hosts report running. */
  runningOf(shardId: number): readonly RunningReplica[] {
    const cached = this.running_.get(shardId);
    if (cached) return cached;
    this.index ??= indexReplicas(this.input.hosts);
    const there = this.index.get(shardId);
    let out: readonly RunningReplica[] = NONE;
    if (there) {
      const list: RunningReplica[] = [];
      for (const [address, replica] of there) {
        if (this.hostState(address) === "alive") list.push({ address, replica });
      }
      out = list.sort((a, b) => (a.address < b.address ? -1 : 1));
    }
    this.running_.set(shardId, out);
    return out;
  }

  /** The observation of replicaId of shardId running at address, if an alive host reports it. */
  running(shardId: number, replicaId: number, address: string): ReplicaObservation | undefined {
    // Straight from the index (one replica per shard and host): runningOf builds a sorted list.
    this.index ??= indexReplicas(this.input.hosts);
    const r = this.index.get(shardId)?.get(address);
    return r !== undefined && r.replicaId === replicaId && this.hostState(address) === "alive"
      ? r
      : undefined;
  }

  hasLog(address: string, shardId: number, replicaId: number): boolean {
    return this.input.hosts.get(address)?.logsOnDisk.has(replicaKey(shardId, replicaId)) ?? false;
  }

  /** A host's region: from its last report, else its record, else "". */
  region(address: string): string {
    return this.input.hosts.get(address)?.region ?? this.state.hosts.get(address)?.region ?? "";
  }

  /** Replicas on a host (members placed there and replicas it runs), counting this pass's placements. */
  load(address: string): number {
    return this.loadMap().get(address) ?? 0;
  }

  addLoad(address: string): void {
    const m = this.loadMap();
    m.set(address, (m.get(address) ?? 0) + 1);
  }

  private loadMap(): Map<string, number> {
    if (this.loads) return this.loads;
    const loads = new Map<string, number>();
    const add = (a: string) => loads.set(a, (loads.get(a) ?? 0) + 1);
    for (const h of this.aliveHosts()) loads.set(h.raftAddress, h.replicas.length);
    for (const v of this.state.views.values()) {
      for (const m of v.members) if (!this.running(v.shardId, m.replicaId, m.raftAddress)) add(m.raftAddress);
    }
    this.loads = loads;
    return loads;
  }
}
