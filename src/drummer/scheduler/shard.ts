/**
 * The plan for one placed shard with no change in flight, in priority order: restart stopped
 * members from their logs; start members that never ran (retrying a failed start only while
 * the shard has no quorum to replace it); leave a shard without quorum alone; replace a failed
 * member (remove it, then add a new one on a live host, same region first, then start it);
 * trim members beyond the replica count. One change per shard per pass, repairs bounded by
 * the repair slots. A shard in repair whose next step cannot be taken gives its slot back
 * (schedule.ts stops its repair).
 */
import { type Decision, DecisionKind, DecisionState, type ShardDefinition } from "../types.ts";
import type { ClusterView } from "./cluster.ts";
import { createDecision } from "./launch.ts";
import {
  executorOf,
  failedMembers,
  lastFailedStart,
  type MemberStatus,
  type ShardAnalysis,
} from "./members.ts";
import { placeReplacement } from "./placement.ts";
import type { Problem, SchedulerConfig } from "./types.ts";

/** A failed start keeps its host out of the shard's replacements for this many decision timeouts. */
export const FAILED_HOST_AVOID_TIMEOUTS = 10;

/** Shards repaired at once: those in repair already keep their slot; new ones take a free one. */
export class RepairSlots {
  private used: number;
  private readonly taken = new Set<number>();
  private readonly freed = new Set<number>();
  constructor(
    private readonly repairing: ReadonlySet<number>,
    readonly max: number,
  ) {
    this.used = repairing.size;
  }

  take(shardId: number): boolean {
    if ((this.repairing.has(shardId) && !this.freed.has(shardId)) || this.taken.has(shardId)) return true;
    if (this.used >= this.max) return false;
    this.taken.add(shardId);
    this.used++;
    return true;
  }

  /** A shard in repair whose repair stops in this step: its slot goes to another shard. */
  free(shardId: number): void {
    if (!this.repairing.has(shardId) || this.freed.has(shardId)) return;
    this.freed.add(shardId);
    this.used--;
  }
}

export interface ShardPlan {
  decisions: Decision[];
  problems: Problem[];
  /** The shard is whole again: its repair is over. */
  repaired: boolean;
}

export function planShard(
  c: ClusterView,
  def: ShardDefinition,
  a: ShardAnalysis,
  slots: RepairSlots,
  config: SchedulerConfig,
): ShardPlan {
  const plan: ShardPlan = { decisions: [], problems: [], repaired: false };
  const shard = def.shardId;
  const stopped = a.members.filter((m) => m.state === "stopped");
  if (stopped.length > 0) {
    plan.decisions = stopped.map((m) =>
      restoreDecision(def, m, "its NodeHost holds its log but does not run it"),
    );
    return plan;
  }
  plan.decisions = starts(c, def, a, config);
  if (plan.decisions.length > 0) return plan;
  if (!a.hasQuorum) {
    const states = a.members.map((m) => `${m.member.replicaId} ${m.state}`).join(", ");
    plan.problems.push({
      shardId: shard,
      message: `shard ${shard} has no quorum: ${a.running} of ${a.members.length} members run (${states}); left alone until they come back`,
    });
    return plan;
  }
  if (a.members.some((m) => m.state === "unknown")) return plan; // the leader is still listening
  const change = repairChange(c, def, a, config);
  if (change === null) {
    plan.repaired = c.state.repairing.has(shard) && a.members.every((m) => m.state === "ok");
    return plan;
  }
  if ("problem" in change) {
    plan.problems.push({ shardId: shard, message: change.problem });
  } else if (!slots.take(shard)) {
    plan.problems.push({
      shardId: shard,
      message: `shard ${shard} needs a repair (${change.reason}) and waits for a slot: ${slots.max} shards are being repaired (--max-repairs)`,
    });
  } else {
    plan.decisions.push(change);
  }
  return plan;
}

/** Starts of members that never ran, on alive hosts. */
function starts(c: ClusterView, def: ShardDefinition, a: ShardAnalysis, config: SchedulerConfig): Decision[] {
  const out: Decision[] = [];
  const view = a.view;
  const initial = sameIds(view.members, view.initialMembers) && view.removedReplicaIds.length === 0;
  for (const m of a.members) {
    if (m.state !== "starting" || c.hostState(m.member.raftAddress) !== "alive") continue;
    const failed = lastFailedStart(c.state.finished, def.shardId, m.member.replicaId);
    if (failed && (a.hasQuorum || c.nowMs - failed.endedMs < config.decisionTimeoutMs)) continue;
    const why = failed ? `retry: ${failed.outcome}` : "never started";
    if (initial && view.initialMembers.some((x) => x.replicaId === m.member.replicaId)) {
      out.push(createDecision(def, m.member, view.initialMembers, `initial member ${why}`));
    } else {
      out.push({
        ...createDecision(def, m.member, [], `added member ${why}`),
        kind: DecisionKind.Join,
        repair: c.state.repairing.has(def.shardId),
      });
    }
  }
  return out;
}

