/**
 * Applying an observed membership to a shard's committed view. A newer config-change index
 * replaces the members; the same index with other members, or a member whose address changed,
 * is refused and DrummerDB keeps what it has (the reference panicked every replica: §11.8).
 * Adds and removals in flight end when the membership shows them, or fail when it moved on
 * without them.
 */
import { endDecision } from "./end.ts";
import type { SchedulerStep } from "./codec.ts";
import { DB_LIMITS, type DbState, inFlightOf } from "./state.ts";
import { checkId, checkMembers } from "../validate.ts";
import { DecisionKind, type ShardMember, type ShardView } from "../types.ts";

const ids = (members: ShardMember[]) => members.map((m) => m.replicaId).join(",");

export function applyView(s: DbState, v: SchedulerStep["views"][number]): string | null {
  const view = s.views.get(v.shardId);
  if (!view) return `shard ${v.shardId} is not placed: no view to update`;
  const bad =
    checkId("view.configChangeId", v.configChangeId) ?? checkMembers(`shard ${v.shardId} members`, v.members);
  if (bad) return bad;
  if (v.members.length === 0) return `shard ${v.shardId}: a membership with no member is refused`;
  if (v.configChangeId < view.configChangeId) {
    return `shard ${v.shardId}: membership at config-change index ${v.configChangeId} is older than ${view.configChangeId}`;
  }
  if (v.configChangeId === view.configChangeId) {
    if (sameMembers(v.members, view.members)) return null;
    return (
      `shard ${v.shardId}: membership at config-change index ${v.configChangeId} reported as [${ids(v.members)}] ` +
      `but DrummerDB has [${ids(view.members)}]; DrummerDB's is kept`
    );
  }
  for (const m of v.members) {
    const old = view.members.find((x) => x.replicaId === m.replicaId);
    if (old && old.raftAddress !== m.raftAddress) {
      return `shard ${v.shardId}: replica ${m.replicaId} moved from ${old.raftAddress} to ${m.raftAddress}; refused`;
    }
  }
  replaceMembers(s, view, v.configChangeId, v.members);
  return null;
}

function replaceMembers(s: DbState, view: ShardView, configChangeId: number, members: ShardMember[]): void {
  const now = new Set(members.map((m) => m.replicaId));
  const before = new Set(view.members.map((m) => m.replicaId));
  for (const m of view.members) {
    if (!now.has(m.replicaId) && !view.removedReplicaIds.includes(m.replicaId))
      view.removedReplicaIds.push(m.replicaId);
  }
  if (view.removedReplicaIds.length > DB_LIMITS.removedPerShard) {
    view.removedReplicaIds.splice(0, view.removedReplicaIds.length - DB_LIMITS.removedPerShard);
  }
  const unstarted = view.unstartedReplicaIds.filter((id) => now.has(id));
  for (const m of members)
    if (!before.has(m.replicaId) && !unstarted.includes(m.replicaId)) unstarted.push(m.replicaId);
  view.unstartedReplicaIds = unstarted.sort((a, b) => a - b);
  view.members = members.map((m) => ({ ...m })).sort((a, b) => a.replicaId - b.replicaId);
  view.configChangeId = configChangeId;
  const top = Math.max(...members.map((m) => m.replicaId));
  view.nextReplicaId = Math.max(view.nextReplicaId, top + 1);
  settleDecisions(s, view, now);
}

/** Ends the shard's in-flight decisions the new membership settles. */
function settleDecisions(s: DbState, view: ShardView, now: Set<number>): void {
  const cc = view.configChangeId;
  for (const d of [...inFlightOf(s, view.shardId)]) {
    const member = now.has(d.replicaId);
    if (d.kind === DecisionKind.Add) {
      if (member) {
        view.wantedRegion = "";
        endDecision(
          s,
          d,
          false,
          `the membership at config-change index ${cc} includes replica ${d.replicaId}`,
        );
      } else if (cc > d.configChangeId) {
        endDecision(
          s,
          d,
          true,
          `the membership moved to config-change index ${cc} without replica ${d.replicaId}`,
        );
      }
    } else if (d.kind === DecisionKind.Remove) {
      if (!member) {
        view.wantedRegion = s.hosts.get(d.replicaAddress)?.region ?? "";
        endDecision(
          s,
          d,
          false,
          `the membership at config-change index ${cc} no longer includes replica ${d.replicaId}`,
        );
      } else if (cc > d.configChangeId) {
        endDecision(
          s,
          d,
          true,
          `the membership moved to config-change index ${cc} with replica ${d.replicaId} still in it`,
        );
      }
    } else if (d.kind !== DecisionKind.Kill && !member) {
      endDecision(s, d, true, `replica ${d.replicaId} left the membership (config-change index ${cc})`);
    }
  }
}

export function sameMembers(a: ShardMember[], b: ShardMember[]): boolean {
  if (a.length !== b.length) return false;
  const sorted = [...b].sort((x, y) => x.replicaId - y.replicaId);
  return [...a]
    .sort((x, y) => x.replicaId - y.replicaId)
    .every((m, i) => m.replicaId === sorted[i]!.replicaId && m.raftAddress === sorted[i]!.raftAddress);
}
