import type { NodeHost } from "../nodehost.ts";
import type { DecisionResultOut } from "./executor.ts";

/** The report of a NodeHost to the drummers (a ReportRequest as a plain object). */
export function buildReport(
  nh: NodeHost,
  opts: { apiAddress: string; region: string; results: DecisionResultOut[]; apps: string[] },
): Record<string, unknown> {
  const info = nh.getNodeHostInfo();
  return {
    raftAddress: info.raftAddress,
    apiAddress: opts.apiAddress,
    region: opts.region,
    deploymentId: info.deploymentId,
    replicas: info.shards.map((s) => ({
      shardId: s.shardId,
      replicaId: s.replicaId,
      app: s.app,
      isLeader: s.isLeader,
      leaderReplicaId: s.leaderId,
      configChangeId: s.configChangeId,
      members: s.membership.addresses.map((m) => ({ replicaId: m.replicaId, raftAddress: m.address })),
      appliedIndex: s.appliedIndex,
      pending: s.membership.addresses.length === 0,
    })),
    logsOnDisk: info.logsOnDisk.map((k) => ({ shardId: k.shardId, replicaId: k.replicaId })),
    results: opts.results,
    apps: opts.apps,
  };
}