/** The next repair change of a shard with quorum: null when whole, a problem when impossible. */
function repairChange(
  c: ClusterView,
  def: ShardDefinition,
  a: ShardAnalysis,
  config: SchedulerConfig,
): Decision | { problem: string } | null {
  const shard = def.shardId;
  const executor = executorOf(a)!;
  const failed = failedMembers(a);
  if (failed.length > 0 && a.members.length > 1) {
    const m = failed[0]!;
    return removeDecision(
      def,
      a,
      m,
      executor,
      `member ${m.member.replicaId} is ${m.startFailed ? "unable to start" : m.state}`,
    );
  }
  if (a.members.length < def.replicaCount) {
    const placement = placeReplacement(c, {
      missingRegions: missingRegions(c, def, a),
      wantedRegion: a.view.wantedRegion,
      exclude: excludedHosts(c, def, a, config),
    });
    if (!placement.ok) return { problem: `cannot add a replica to shard ${shard}: ${placement.problem}` };
    const address = placement.addresses[0]!;
    c.addLoad(address);
    return {
      ...createDecision(
        def,
        { replicaId: 0, raftAddress: address },
        [],
        `${a.members.length} of ${def.replicaCount} members`,
      ),
      kind: DecisionKind.Add,
      executorAddress: executor,
      configChangeId: a.view.configChangeId,
      repair: true,
    };
  }
  if (a.members.length > def.replicaCount) {
    const m = excessMember(c, def, a);
    return removeDecision(
      def,
      a,
      m,
      executor,
      `${a.members.length} members for ${def.replicaCount} replicas`,
    );
  }
  return null;
}

function removeDecision(
  def: ShardDefinition,
  a: ShardAnalysis,
  m: MemberStatus,
  executor: string,
  reason: string,
): Decision {
  return {
    ...createDecision(def, m.member, [], reason),
    kind: DecisionKind.Remove,
    executorAddress: executor,
    configChangeId: a.view.configChangeId,
    repair: true,
  };
}

function restoreDecision(def: ShardDefinition, m: MemberStatus, reason: string): Decision {
  return { ...createDecision(def, m.member, [], reason), kind: DecisionKind.Restore };
}

/** Regions whose count the members fall short of. */
function missingRegions(c: ClusterView, def: ShardDefinition, a: ShardAnalysis): string[] {
  return def.regions
    .filter((r) => a.members.filter((m) => c.region(m.member.raftAddress) === r.region).length < r.count)
    .map((r) => r.region);
}

/** Hosts that hold a member, run a replica of the shard, or failed to start one lately. */
function excludedHosts(
  c: ClusterView,
  def: ShardDefinition,
  a: ShardAnalysis,
  config: SchedulerConfig,
): Set<string> {
  const out = new Set(a.members.map((m) => m.member.raftAddress));
  for (const r of c.runningOf(def.shardId)) out.add(r.address);
  const sinceMs = c.nowMs - FAILED_HOST_AVOID_TIMEOUTS * config.decisionTimeoutMs;
  for (const d of c.state.finished) {
    if (d.shardId === def.shardId && d.state === DecisionState.Failed && d.endedMs >= sinceMs) {
      if (d.kind === DecisionKind.Create || d.kind === DecisionKind.Join) out.add(d.replicaAddress);
    }
  }
  return out;
}

/** Which member goes when there are too many: a failed one, one in a region above its count, else a follower on the busiest host. */
function excessMember(c: ClusterView, def: ShardDefinition, a: ShardAnalysis): MemberStatus {
  const notOk = a.members.filter((m) => m.state !== "ok");
  if (notOk.length > 0) return notOk[0]!;
  const surplus = (m: MemberStatus) => {
    const region = c.region(m.member.raftAddress);
    const want = def.regions.find((r) => r.region === region)?.count;
    const have = a.members.filter((x) => c.region(x.member.raftAddress) === region).length;
    return want !== undefined && have > want;
  };
  const followers = a.members.filter((m) => !m.isLeader);
  const pool = followers.filter(surplus).length > 0 ? followers.filter(surplus) : followers;
  return [...pool].sort(
    (x, y) =>
      c.load(y.member.raftAddress) - c.load(x.member.raftAddress) || y.member.replicaId - x.member.replicaId,
  )[0]!;
}

function sameIds(a: { replicaId: number }[], b: { replicaId: number }[]): boolean {
  return a.length === b.length && a.every((m) => b.some((x) => x.replicaId === m.replicaId));
}
