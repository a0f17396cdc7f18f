import { ApiError, NodeHostClient, type WriteOptions } from "../../api/client.ts";
import type { longboat } from "../../pb/longboat.js";
import type { CmdConfig } from "../config.ts";
import { apiClientTls } from "../tls.ts";
import { describeEntry } from "../logview.ts";
import { watch } from "./watch.ts";

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
  const tls = apiClientTls(config);
  if (config.insecureSkipVerify) {
    process.stderr.write(
      "longboat cmd: --insecure-skip-verify: the server's certificate is not checked (development only)\n",
    );
  }
  const client = new NodeHostClient({
    addresses: config.nodehost,
    token: config.apiToken,
    timeoutMs: config.timeoutMs,
    ...(tls ? { tls } : {}),
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
      await write(client, config, (opts) => client.put(shardOf(config), r.key, r.value, opts));
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
      const existed = await write(client, config, (opts) => client.delete(shardOf(config), r.key, opts));
      print(config, existed ? "deleted" : "not found", { ok: true, existed });
      return existed ? 0 : 1;
    }
    case "cas": {
      const swapped = await write(client, config, (opts) =>
        client.cas(shardOf(config), r.key, r.expected, r.value, opts),
      );
      print(config, swapped ? "swapped" : "not swapped: the current value differs", { ok: true, swapped });
      return swapped ? 0 : 1;
    }
    case "add": {
      const value = await write(client, config, (opts) => client.add(shardOf(config), r.key, r.delta, opts));
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
      const opts: { compactionOverhead?: number; compactionIndex?: number; export?: boolean } = {
        export: config.export,
      };
      if (config.compactionOverhead !== undefined) opts.compactionOverhead = config.compactionOverhead;
      if (config.compactionIndex !== undefined) opts.compactionIndex = config.compactionIndex;
      const index = await client.snapshot(shardOf(config), opts);
      const exported = config.export ? " and exported into the NodeHost's --snapshot-export-dir" : "";
      print(config, `snapshot taken at index ${index}${exported}`, { ok: true, index });
      return 0;
    }
    case "compact":
      return compact(client, config);
    case "log":
      return printLog(client, config);
    case "remove-data":
      return removeData(client, config, r.replicaId);
    case "watch":
      return watch(config);
  }
}

async function compact(client: NodeHostClient, config: CmdConfig): Promise<number> {
  const shard = shardOf(config);
  const opts =
    config.compactionOverhead === undefined ? {} : { compactionOverhead: config.compactionOverhead };
  const r = await client.compact(shard, opts);
  const n = (v: unknown) => Number(v ?? 0);
  const report = {
    shard,
    replica: n(r.replicaId),
    snapshotIndex: n(r.snapshotIndex),
    firstIndex: n(r.firstIndex),
    entriesRemoved: n(r.entriesRemoved),
    logBytesRemoved: n(r.logBytesRemoved),
    logEntries: n(r.logEntries),
    logBytes: n(r.logBytes),
    fileBytesBefore: n(r.fileBytesBefore),
    fileBytesAfter: n(r.fileBytesAfter),
  };
  const human =
    report.snapshotIndex === 0
      ? `shard ${shard} replica ${report.replica} has no snapshot: nothing to compact (take one with cmd snapshot)`
      : [
          `shard ${shard} replica ${report.replica}: removed ${report.entriesRemoved} entries (${bytes(report.logBytesRemoved)}) covered by the snapshot at ${report.snapshotIndex}`,
          `log now: ${report.logEntries} entries (${bytes(report.logBytes)}) from index ${report.firstIndex}`,
          `log database files: ${bytes(report.fileBytesBefore)} before, ${bytes(report.fileBytesAfter)} after`,
        ].join("\n");
  print(config, human, { ok: true, ...report });
  return 0;
}

/** Bytes of log entries fetched per QueryRaftLog call. */
const LOG_PAGE_BYTES = 1024 * 1024;

