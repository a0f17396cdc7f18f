import { ApiError, NodeHostClient } from "../../api/client.ts";
import type { longboat } from "../../pb/longboat.js";
import type { CmdConfig } from "../config.ts";

const ROLE_NAMES = ["unknown", "follower", "candidate", "pre-candidate", "leader", "non-voting", "witness"];
const text = new TextDecoder();

/** Runs `longboat cmd <op>` against the NodeHost API; returns the exit code (0 done, 1 failed). */
export async function run(config: CmdConfig): Promise<number> {
  if (config.nodehost.length === 0) {
    process.stderr.write(
      "longboat cmd: --nodehost is required (the drummer API is not available in this build)\n",
    );
    return 2;
  }
  const client = new NodeHostClient({
    addresses: config.nodehost,
    token: config.apiToken,
    timeoutMs: config.timeoutMs,
  });
  try {
    return await execute(client, config);
  } catch (error) {
    const message =
      error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);
    if (config.json) process.stdout.write(`${JSON.stringify({ ok: false, error: message })}\n`);
    else process.stderr.write(`longboat cmd ${config.request.op}: ${message}\n`);
    return 1;
  }
}

function print(config: CmdConfig, human: string, json: unknown): void {
  process.stdout.write(config.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

function shardOf(config: CmdConfig): number {
  if (config.shard === undefined) throw new Error("--shard is required for this op");
  return config.shard;
}

async function execute(client: NodeHostClient, config: CmdConfig): Promise<number> {
  const r = config.request;
  switch (r.op) {
    case "status":
      return status(client, config);
    case "put":
      await client.put(shardOf(config), r.key, r.value);
      print(config, "ok", { ok: true });
      return 0;
    case "get": {
      const value = await client.get(shardOf(config), r.key);
      if (value === null) {
        if (config.json) print(config, "", { ok: true, found: false });
        else process.stderr.write(`key "${r.key}" not found in shard ${shardOf(config)}\n`);
        return 1;
      }
      print(config, text.decode(value), { ok: true, found: true, value: text.decode(value) });
      return 0;
    }
    case "delete": {
      const existed = await client.delete(shardOf(config), r.key);
      print(config, existed ? "deleted" : "not found", { ok: true, existed });
      return existed ? 0 : 1;
    }
    case "cas": {
      const swapped = await client.cas(shardOf(config), r.key, r.expected, r.value);
      print(config, swapped ? "swapped" : "not swapped: the current value differs", { ok: true, swapped });
      return swapped ? 0 : 1;
    }
    case "add": {
      const value = await client.add(shardOf(config), r.key, r.delta);
      print(config, String(value), { ok: true, value });
      return 0;
    }
    case "members": {
      const m = await client.members(shardOf(config));
      print(config, formatMembership(m), { ok: true, membership: m });
      return 0;
    }
    case "add-replica": {
      const shard = shardOf(config);
      const m = await client.members(shard);
      await client.addReplica(shard, r.replicaId, r.address, {
        configChangeId: Number(m.configChangeId ?? 0),
      });
      print(
        config,
        `replica ${r.replicaId} (${r.address}) added to shard ${shard}; start it with join=true`,
        {
          ok: true,
        },
      );
      return 0;
    }
    case "remove-replica": {
      const shard = shardOf(config);
      const m = await client.members(shard);
      await client.removeReplica(shard, r.replicaId, { configChangeId: Number(m.configChangeId ?? 0) });
      print(config, `replica ${r.replicaId} removed from shard ${shard}`, { ok: true });
      return 0;
    }
    case "transfer-leader":
      await client.transferLeader(shardOf(config), r.replicaId);
      print(config, `leadership transfer to replica ${r.replicaId} requested`, { ok: true });
      return 0;
    case "snapshot": {
      const index = await client.snapshot(shardOf(config));
      print(config, `snapshot taken at index ${index}`, { ok: true, index });
      return 0;
    }
  }
}

async function status(client: NodeHostClient, config: CmdConfig): Promise<number> {
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

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "(no shards)";
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(width[i]!))
      .join("  ")
      .trimEnd();
  return [
    line(cols.map((c) => c.toUpperCase())),
    ...rows.map((r) => line(cols.map((c) => String(r[c])))),
  ].join("\n");
}

function formatMembership(m: longboat.raft.v1.IMembership): string {
  const list = (xs: longboat.raft.v1.IMember[] | null | undefined) =>
    (xs ?? []).map((x) => `${x.replicaId}@${x.address}`).join(" ") || "-";
  return [
    `config change id: ${Number(m.configChangeId ?? 0)}`,
    `full members:     ${list(m.addresses)}`,
    `non-voting:       ${list(m.nonVotings)}`,
    `witnesses:        ${list(m.witnesses)}`,
    `removed:          ${(m.removed ?? []).join(" ") || "-"}`,
  ].join("\n");
}
