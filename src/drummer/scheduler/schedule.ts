/**
 * The scheduler: a pure function from (committed DrummerDB state, the leader's live reports,
 * now) to one step of decisions and the problems it sees. Every decision carries its reason.
 *
 * ```ts
 * const { step, problems } = schedule({ state: db.state, hosts, nowMs, listeningSinceMs, config });
 * // propose step (with the leader term, now and --max-repairs) to DrummerDB, log problems
 * ```
 *
 * A shard whose view changes in this step, or that has a change in flight (or ending in this
 * step), is planned again on the next pass, from the state this step leaves. With a focus
 * (the leader's incremental passes) only the focused shards and hosts are looked at, plus every
 * shard with a decision in flight.
 */
import { inFlightOf } from "../db/state.ts";
import { changesShard } from "../types.ts";
import { ClusterView } from "./cluster.ts";
import { launches } from "./launch.ts";
import { analyzeShard } from "./members.ts";
import { changedHosts, decisionEnds, observedViews } from "./progress.ts";
import { planShard, RepairSlots } from "./shard.ts";
import type { Problem, SchedulerInput, SchedulerOutput } from "./types.ts";
import { zombieKills } from "./zombies.ts";

export function schedule(input: SchedulerInput): SchedulerOutput {
  const c = new ClusterView(input);
  const config = input.config;
  const shardIds = shardsToPlan(input);
  const ends = decisionEnds(c, config);
  const views = observedViews(c, shardIds);
  const ending = new Set(ends.map((e) => e.decisionId));
  const moving = new Set(views.map((v) => v.shardId));
  const problems: Problem[] = [];
  const launch = launches(c, config, ends.length);
  problems.push(...launch.problems);
  const decisions = [...launch.decisions];
  const repairsDoneShardIds: number[] = [];
  const repairsStoppedShardIds: number[] = [];
  const slots = new RepairSlots(c.state.repairing, config.maxRepairs);
  for (const shardId of shardIds) {
    const def = c.state.shards.get(shardId);
    const view = c.state.views.get(shardId);
    if (!def || !view || moving.has(shardId)) continue;
    const busy = inFlightOf(c.state, shardId).some((d) => changesShard(d.kind) || ending.has(d.decisionId));
    if (busy) continue;
    const plan = planShard(c, def, analyzeShard(c, view), slots, config);
    if (c.state.repairing.has(shardId) && plan.decisions.length === 0 && plan.problems.length > 0) {
      // Its next step cannot be taken (no host to add on, quorum lost): the repair stops and
      // frees its slot for a shard that can be repaired, instead of holding it for ever.
      slots.free(shardId);
      repairsStoppedShardIds.push(shardId);
      for (const p of plan.problems) p.message += `; its repair stops (its --max-repairs slot is freed)`;
    }
    decisions.push(...plan.decisions);
    problems.push(...plan.problems);
    if (plan.repaired) repairsDoneShardIds.push(shardId);
  }
  decisions.push(...zombieKills(c, config, input.focus?.hosts));
  const hosts = changedHosts(c, input.focus?.hosts);
  return {
    step: { hosts, views, decisions, ends, repairsDoneShardIds, repairsStoppedShardIds },
    problems,
    more: launch.more,
  };
}

/** The placed shards a pass plans, in id order: all of them, or the focus and those with decisions in flight. */
function shardsToPlan(input: SchedulerInput): number[] {
  const views = input.state.views;
  if (!input.focus) return [...views.keys()].sort((a, b) => a - b);
  const ids = new Set<number>();
  for (const id of input.focus.shards) if (views.has(id)) ids.add(id);
  for (const d of input.state.inFlight.values()) ids.add(d.shardId);
  return [...ids].sort((a, b) => a - b);
}
