/**
 * The state of each member of a placed shard, as one pass sees it, and what that means for
 * the shard: how many run, whether it has a quorum, which members failed.
 */
import type { Decision, ShardMember, ShardView } from "../types.ts";
import { DecisionKind, DecisionState } from "../types.ts";
import type { ClusterView } from "./cluster.ts";

/** Names match MemberState of drummer.proto (lower case). */
export type MemberState = "ok" | "starting" | "stopped" | "dead" | "lost" | "unknown";

export interface MemberStatus {
  member: ShardMember;
  state: MemberState;
  isLeader: boolean;
  /** A start of it (create or join) failed and it never ran: it counts as failed. */
  startFailed: boolean;
  /** Why that start failed (the failed decision's outcome, e.g. the NodeHost's error); "" when it did not. */
  startFailure: string;
}

export interface ShardAnalysis {
  view: ShardView;
  members: MemberStatus[];
  running: number;
  quorum: number;
  hasQuorum: boolean;
  leaderReplicaId: number;
}

export function memberState(c: ClusterView, view: ShardView, m: ShardMember): MemberState {
  const host = c.hostState(m.raftAddress);
  const unstarted = view.unstartedReplicaIds.includes(m.replicaId);
  if (host === "alive") {
    if (c.running(view.shardId, m.replicaId, m.raftAddress)) return "ok";
    if (unstarted) return "starting";
    return c.hasLog(m.raftAddress, view.shardId, m.replicaId) ? "stopped" : "lost";
  }
  if (host === "dead") return "dead";
  return unstarted ? "starting" : "unknown";
}

/** The last ended start (create or join) of a replica, from DrummerDB's finished decisions. */
export function lastFailedStart(
  finished: readonly Decision[],
  shardId: number,
  replicaId: number,
): Decision | null {
  for (let i = finished.length - 1; i >= 0; i--) {
    const d = finished[i]!;
    if (d.shardId !== shardId || d.replicaId !== replicaId) continue;
    if (d.kind !== DecisionKind.Create && d.kind !== DecisionKind.Join) continue;
    return d.state === DecisionState.Failed ? d : null;
  }
  return null;
}

export function analyzeShard(c: ClusterView, view: ShardView): ShardAnalysis {
  let leaderReplicaId = 0;
  for (const r of c.runningOf(view.shardId)) if (r.replica.isLeader) leaderReplicaId = r.replica.replicaId;
  const members = view.members.map((member): MemberStatus => {
    const state = memberState(c, view, member);
    const failedStart =
      state === "starting" ? lastFailedStart(c.state.finished, view.shardId, member.replicaId) : null;
    return {
      member,
      state,
      isLeader: member.replicaId === leaderReplicaId && state === "ok",
      startFailed: failedStart !== null,
      startFailure: failedStart?.outcome ?? "",
    };
  });
  const running = members.filter((m) => m.state === "ok").length;
  const quorum = Math.floor(members.length / 2) + 1;
  return { view, members, running, quorum, hasQuorum: running >= quorum, leaderReplicaId };
}

/** Members a repair should replace: on a dead host, lost with their data, or never able to start. */
export function failedMembers(a: ShardAnalysis): MemberStatus[] {
  return a.members.filter((m) => m.state === "dead" || m.state === "lost" || m.startFailed);
}

/** The host that carries out a config change: the leader's, else the first running member's. */
export function executorOf(a: ShardAnalysis): string | undefined {
  const ok = a.members.filter((m) => m.state === "ok");
  return (ok.find((m) => m.isLeader) ?? ok[0])?.member.raftAddress;
}
