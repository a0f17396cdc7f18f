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
): { decisions: Decision[]; problems: Problem[] } {
  const decisions: Decision[] = [];
  const problems: Problem[] = [];
  if (!c.state.bootstrapped) return { decisions, problems };
  let launched = 0;
  const defs = [...c.state.shards.values()].sort((a, b) => a.shardId - b.shardId);
  for (const def of defs) {
    if (c.state.views.has(def.shardId)) continue;
    if (launched >= config.launchesPerPassMax) break;
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
    launched++;
  }
  return { decisions, problems };
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
