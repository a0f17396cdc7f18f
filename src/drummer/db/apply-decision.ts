/**
 * Committing a new decision. DrummerDB itself keeps the scheduler's rules, so no leader (a
 * deposed one included) can break them: one change per shard at a time (creates and
 * restores of different replicas excepted), config changes that quote the view's
 * config-change index, replica ids never reused, zombies killed only once their removal is
 * committed, and at most maxRepairs shards being repaired at once.
 */
import { DB_LIMITS, type DbState, addInFlight, inFlightOf } from "./state.ts";
import { sameMembers } from "./apply-view.ts";
import { checkAddress, checkId, checkMembers, clip } from "../validate.ts";
import {
  changesShard,
  type Decision,
  DecisionKind,
  DecisionState,
  DECISION_KIND_NAMES,
  type ShardDefinition,
  type ShardView,
} from "../types.ts";

/** Commits d (id, time, state and term filled in); null when committed, the problem otherwise. */
export function applyDecision(s: DbState, d: Decision, maxRepairs: number): string | null {
  const what = `${DECISION_KIND_NAMES[d.kind] ?? `decision kind ${d.kind}`} on shard ${d.shardId}`;
  const def = s.shards.get(d.shardId);
  if (!def) return `${what}: shard ${d.shardId} is not defined`;
  if (!(d.kind in DECISION_KIND_NAMES)) return `${what}: unknown kind`;
  const bad =
    checkAddress(`${what}: replicaAddress`, d.replicaAddress) ??
    checkAddress(`${what}: executorAddress`, d.executorAddress) ??
    busy(s, d, what) ??
    checkKind(s, d, def, what);
  if (bad) return bad;
  if (s.inFlight.size >= DB_LIMITS.inFlight)
    return `${what}: ${DB_LIMITS.inFlight} decisions are in flight already`;
  if (d.repair && !s.repairing.has(d.shardId)) {
    if (s.repairing.size >= maxRepairs) {
      return `${what}: ${s.repairing.size} shards are being repaired already (--max-repairs ${maxRepairs})`;
    }
    s.repairing.add(d.shardId);
    s.counters.repairsStarted++;
  }
  if (d.kind === DecisionKind.Add) d.replicaId = s.views.get(d.shardId)!.nextReplicaId++;
  if (d.kind === DecisionKind.Create && !s.views.has(d.shardId)) s.views.set(d.shardId, launchView(d));
  const view = s.views.get(d.shardId)!;
  const kill = d.kind === DecisionKind.Kill;
  addInFlight(s, {
    ...d,
    decisionId: s.nextDecisionId++,
    app: def.app,
    initialMembers: d.initialMembers.map((m) => ({ ...m })),
    configChangeId: kill ? view.configChangeId : d.configChangeId,
    currentMembers: kill ? view.members.map((m) => ({ ...m })) : [],
    reason: clip(d.reason),
    createdMs: s.timeMs,
    endedMs: 0,
    state: DecisionState.InFlight,
    outcome: "",
    leaderTerm: s.leaderTerm,
  });
  return null;
}

/** Starts that change no membership: several may run together, on different replicas. */
const parallelStart = (kind: DecisionKind) => kind === DecisionKind.Create || kind === DecisionKind.Restore;

/** One change per shard at a time; the creates of a launch, or restores, may run together. */
function busy(s: DbState, d: Decision, what: string): string | null {
  for (const x of inFlightOf(s, d.shardId)) {
    const conflict =
      d.kind === DecisionKind.Kill
        ? x.kind === DecisionKind.Kill && x.replicaId === d.replicaId && x.replicaAddress === d.replicaAddress
        : changesShard(x.kind) &&
          (!parallelStart(d.kind) || !parallelStart(x.kind) || x.replicaId === d.replicaId);
    if (conflict) {
      return `${what}: decision ${x.decisionId} (${DECISION_KIND_NAMES[x.kind]} replica ${x.replicaId}) is in flight; one change per shard at a time`;
    }
  }
  return null;
}

