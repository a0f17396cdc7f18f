/**
 * One scheduling pass's view of the deployment, built from the committed state and the live
 * reports: which NodeHosts are alive, dead or not yet judged, which replica runs where, which
 * logs each host holds, and how loaded each host is.
 */
import type { DbState } from "../db/state.ts";
import { type HostObservation, type ReplicaObservation, replicaKey, type SchedulerInput } from "./types.ts";

export type HostState = "alive" | "dead" | "unknown";

export interface RunningReplica {
  address: string;
  replica: ReplicaObservation;
}

export class ClusterView {
  readonly state: Readonly<DbState>;
  readonly nowMs: number;
  /** True while the leader has listened for less than a dead timeout: nobody is dead yet. */
  readonly listening: boolean;
  private readonly input: SchedulerInput;
  /** shard → replicas running (as reported by alive hosts). */
  private readonly byShard = new Map<number, RunningReplica[]>();
  private readonly loads = new Map<string, number>();

  constructor(input: SchedulerInput) {
    this.input = input;
    this.state = input.state;
    this.nowMs = input.nowMs;
    this.listening = input.nowMs - input.listeningSinceMs < input.config.deadTimeoutMs;
    for (const h of input.hosts.values()) {
      if (this.hostState(h.raftAddress) !== "alive") continue;
      for (const r of h.replicas) {
        const list = this.byShard.get(r.shardId);
        const entry = { address: h.raftAddress, replica: r };
        if (list) list.push(entry);
        else this.byShard.set(r.shardId, [entry]);
        this.addLoad(h.raftAddress);
      }
    }
    for (const v of input.state.views.values()) {
      for (const m of v.members) {
        if (!this.running(v.shardId, m.replicaId, m.raftAddress)) this.addLoad(m.raftAddress);
      }
    }
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
  aliveHosts(): HostObservation[] {
    return [...this.input.hosts.values()]
      .filter((h) => this.hostState(h.raftAddress) === "alive")
      .sort((a, b) => (a.raftAddress < b.raftAddress ? -1 : a.raftAddress > b.raftAddress ? 1 : 0));
  }

  runningOf(shardId: number): readonly RunningReplica[] {
    return this.byShard.get(shardId) ?? [];
  }

  /** The observation of replicaId of shardId running at address, if an alive host reports it. */
  running(shardId: number, replicaId: number, address: string): ReplicaObservation | undefined {
    return this.runningOf(shardId).find((r) => r.replica.replicaId === replicaId && r.address === address)
      ?.replica;
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
    return this.loads.get(address) ?? 0;
  }

  addLoad(address: string): void {
    this.loads.set(address, this.load(address) + 1);
  }
}