/** Prints entries --from..--to (inclusive) page by page; JSON is streamed as one object. */
async function printLog(client: NodeHostClient, config: CmdConfig): Promise<number> {
  const shard = shardOf(config);
  const status = await client.status();
  const app = status.shards.find((x) => Number(x.shardId) === shard)?.app ?? "";
  let page = await client.queryRaftLog(shard, { firstIndex: config.from ?? 0, maxBytes: LOG_PAGE_BYTES });
  const last = Math.min(config.to ?? Number.MAX_SAFE_INTEGER, Number(page.lastIndex));
  const commit = Number(page.commitIndex);
  const head = {
    shard,
    replica: Number(page.replicaId),
    app,
    firstIndex: Number(page.firstIndex),
    lastIndex: Number(page.lastIndex),
    commitIndex: commit,
    snapshotIndex: Number(page.snapshotIndex),
  };
  const out = (text: string) => process.stdout.write(text);
  if (config.json) out(`${JSON.stringify({ ok: true, ...head }).slice(0, -1)},"entries":[`);
  else {
    out(
      `shard ${shard} replica ${head.replica} (${app || "app unknown"}): entries ${head.firstIndex}..${head.lastIndex}, committed up to ${commit}, snapshot at ${head.snapshotIndex}\n`,
    );
    out(`${["INDEX", "TERM", "TYPE", "SIZE", "COMMAND"].join("\t")}\n`);
  }
  let printed = 0;
  for (;;) {
    for (const e of page.entries) {
      if (Number(e.index) > last) break;
      const v = describeEntry(e, app);
      if (config.json)
        out(`${printed > 0 ? "," : ""}${JSON.stringify({ ...v, committed: v.index <= commit })}`);
      else
        out(
          `${[v.index, v.term, v.type, v.sizeBytes, v.command].join("\t")}${v.index > commit ? "\t(not committed)" : ""}\n`,
        );
      printed++;
    }
    const next = Number(page.entries.at(-1)?.index ?? last) + 1;
    if (page.entries.length === 0 || next > last) break;
    page = await client.queryRaftLog(shard, {
      firstIndex: next,
      lastIndex: last + 1,
      maxBytes: LOG_PAGE_BYTES,
    });
  }
  if (config.json) out("]}\n");
  else if (printed === 0) out("(no entries in that range)\n");
  return 0;
}

/** Deletes a removed replica's data, with the membership read from --membership-from when given. */
async function removeData(client: NodeHostClient, config: CmdConfig, replicaId: number): Promise<number> {
  const shard = shardOf(config);
  let membership: longboat.raft.v1.IMembership | undefined;
  if (config.membershipFrom.length > 0) {
    const tls = apiClientTls(config);
    const live = new NodeHostClient({
      addresses: config.membershipFrom,
      token: config.apiToken,
      timeoutMs: config.timeoutMs,
      ...(tls ? { tls } : {}),
    });
    membership = await live.members(shard);
    const ids = [
      ...(membership.addresses ?? []),
      ...(membership.nonVotings ?? []),
      ...(membership.witnesses ?? []),
    ];
    if (ids.some((m) => Number(m.replicaId) === replicaId)) {
      throw new Error(
        `replica ${replicaId} is still a member of shard ${shard} (config change ${Number(membership.configChangeId ?? 0)}): remove it first with cmd remove-replica`,
      );
    }
  }
  await client.removeData(shard, replicaId, membership ? { membership } : {});
  print(config, `data of replica ${replicaId} of shard ${shard} removed from ${client.addresses.join(",")}`, {
    ok: true,
  });
  return 0;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Time closing a write's session may take after the write is done (it is only tidying up). */
const SESSION_CLOSE_MS = 1000;

/**
 * Runs one kv write in a client session of its own (unless --no-session): the client may then
 * retry it after a timeout or a failover, and it still applies exactly once. The session is
 * closed afterwards at best effort: an unclosed one is evicted from the shard's table in time.
 */
async function write<T>(
  client: NodeHostClient,
  config: CmdConfig,
  fn: (opts: WriteOptions) => Promise<T>,
): Promise<T> {
  if (config.noSession) return fn({});
  const session = await client.openSession(shardOf(config));
  try {
    return await fn({ session });
  } finally {
    await client.closeSession(session, { timeoutMs: SESSION_CLOSE_MS }).catch(() => {});
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