function checkKind(s: DbState, d: Decision, def: ShardDefinition, what: string): string | null {
  const view = s.views.get(d.shardId);
  if (d.kind === DecisionKind.Create) return checkCreate(s, d, def, view, what);
  if (!view) return `${what}: shard ${d.shardId} is not placed yet`;
  const member = view.members.find((m) => m.replicaId === d.replicaId);
  const atMember = (address: string) => view.members.some((m) => m.raftAddress === address);
  switch (d.kind) {
    case DecisionKind.Add:
      if (d.replicaId !== 0)
        return `${what}: an add names no replica id (DrummerDB allocates it), got ${d.replicaId}`;
      if (atMember(d.replicaAddress)) return `${what}: ${d.replicaAddress} already holds a member`;
      if (view.members.length >= DB_LIMITS.replicaCount)
        return `${what}: the shard has ${view.members.length} members`;
      return (
        checkOrdered(view, d, what) ??
        (atMember(d.executorAddress) ? null : `${what}: executor is not a member`)
      );
    case DecisionKind.Remove:
      if (!member) return `${what}: replica ${d.replicaId} is not a member`;
      if (view.members.length === 1) return `${what}: replica ${d.replicaId} is the only member`;
      return (
        checkOrdered(view, d, what) ??
        (atMember(d.executorAddress) ? null : `${what}: executor is not a member`)
      );
    case DecisionKind.Join:
    case DecisionKind.Restore: {
      if (!member) return `${what}: replica ${d.replicaId} is not a member`;
      if (member.raftAddress !== d.replicaAddress)
        return `${what}: replica ${d.replicaId} lives at ${member.raftAddress}`;
      const unstarted = view.unstartedReplicaIds.includes(d.replicaId);
      if (d.kind === DecisionKind.Join && !unstarted)
        return `${what}: replica ${d.replicaId} has started already`;
      if (d.kind === DecisionKind.Restore && unstarted)
        return `${what}: replica ${d.replicaId} never started`;
      return null;
    }
    case DecisionKind.Kill:
      return checkKill(view, d, what);
  }
  return `${what}: unknown kind`;
}

function checkOrdered(view: ShardView, d: Decision, what: string): string | null {
  if (d.configChangeId === view.configChangeId) return null;
  return `${what}: quotes config-change index ${d.configChangeId} but the shard's view is at ${view.configChangeId}`;
}

/** A zombie is killed only once DrummerDB's view shows it out of the membership. */
function checkKill(view: ShardView, d: Decision, what: string): string | null {
  const bad = checkId(`${what}: replicaId`, d.replicaId);
  if (bad) return bad;
  if (view.members.some((m) => m.replicaId === d.replicaId)) {
    return `${what}: replica ${d.replicaId} is a member; only replicas whose removal is committed are killed`;
  }
  if (!view.removedReplicaIds.includes(d.replicaId) && d.replicaId >= view.nextReplicaId) {
    return `${what}: replica ${d.replicaId} was never part of the shard`;
  }
  return null;
}

/** A launch's create: the shard's initial members, the replica among them, before any change. */
function checkCreate(
  s: DbState,
  d: Decision,
  def: ShardDefinition,
  view: ShardView | undefined,
  what: string,
): string | null {
  const bad = checkMembers(`${what}: initialMembers`, d.initialMembers);
  if (bad) return bad;
  const own = d.initialMembers.find((m) => m.replicaId === d.replicaId);
  if (!own || own.raftAddress !== d.replicaAddress) {
    return `${what}: replica ${d.replicaId} at ${d.replicaAddress} is not among the initial members`;
  }
  if (d.replicaAddress !== d.executorAddress) return `${what}: a create runs on the replica's own NodeHost`;
  if (!view) {
    if (!s.bootstrapped) return `${what}: the deployment is not bootstrapped`;
    if (d.initialMembers.length !== def.replicaCount) {
      return `${what}: ${d.initialMembers.length} initial members for a shard of ${def.replicaCount} replicas`;
    }
    return null;
  }
  if (!sameMembers(view.initialMembers, d.initialMembers) || !sameMembers(view.members, d.initialMembers)) {
    return `${what}: the shard was placed with other members or its membership has changed since`;
  }
  if (!view.unstartedReplicaIds.includes(d.replicaId))
    return `${what}: replica ${d.replicaId} has started already`;
  return null;
}

function launchView(d: Decision): ShardView {
  const members = d.initialMembers.map((m) => ({ ...m })).sort((a, b) => a.replicaId - b.replicaId);
  return {
    shardId: d.shardId,
    configChangeId: 0,
    members,
    initialMembers: members.map((m) => ({ ...m })),
    removedReplicaIds: [],
    nextReplicaId: Math.max(...members.map((m) => m.replicaId)) + 1,
    unstartedReplicaIds: members.map((m) => m.replicaId),
    wantedRegion: "",
  };
}
