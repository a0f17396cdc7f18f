/**
 * Launch: every defined shard not placed yet, once the deployment is bootstrapped, gets its
 * initial members placed over alive NodeHosts (regions honoured, least loaded first). A shard
 * that cannot be placed is reported and tried again next pass: there is no launch deadline
 * that could fail DrummerDB (the reference's crash loop, §11.1).
 */
import type { Decision, ShardDefinition, ShardMember } from "../types.ts";
import { DecisionKind } from "../types.ts";
import type { ClusterView } from "./cluster.ts";
import { placeReplicas } from "./placement.ts";
import type { Problem, SchedulerConfig } from "./types.ts";

export function launches(
  c: ClusterView,
  config: SchedulerConfig,
  ending = 0,
): { decisions: Decision[]; problems: Problem[]; more: boolean } {
  const decisions: Decision[] = [];
  const problems: Problem[] = [];
  if (!c.state.bootstrapped) return { decisions, problems, more: false };
  let launched = 0;
  // Only the unplaced ones are sorted (all of them, every pass, was most of a steady pass).
  const defs: ShardDefinition[] = [];
  for (const def of c.state.shards.values()) if (!c.state.views.has(def.shardId)) defs.push(def);
  defs.sort((a, b) => a.shardId - b.shardId);
  let inFlight = c.state.inFlight.size - ending; // those this pass ends make room

  for (const def of defs) {
    // Waiting on the NodeHosts (their reports end the creates): not worth planning again soon.
    if (inFlight >= config.launchInFlightMax) return { decisions, problems, more: false };
    if (launched >= config.launchesPerPassMax) return { decisions, problems, more: true };
    const placement = placeReplicas(c, def.replicaCount, def.regions, new Set());
    if (!placement.ok) {
      problems.push({
        shardId: def.shardId,
        message: `cannot place shard ${def.shardId}: ${placement.problem}`,
      });
      continue;
    }
    for (const a of placement.addresses) c.addLoad(a);
    const members = placement.addresses.map((raftAddress, i) => ({ replicaId: i + 1, raftAddress }));
    decisions.push(...members.map((m) => createDecision(def, m, members, "launch")));
    inFlight += members.length;
    launched++;
  }
  return { decisions, problems, more: false };
}

/** The create of one initial member (a launch, or its retry). */
export function createDecision(
  def: ShardDefinition,
  m: ShardMember,
  initialMembers: ShardMember[],
  reason: string,
): Decision {
  return {
    decisionId: 0,
    kind: DecisionKind.Create,
    shardId: def.shardId,
    replicaId: m.replicaId,
    replicaAddress: m.raftAddress,
    executorAddress: m.raftAddress,
    app: def.app,
    initialMembers,
    configChangeId: 0,
    reason,
    repair: false,
    createdMs: 0,
    endedMs: 0,
    state: 1,
    outcome: "",
    leaderTerm: 0,
    currentMembers: [],
  };
}
