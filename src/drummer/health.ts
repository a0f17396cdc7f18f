/**
 * How the deployment looks to the leader, for people: every shard's health with its members'
 * states and the reason, and every NodeHost alive, dead or not yet judged. Computed from the
 * committed state and the leader's reports with the scheduler's own view, so the API shows
 * exactly what the scheduler acts on.
 */
import { inFlightOf } from "./db/state.ts";
import { ClusterView } from "./scheduler/cluster.ts";
import { analyzeShard, type MemberState } from "./scheduler/members.ts";
import type { HostFigures, Problem, SchedulerInput } from "./scheduler/types.ts";
import { changesShard, DECISION_KIND_NAMES, type ShardDefinition } from "./types.ts";

/** Numbered as ShardHealth in drummer.proto. */
export const ShardHealth = {
  Ok: 1,
  UnderReplicated: 2,
  Repairing: 3,
  NoQuorum: 4,
  Unplaced: 5,
  Placing: 6,
  Unknown: 7,
} as const;
export type ShardHealth = (typeof ShardHealth)[keyof typeof ShardHealth];

export const SHARD_HEALTH_NAMES: Record<ShardHealth, string> = {
  1: "ok",
  2: "under-replicated",
  3: "repairing",
  4: "no quorum",
  5: "unplaced",
  6: "placing",
  7: "unknown",
};

const MEMBER_STATE_NUMBERS: Record<MemberState, number> = {
  ok: 1,
  starting: 2,
  stopped: 3,
  dead: 4,
  lost: 5,
  unknown: 6,
};

const HOST_STATE_NUMBERS = { alive: 1, dead: 2, unknown: 3 } as const;

export interface ShardStatusOut {
  definition: ShardDefinition;
  configChangeId: number;
  members: { replicaId: number; raftAddress: string; apiAddress: string; state: number; isLeader: boolean }[];
  leaderReplicaId: number;
  health: ShardHealth;
  reason: string;
  /** The leader replica's term and commit index as its NodeHost last reported them (0: none). */
  term: number;
  commitIndex: number;
}

/** The status of each shard; problems are the scheduler's last words about shards. */
export function shardStatuses(
  input: SchedulerInput,
  shardIds: number[],
  problems: ReadonlyMap<number, Problem>,
): ShardStatusOut[] {
  const c = new ClusterView(input);
  const out: ShardStatusOut[] = [];
  for (const shardId of shardIds) {
    const def = c.state.shards.get(shardId);
    if (!def) continue;
    const problem = problems.get(shardId)?.message;
    const view = c.state.views.get(shardId);
    if (!view) {
      const why = !c.state.bootstrapped
        ? "the deployment is not bootstrapped"
        : (problem ?? "waiting for placement");
      out.push({
        definition: def,
        configChangeId: 0,
        members: [],
        leaderReplicaId: 0,
        health: ShardHealth.Unplaced,
        reason: why,
        term: 0,
        commitIndex: 0,
      });
      continue;
    }
    const a = analyzeShard(c, view);
    const members = a.members.map((m) => ({
      replicaId: m.member.replicaId,
      raftAddress: m.member.raftAddress,
      apiAddress:
        c.host(m.member.raftAddress)?.apiAddress || c.state.hosts.get(m.member.raftAddress)?.apiAddress || "",
      state: MEMBER_STATE_NUMBERS[m.state],
      isLeader: m.isLeader,
    }));
    const { health, reason } = judge(c, def, a, problem);
    const leader = leaderReport(c, shardId, a.leaderReplicaId);
    out.push({
      definition: def,
      configChangeId: view.configChangeId,
      members,
      leaderReplicaId: a.leaderReplicaId,
      health,
      reason,
      term: leader?.term ?? 0,
      commitIndex: leader?.commitIndex ?? 0,
    });
  }
  return out;
}

/** The running leader replica's report (the highest term when two hosts claim it). */
function leaderReport(c: ClusterView, shardId: number, leaderReplicaId: number) {
  let found: { term?: number; commitIndex?: number } | undefined;
  if (leaderReplicaId === 0) return found;
  for (const { replica } of c.runningOf(shardId)) {
    if (
      replica.isLeader &&
      replica.replicaId === leaderReplicaId &&
      (replica.term ?? 0) >= (found?.term ?? 0)
    )
      found = replica;
  }
  return found;
}

function judge(
  c: ClusterView,
  def: ShardDefinition,
  a: ReturnType<typeof analyzeShard>,
  problem: string | undefined,
): { health: ShardHealth; reason: string } {
  const notOk = a.members.filter((m) => m.state !== "ok");
  const states = notOk
    .map(
      (m) => `replica ${m.member.replicaId} ${m.startFailed ? `cannot start (${m.startFailure})` : m.state}`,
    )
    .join(", ");
  const change = inFlightOf(c.state, def.shardId).find((d) => changesShard(d.kind));
  const initial = a.view.removedReplicaIds.length === 0 && a.view.unstartedReplicaIds.length > 0;
  if (notOk.length === 0 && a.members.length === def.replicaCount)
    return { health: ShardHealth.Ok, reason: "" };
  if (c.listening && a.members.some((m) => m.state === "unknown")) {
    return { health: ShardHealth.Unknown, reason: "the drummer leader is still listening to reports" };
  }
  if (initial && a.view.configChangeId <= a.view.initialMembers.length) {
    return { health: ShardHealth.Placing, reason: states || "initial members starting" };
  }
  if (!a.hasQuorum) return { health: ShardHealth.NoQuorum, reason: problem ?? states };
  if (change || c.state.repairing.has(def.shardId)) {
    const doing = change
      ? `${DECISION_KIND_NAMES[change.kind]} replica ${change.replicaId} (decision ${change.decisionId})`
      : (problem ?? "between steps");
    return { health: ShardHealth.Repairing, reason: `${doing}${states ? `; ${states}` : ""}` };
  }
  const count =
    a.members.length === def.replicaCount
      ? ""
      : `${a.members.length} members for ${def.replicaCount} replicas`;
  return {
    health: ShardHealth.UnderReplicated,
    reason: problem ?? ([count, states].filter(Boolean).join("; ") || ""),
  };
}

export interface NodeHostStatusOut {
  raftAddress: string;
  apiAddress: string;
  region: string;
  state: number;
  lastReportAgeMs: number;
  reported: boolean;
  replicas: ReturnType<typeof cloneReplicas>;
  figures?: HostFigures;
}

function cloneReplicas(rs: readonly { members: object[] }[]) {
  return rs.map((r) => ({ ...r }));
}

/** Every NodeHost the leader heard or DrummerDB recorded, in address order. */
export function nodeHostStatuses(input: SchedulerInput): NodeHostStatusOut[] {
  const c = new ClusterView(input);
  const addresses = new Set([...input.hosts.keys(), ...c.state.hosts.keys()]);
  return [...addresses].sort().map((address) => {
    const seen = input.hosts.get(address);
    const record = c.state.hosts.get(address);
    return {
      raftAddress: address,
      apiAddress: seen?.apiAddress ?? record?.apiAddress ?? "",
      region: seen?.region ?? record?.region ?? "",
      state: HOST_STATE_NUMBERS[c.hostState(address)],
      lastReportAgeMs: seen ? Math.max(0, input.nowMs - seen.lastReportMs) : 0,
      reported: seen !== undefined,
      replicas: cloneReplicas(seen?.replicas ?? []),
      ...(seen?.figures ? { figures: { ...seen.figures } } : {}),
    };
  });
}
