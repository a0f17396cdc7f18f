/** `longboat cmd` ops that administer a shard: membership, leadership, snapshots, the log, data removal. */
import { NodeHostClient } from "../../api/client.ts";
import type { longboat } from "../../pb/longboat.js";
import type { CmdConfig, CmdRequest } from "../config.ts";
import { describeEntry } from "../logview.ts";
import { write } from "../output.ts";
import { apiClientTls } from "../tls.ts";
import { bytes, formatMembership, print, shardOf } from "./cmd-output.ts";

type AdminRequest = Extract<
  CmdRequest,
  { op: "members" | "add-replica" | "remove-replica" | "transfer-leader" | "snapshot" }
>;

/** Runs one membership, leadership or snapshot op; returns the exit code. */
export async function admin(client: NodeHostClient, config: CmdConfig, r: AdminRequest): Promise<number> {
  switch (r.op) {
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
  }
}

export async function compact(client: NodeHostClient, config: CmdConfig): Promise<number> {
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
export async function printLog(client: NodeHostClient, config: CmdConfig): Promise<number> {
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
  // Each page's text is written at once, and completely before the next page is asked for.
  let text = "";
  const out = (part: string) => {
    text += part;
  };
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
    await write(text);
    text = "";
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
  await write(text);
  return 0;
}

/** Deletes a removed replica's data, with the membership read from --membership-from when given. */
export async function removeData(
  client: NodeHostClient,
  config: CmdConfig,
  replicaId: number,
): Promise<number> {
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
