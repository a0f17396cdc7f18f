import type { NodeHost } from "../nodehost.ts";
import type { DecisionResultOut } from "./executor.ts";
import type { HostFiguresOut } from "./host-figures.ts";

/**
 * Which replicas' members the leading drummer already has, so a report can leave them out.
 * A report is mostly the same every few seconds (1,000 NodeHosts × 100 replicas × 3 members is
 * most of what a drummer leader decodes), so a replica's members are sent only when its
 * (replica id, config-change index) is one the leader has not acknowledged yet. The leader
 * reuses the members it holds for a replica at the same index; one that lacks them (a new
 * leader, a restarted one, an older index) answers `resendMembers`, and the next report
 * carries every replica's members again.
 *
 * ```ts
 * const memo = new MembersSent();
 * const report = buildReport(nh, { …, members: memo });  // members of known replicas left out
 * memo.answered(report, reply.resendMembers === true);   // only after a drummer answered
 * ```
 */
export class MembersSent {
  /** shard → `${replicaId}:${configChangeId}` whose members the leader acknowledged. */
  private known = new Map<number, string>();

  /** Whether the members of this replica at this index may be left out. */
  has(shardId: number, replicaId: number, configChangeId: number): boolean {
    return this.known.get(shardId) === key(replicaId, configChangeId);
  }

  /**
   * A drummer answered `report`: its members are known from now on (only those of replicas it
   * listed: a shard the host no longer runs is forgotten) — unless it asked for them again.
   */
  answered(report: { replicas: ReportedReplica[] }, resend: boolean): void {
    const known = new Map<number, string>();
    if (!resend) {
      for (const r of report.replicas) {
        if (r.pending) continue;
        const k = key(r.replicaId, r.configChangeId);
        // Sent now, or left out because known already: both are the leader's.
        if (r.members.length > 0 || this.known.get(r.shardId) === k) known.set(r.shardId, k);
      }
    }
    this.known = known;
  }

  /** Forgets everything: the next report sends every replica's members. */
  clear(): void {
    this.known = new Map();
  }

  get size(): number {
    return this.known.size;
  }
}

const key = (replicaId: number, configChangeId: number) => `${replicaId}:${configChangeId}`;

/** One replica of a built report. */
export type ReportedReplica = {
  shardId: number;
  replicaId: number;
  app: string;
  isLeader: boolean;
  leaderReplicaId: number;
  configChangeId: number;
  members: { replicaId: number; raftAddress: string }[];
  appliedIndex: number;
  /** For people (the dashboard); optional so hand-built reports (benchmarks) may leave them out. */
  term?: number;
  commitIndex?: number;
  pending: boolean;
};

/** The report of a NodeHost to the drummers (a ReportRequest as a plain object). */
export type BuiltReport = {
  raftAddress: string;
  apiAddress: string;
  region: string;
  deploymentId: number;
  replicas: ReportedReplica[];
  logsOnDisk: { shardId: number; replicaId: number }[];
  results: DecisionResultOut[];
  apps: string[];
  figures?: HostFiguresOut;
};

/**
 * The report of a NodeHost to the drummers. With `members`, the members of replicas the leader
 * already has at their config-change index are left out (empty while `pending` is false).
 */
export function buildReport(
  nh: NodeHost,
  opts: {
    apiAddress: string;
    region: string;
    results: DecisionResultOut[];
    apps: string[];
    members?: MembersSent;
    /** Live figures for the dashboard (src/master/host-figures.ts); left out when undefined. */
    figures?: HostFiguresOut | undefined;
  },
): BuiltReport {
  const info = nh.getNodeHostInfo();
  const memo = opts.members;
  return {
    raftAddress: info.raftAddress,
    apiAddress: opts.apiAddress,
    region: opts.region,
    deploymentId: info.deploymentId,
    replicas: info.shards.map((s) => {
      const pending = s.membership.addresses.length === 0;
      const omit = !pending && memo !== undefined && memo.has(s.shardId, s.replicaId, s.configChangeId);
      return {
        shardId: s.shardId,
        replicaId: s.replicaId,
        app: s.app,
        isLeader: s.isLeader,
        leaderReplicaId: s.leaderId,
        configChangeId: s.configChangeId,
        members: omit
          ? []
          : s.membership.addresses.map((m) => ({ replicaId: m.replicaId, raftAddress: m.address })),
        appliedIndex: s.appliedIndex,
        term: s.term,
        commitIndex: s.commitIndex,
        pending,
      };
    }),
    logsOnDisk: info.logsOnDisk.map((k) => ({ shardId: k.shardId, replicaId: k.replicaId })),
    results: opts.results,
    apps: opts.apps,
    ...(opts.figures ? { figures: opts.figures } : {}),
  };
}
