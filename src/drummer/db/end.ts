import { DB_LIMITS, type DbState, removeInFlight } from "./state.ts";
import { clip } from "../validate.ts";
import { type Decision, DecisionState, startsReplica } from "../types.ts";

/** Ends an in-flight decision; null when done, the problem otherwise. */
export function applyEnd(s: DbState, decisionId: number, failed: boolean, outcome: string): string | null {
  const d = s.inFlight.get(decisionId);
  if (!d) return `decision ${decisionId} is not in flight`;
  endDecision(s, d, failed, outcome);
  return null;
}

/** Moves d from in flight to finished (bounded), keeping the counters and the shard's view. */
export function endDecision(s: DbState, d: Decision, failed: boolean, outcome: string): void {
  removeInFlight(s, d);
  d.state = failed ? DecisionState.Failed : DecisionState.Done;
  d.endedMs = s.timeMs;
  d.outcome = clip(outcome);
  s.finished.push(d);
  if (s.finished.length > DB_LIMITS.finished) s.finished.splice(0, s.finished.length - DB_LIMITS.finished);
  if (failed) {
    s.counters.decisionsFailed++;
    if (d.repair) s.counters.repairsFailed++;
    return;
  }
  s.counters.decisionsDone++;
  const view = s.views.get(d.shardId);
  if (view && startsReplica(d.kind)) {
    view.unstartedReplicaIds = view.unstartedReplicaIds.filter((id) => id !== d.replicaId);
  }
}
