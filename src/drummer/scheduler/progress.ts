/**
 * What the reports say about the committed state: decisions whose effect is visible (or that
 * failed, or took too long), memberships newer than DrummerDB's views, and NodeHost records
 * whose region or API address changed (the reference kept the first API address for ever,
 * §11.12).
 */
import {
  type Decision,
  DecisionKind,
  describeDecision,
  type HostRecord,
  type ShardView,
  startsReplica,
} from "../types.ts";
import type { ClusterView } from "./cluster.ts";
import type { SchedulerConfig, StepItems } from "./types.ts";

type End = StepItems["ends"][number];

/** Ends for in-flight decisions: done when seen, failed on the executor's word, its death or the timeout. */
export function decisionEnds(c: ClusterView, config: SchedulerConfig): End[] {
  const ends: End[] = [];
  for (const d of c.state.inFlight.values()) {
    const end = endOf(c, d, config);
    if (end) ends.push({ decisionId: d.decisionId, ...end });
  }
  return ends;
}

function endOf(c: ClusterView, d: Decision, config: SchedulerConfig): Omit<End, "decisionId"> | null {
  const result = c.host(d.executorAddress)?.results.get(d.decisionId);
  if (startsReplica(d.kind) && c.running(d.shardId, d.replicaId, d.replicaAddress)) {
    return { failed: false, outcome: `replica ${d.replicaId} runs on ${d.replicaAddress}` };
  }
  if (d.kind === DecisionKind.Kill && killed(c, d)) {
    return {
      failed: false,
      outcome: `replica ${d.replicaId} stopped and its data removed on ${d.replicaAddress}`,
    };
  }
  if (result && !result.ok) return { failed: true, outcome: `${d.executorAddress}: ${result.message}` };
  if (c.hostState(d.executorAddress) === "dead") {
    return { failed: true, outcome: `${d.executorAddress}, which was to carry it out, is dead` };
  }
  if (c.nowMs - d.createdMs > config.decisionTimeoutMs) {
    const why = d.kind === DecisionKind.Kill ? `; ${notKilled(c, d)}` : "";
    return {
      failed: true,
      outcome: `no effect seen within ${config.decisionTimeoutMs} ms (${describeDecision(d)}${why})`,
    };
  }
  return null;
}

/** What keeps a kill from counting as done (in its outcome when it times out). */
function notKilled(c: ClusterView, d: Decision): string {
  const h = c.host(d.replicaAddress);
  if (!h) return "its host never reported";
  if (c.hostState(d.replicaAddress) !== "alive") return "its host is not alive";
  if (h.lastReportMs < d.createdMs)
    return `its host last reported at ${h.lastReportMs} ms, before the decision (${d.createdMs} ms)`;
  // How old the report is tells a host that keeps reporting the replica from one gone silent.
  const age = `in its last report, ${Math.round(c.nowMs - h.lastReportMs)} ms ago`;
  if (c.running(d.shardId, d.replicaId, d.replicaAddress))
    return `its host reports the replica running (${age})`;
  if (c.hasLog(d.replicaAddress, d.shardId, d.replicaId))
    return `its host reports the replica's data on disk (${age})`;
  return "its host reports it gone";
}

/** A kill is done once its host, alive, reports after the decision neither running the replica nor holding its data. */
function killed(c: ClusterView, d: Decision): boolean {
  const h = c.host(d.replicaAddress);
  if (!h || c.hostState(d.replicaAddress) !== "alive" || h.lastReportMs < d.createdMs) return false;
  return (
    !c.running(d.shardId, d.replicaId, d.replicaAddress) &&
    !c.hasLog(d.replicaAddress, d.shardId, d.replicaId)
  );
}

/** Memberships newer than the views of shardIds: the highest config-change index any running replica reports. */
export function observedViews(c: ClusterView, shardIds: readonly number[]): StepItems["views"] {
  const out: StepItems["views"] = [];
  for (const id of shardIds) {
    const view = c.state.views.get(id);
    const newest = view ? newestMembership(c, view) : null;
    if (newest) out.push(newest);
  }
  return out;
}

function newestMembership(c: ClusterView, view: ShardView): StepItems["views"][number] | null {
  let best: StepItems["views"][number] | null = null;
  for (const { replica } of c.runningOf(view.shardId)) {
    if (replica.pending || replica.members.length === 0) continue;
    if (replica.configChangeId <= (best?.configChangeId ?? view.configChangeId)) continue;
    best = { shardId: view.shardId, configChangeId: replica.configChangeId, members: replica.members };
  }
  return best;
}

/** Records of alive hosts (of only, when given) that DrummerDB lacks or has with another region or API address. */
export function changedHosts(c: ClusterView, only?: ReadonlySet<string>): HostRecord[] {
  const out: HostRecord[] = [];
  for (const h of c.aliveHosts()) {
    if (only && !only.has(h.raftAddress)) continue;
    const have = c.state.hosts.get(h.raftAddress);
    if (have && have.region === h.region && have.apiAddress === h.apiAddress) continue;
    out.push({ raftAddress: h.raftAddress, apiAddress: h.apiAddress, region: h.region });
  }
  return out;
}
