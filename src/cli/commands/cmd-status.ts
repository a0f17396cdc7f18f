/**
 * `longboat cmd status` and `longboat cmd health`: every NodeHost named by --nodehost is asked
 * on its own (in parallel), so the answer shows the whole deployment — each host's replicas,
 * roles and indexes, the leader of each shard by replica id and raft address, and which host
 * is unhealthy or unreachable.
 */
import { ApiError, NodeHostClient } from "../../api/client.ts";
import type { longboat } from "../../pb/longboat.js";
import type { CmdConfig } from "../config.ts";
import { apiClientTls } from "../tls.ts";
import { print, table } from "./cmd-output.ts";

const ROLE_NAMES = ["unknown", "follower", "candidate", "pre-candidate", "leader", "non-voting", "witness"];

/** One replica as status prints it. */
interface ReplicaRow {
  shard: number;
  replica: number;
  app: string;
  role: string;
  term: number;
  /** The leader's replica id, or "-" when the replica knows no leader. */
  leader: number | "-";
  /** The leader's raft address ("?" when not in the membership), or "-". */
  leaderAddress: string;
  commit: number;
  applied: number;
  members: string;
}

/** What one NodeHost answered, or why it did not. */
interface HostAnswer {
  /** The --nodehost address asked. */
  address: string;
  raftAddress?: string;
  /** "ok", "no leader for shard 2,3" or "unreachable: …". */
  health: string;
  healthy: boolean;
  replicas: ReplicaRow[];
}

/** Asks every --nodehost address for its status, each on its own, in parallel. */
async function askEveryHost(config: CmdConfig): Promise<HostAnswer[]> {
  const tls = apiClientTls(config);
  return Promise.all(
    config.nodehost.map(async (address): Promise<HostAnswer> => {
      const client = new NodeHostClient({
        addresses: [address],
        token: config.apiToken,
        timeoutMs: config.timeoutMs,
        ...(tls ? { tls } : {}),
      });
      let s: longboat.nodehost.v1.StatusResponse;
      try {
        s = await client.status();
      } catch (error) {
        const why = error instanceof ApiError ? `${error.code}: ${error.detail}` : String(error);
        return { address, health: `unreachable: ${why}`, healthy: false, replicas: [] };
      }
      const replicas = s.shards
        .filter((x) => config.shard === undefined || Number(x.shardId) === config.shard)
        .map((x) => {
          const leaderId = Number(x.leaderId);
          const members = [
            ...(x.membership?.addresses ?? []),
            ...(x.membership?.nonVotings ?? []),
            ...(x.membership?.witnesses ?? []),
          ];
          const leaderAddress = members.find((m) => Number(m.replicaId) === leaderId)?.address;
          return {
            shard: Number(x.shardId),
            replica: Number(x.replicaId),
            app: x.app ?? "",
            role: ROLE_NAMES[Number(x.role)] ?? String(x.role),
            term: Number(x.term),
            leader: leaderId === 0 ? ("-" as const) : leaderId,
            leaderAddress: leaderId === 0 ? "-" : (leaderAddress ?? "?"),
            commit: Number(x.commitIndex),
            applied: Number(x.appliedIndex),
            members: (x.membership?.addresses ?? []).map((a) => a.replicaId).join(","),
          };
        });
      const leaderless = replicas.filter((r) => r.leader === "-").map((r) => r.shard);
      const health = leaderless.length === 0 ? "ok" : `no leader for shard ${leaderless.join(",")}`;
      return { address, raftAddress: s.raftAddress, health, healthy: leaderless.length === 0, replicas };
    }),
  );
}

/** A replica as a table row: the leader as id@raft address. */
function tableRow(r: ReplicaRow): Record<string, unknown> {
  const { leaderAddress, ...rest } = r;
  return { ...rest, leader: r.leader === "-" ? "-" : `${r.leader}@${leaderAddress}` };
}

/**
 * `cmd status`: one row per replica on every host asked, with the host's health; a host that
 * did not answer gets one row saying why. Exit 0 when at least one host answered.
 */
export async function status(config: CmdConfig): Promise<number> {
  const hosts = await askEveryHost(config);
  const answered = hosts.some((h) => !h.health.startsWith("unreachable"));
  const only = hosts.length === 1 && answered ? hosts[0]! : undefined;
  if (config.json) {
    // One host asked: its answer also at the top level, as scripts read it before `hosts`.
    const single = only
      ? { raftAddress: only.raftAddress, apiAddress: only.address, shards: only.replicas }
      : {};
    print(config, "", { ok: answered, ...single, hosts });
    return answered ? 0 : 1;
  }
  if (only) {
    const header = `NodeHost ${only.raftAddress} (API ${only.address})`;
    print(config, `${header}\n${table(only.replicas.map(tableRow))}\nhealth: ${only.health}`, null);
    return 0;
  }
  const rows = hosts.flatMap((h): Record<string, unknown>[] => {
    const unreachable = h.health.startsWith("unreachable");
    const host = {
      host: h.address,
      raft: h.raftAddress ?? "-",
      health: unreachable ? "unreachable" : h.health,
    };
    if (h.replicas.length === 0) {
      const none = unreachable ? "-" : "(no shards)";
      return [
        {
          ...host,
          shard: none,
          replica: "-",
          app: "-",
          role: "-",
          term: "-",
          leader: "-",
          commit: "-",
          applied: "-",
          members: "-",
        },
      ];
    }
    return h.replicas.map((r) => ({ ...host, ...tableRow(r) }));
  });
  const why = hosts.filter((h) => h.health.startsWith("unreachable")).map((h) => `${h.address}: ${h.health}`);
  print(config, [table(rows), ...why].join("\n"), null);
  return answered ? 0 : 1;
}

/**
 * `cmd health`: one line per host; exit 0 only when every host answered and each of its
 * replicas (of --shard, if given) knows a leader — the test /readyz makes — else exit 1.
 */
export async function health(config: CmdConfig): Promise<number> {
  const hosts = await askEveryHost(config);
  const healthy = hosts.every((h) => h.healthy);
  const lines = hosts.map(
    (h) =>
      `${h.address}${h.raftAddress ? ` (raft ${h.raftAddress})` : ""}: ${h.healthy ? "healthy" : "unhealthy"}${h.health === "ok" ? `, ${h.replicas.length} replica(s), each with a leader` : `, ${h.health}`}`,
  );
  print(config, lines.join("\n"), {
    ok: true,
    healthy,
    hosts: hosts.map((h) => ({
      address: h.address,
      raftAddress: h.raftAddress,
      healthy: h.healthy,
      health: h.health,
      replicas: h.replicas.length,
    })),
  });
  return healthy ? 0 : 1;
}
