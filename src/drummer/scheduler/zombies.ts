/**
 * Zombies: a replica that runs on (or whose data sits on) an alive NodeHost although its
 * shard's committed view no longer lists it, because its removal is committed (the view
 * dropped it) or it was never a member. It is stopped and its data removed — at most one
 * kill in flight per replica and host, and a bounded number decided per pass. A replica that
 * reports a newer membership than the view is left alone: the view is behind, not the replica.
 */
import {
  type Decision,
  DecisionKind,
  DecisionState,
  type ShardDefinition,
  type ShardView,
} from "../types.ts";
import type { ClusterView } from "./cluster.ts";
import { createDecision } from "./launch.ts";
import { replicaKey, type SchedulerConfig } from "./types.ts";

interface Candidate {
  shardId: number;
  replicaId: number;
  address: string;
  running: boolean;
}

/** Kills for zombies on alive hosts (on `only` of them, when given). */
export function zombieKills(c: ClusterView, config: SchedulerConfig, only?: ReadonlySet<string>): Decision[] {
  const out: Decision[] = [];
  for (const h of c.aliveHosts()) {
    if (only && !only.has(h.raftAddress)) continue;
    for (const z of candidatesOn(c, h.raftAddress)) {
      if (out.length >= config.killsPerPassMax) return out;
      const def = c.state.shards.get(z.shardId);
      const view = c.state.views.get(z.shardId);
      if (!def || !view || !isZombie(c, view, z) || recentlyTried(c, z, config)) continue;
      out.push(killDecision(def, z));
    }
  }
  return out;
}

/** Replicas a host runs or holds data of that its shard's view does not list there, each once. */
function candidatesOn(c: ClusterView, address: string): Candidate[] {
  const h = c.host(address)!;
  const out: Candidate[] = [];
  const member = (shardId: number, replicaId: number) =>
    c.state.views.get(shardId)?.members.some((m) => m.replicaId === replicaId && m.raftAddress === address) ??
    true;
  const runs = new Set<string>();
  for (const r of h.replicas) {
    runs.add(replicaKey(r.shardId, r.replicaId));
    if (!member(r.shardId, r.replicaId))
      out.push({ shardId: r.shardId, replicaId: r.replicaId, address, running: true });
  }
  for (const key of h.logsOnDisk) {
    if (runs.has(key)) continue;
    const colon = key.indexOf(":");
    const shardId = Number(key.slice(0, colon));
    const replicaId = Number(key.slice(colon + 1));
    if (!member(shardId, replicaId)) out.push({ shardId, replicaId, address, running: false });
  }
  return out;
}

function isZombie(c: ClusterView, view: ShardView, z: Candidate): boolean {
  if (view.members.some((m) => m.replicaId === z.replicaId)) return false;
  if (z.running) {
    const r = c.running(z.shardId, z.replicaId, z.address);
    if (r && !r.pending && r.configChangeId > view.configChangeId) return false;
  }
  for (const d of c.state.inFlight.values()) {
    if (d.shardId === z.shardId && d.replicaId === z.replicaId && d.kind !== DecisionKind.Kill) return false;
  }
  return view.removedReplicaIds.includes(z.replicaId) || z.replicaId < view.nextReplicaId;
}

/** A kill of this replica on this host is in flight, or failed less than a decision timeout ago. */
function recentlyTried(c: ClusterView, z: Candidate, config: SchedulerConfig): boolean {
  const same = (d: Decision) =>
    d.kind === DecisionKind.Kill &&
    d.shardId === z.shardId &&
    d.replicaId === z.replicaId &&
    d.replicaAddress === z.address;
  for (const d of c.state.inFlight.values()) if (same(d)) return true;
  for (const d of c.state.finished) {
    if (same(d) && d.state === DecisionState.Failed && c.nowMs - d.endedMs < config.decisionTimeoutMs)
      return true;
  }
  return false;
}

function killDecision(def: ShardDefinition, z: Candidate): Decision {
  const why = z.running ? "runs" : "has data";
  return {
    ...createDecision(
      def,
      { replicaId: z.replicaId, raftAddress: z.address },
      [],
      `replica ${z.replicaId} ${why} but is not a member`,
    ),
    kind: DecisionKind.Kill,
  };
}
