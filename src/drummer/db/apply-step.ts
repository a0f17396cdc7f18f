/**
 * Applying a scheduler step: host records, observed memberships, decision ends, finished
 * and stopped repairs, and new decisions, in that order. The step is refused whole when it comes from a
 * leader term that is not DrummerDB's current one (a deposed leader cannot act alone); past
 * that, each item is checked on its own and a bad one is skipped and named in the result.
 */
import { applyDecision } from "./apply-decision.ts";
import { applyView } from "./apply-view.ts";
import type { SchedulerStep } from "./codec.ts";
import { applyEnd } from "./end.ts";
import { type DbResult, invalid, ok, precondition } from "./result.ts";
import { DB_LIMITS, type DbState } from "./state.ts";
import { checkAddress, checkRegion } from "../validate.ts";

/** Skipped items named in a step's result message (the rest are only counted). */
const NAMED_SKIPS_MAX = 20;

export function applyStep(s: DbState, step: SchedulerStep): DbResult {
  if (step.leaderTerm !== s.leaderTerm) {
    return precondition(
      `a scheduler step of leader term ${step.leaderTerm} is refused: DrummerDB's leader term is ${s.leaderTerm}`,
    );
  }
  if (!Number.isSafeInteger(step.nowMs) || step.nowMs < 0)
    return invalid(`nowMs must be a time, got ${step.nowMs}`);
  if (!Number.isSafeInteger(step.maxRepairs) || step.maxRepairs < 1) {
    return invalid(`maxRepairs must be a positive integer, got ${step.maxRepairs}`);
  }
  const items =
    step.hosts.length +
    step.views.length +
    step.decisions.length +
    step.ends.length +
    step.repairsDoneShardIds.length +
    step.repairsStoppedShardIds.length;
  if (items > DB_LIMITS.stepItems)
    return invalid(`a step carries ${items} items, at most ${DB_LIMITS.stepItems}`);
  s.timeMs = Math.max(s.timeMs, step.nowMs);
  const skipped: string[] = [];
  const skip = (problem: string | null) => {
    if (problem === null) return;
    skipped.push(problem);
    s.counters.itemsRejected++;
  };
  for (const h of step.hosts) skip(applyHost(s, h));
  for (const v of step.views) skip(applyView(s, v));
  for (const e of step.ends) skip(applyEnd(s, e.decisionId, e.failed, e.outcome));
  for (const shardId of step.repairsDoneShardIds) {
    if (!s.repairing.delete(shardId)) skip(`shard ${shardId} is not being repaired`);
    else s.counters.repairsDone++;
  }
  for (const shardId of step.repairsStoppedShardIds) {
    if (!s.repairing.delete(shardId)) skip(`shard ${shardId} is not being repaired`);
    else s.counters.repairsStopped++;
  }
  for (const d of step.decisions) skip(applyDecision(s, d, step.maxRepairs));
  const applied = items - skipped.length;
  if (skipped.length === 0) return ok(`${applied} items`);
  const named = skipped.slice(0, NAMED_SKIPS_MAX).join("; ");
  const more = skipped.length > NAMED_SKIPS_MAX ? `; and ${skipped.length - NAMED_SKIPS_MAX} more` : "";
  return ok(`${applied} items, ${skipped.length} skipped: ${named}${more}`);
}

function applyHost(s: DbState, h: SchedulerStep["hosts"][number]): string | null {
  const bad =
    checkAddress("host.raftAddress", h.raftAddress) ??
    (h.apiAddress === "" ? null : checkAddress("host.apiAddress", h.apiAddress)) ??
    checkRegion("host.region", h.region);
  if (bad) return bad;
  if (!s.hosts.has(h.raftAddress) && s.hosts.size >= DB_LIMITS.hosts) {
    return `host ${h.raftAddress} not recorded: at most ${DB_LIMITS.hosts} NodeHosts`;
  }
  s.hosts.set(h.raftAddress, { raftAddress: h.raftAddress, apiAddress: h.apiAddress, region: h.region });
  return null;
}
