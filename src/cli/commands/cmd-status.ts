/** `longboat cmd status`: the shards a NodeHost hosts, their roles, leaders and indexes. */
import type { NodeHostClient } from "../../api/client.ts";
import type { CmdConfig } from "../config.ts";
import { print, table } from "./cmd-output.ts";

const ROLE_NAMES = ["unknown", "follower", "candidate", "pre-candidate", "leader", "non-voting", "witness"];

export async function status(client: NodeHostClient, config: CmdConfig): Promise<number> {
  const s = await client.status();
  const rows = s.shards
    .filter((x) => config.shard === undefined || Number(x.shardId) === config.shard)
    .map((x) => ({
      shard: Number(x.shardId),
      replica: Number(x.replicaId),
      app: x.app,
      role: ROLE_NAMES[Number(x.role)] ?? String(x.role),
      term: Number(x.term),
      leader: Number(x.leaderId) || "-",
      commit: Number(x.commitIndex),
      applied: Number(x.appliedIndex),
      members: (x.membership?.addresses ?? []).map((a) => a.replicaId).join(","),
    }));
  if (config.json) {
    print(config, "", { ok: true, raftAddress: s.raftAddress, apiAddress: s.apiAddress, shards: rows });
    return 0;
  }
  const header = `NodeHost ${s.raftAddress} (API ${s.apiAddress || "?"})`;
  print(config, `${header}\n${table(rows)}`, null);
  return 0;
}
