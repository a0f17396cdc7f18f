import { resolve } from "node:path";
import { Session } from "../engine/session.ts";
import { RESULT_REJECTED } from "../statemachine/types.ts";
import type { Membership } from "../raft/types.ts";
import { ConnectError } from "./errors.ts";
import { type MethodName, type RequestOf, RequestSchemas } from "./schemas.ts";
import type { NodeHostLike } from "./types.ts";

const fromUtf8 = new TextDecoder();

export type { PbType } from "./rpc/service.ts";

export { METHOD_TYPES } from "./method-types.ts";

/** QueryRaftLog's answer size when the request says 0, and the most it may ask for. */
export const QUERY_LOG_DEFAULT_BYTES = 1024 * 1024;
export const QUERY_LOG_MAX_BYTES = 8 * 1024 * 1024;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(RequestSchemas, name);
}

/**
 * Methods that must run on the shard's leader: a follower's NodeHost forwards them to the
 * leader's NodeHost. Reads are included because a follower answers a ReadIndex read only
 * through the leader anyway; StaleRead, TransferLeader, RequestSnapshot and Status are local.
 */
export const FORWARDABLE: ReadonlySet<MethodName> = new Set<MethodName>([
  "GetSession",
  "CloseSession",
  "Propose",
  "Read",
  "AddReplica",
  "DeleteReplica",
  "GetMembership",
]);

/** The shard a request is about (0 for Status). */
export function shardOfRequest(method: MethodName, req: RequestOf<MethodName>): number {
  if (method === "CloseSession") return (req as RequestOf<"CloseSession">).session?.shardId ?? 0;
  if (method === "Propose") {
    const p = req as RequestOf<"Propose">;
    return p.shardId || (p.session?.shardId ?? 0);
  }
  return (req as { shardId?: number }).shardId ?? 0;
}

export interface HandlerContext {
  nodehost: NodeHostLike;
  /** The request's timeoutMs, or the default when it is 0. */
  timeoutMs(requested: number): number;
  apiAddress: string;
  region: string;
  /** The operator's snapshot export directory (absolute); absent: export is refused. */
  snapshotExportDir?: string;
}

type Handler<M extends MethodName> = (ctx: HandlerContext, req: RequestOf<M>) => Promise<object> | object;

const sessionOut = (s: Session) => ({
  shardId: s.shardId,
  clientId: s.clientId,
  seriesId: s.seriesId,
  respondedTo: s.respondedTo,
});

/** The membership this NodeHost's replica of shardId has applied, or null when it has none. */
function localMembership(nodehost: NodeHostLike, shardId: number): Membership | null {
  return (
    nodehost.getNodeHostInfo({ skipLogInfo: true }).shards.find((s) => s.shardId === shardId)?.membership ??
    null
  );
}

function requireSession(s: RequestOf<"CloseSession">["session"], where: string): Session {
  if (!s) throw new ConnectError("invalid_argument", `${where}.session: required`);
  return new Session(s.shardId, s.clientId, s.seriesId, s.respondedTo);
}

export const HANDLERS: { [M in MethodName]: Handler<M> } = {
  async GetSession(ctx, req) {
    const session = await ctx.nodehost.getNewSession(req.shardId, {
      timeoutMs: ctx.timeoutMs(req.timeoutMs),
    });
    return { session: sessionOut(session) };
  },
  async CloseSession(ctx, req) {
    const session = requireSession(req.session, "CloseSessionRequest");
    await ctx.nodehost.closeSession(session, { timeoutMs: ctx.timeoutMs(req.timeoutMs) });
    return {};
  },
  async Propose(ctx, req) {
    const shardId = req.shardId || (req.session?.shardId ?? 0);
    if (req.session && req.shardId && req.session.shardId !== req.shardId) {
      throw new ConnectError(
        "invalid_argument",
        `ProposeRequest.session.shardId ${req.session.shardId} differs from ProposeRequest.shardId ${req.shardId}`,
      );
    }
    const session = req.session
      ? requireSession(req.session, "ProposeRequest")
      : ctx.nodehost.getNoOpSession(shardId);
    const result = await ctx.nodehost.syncPropose(session, req.command, {
      timeoutMs: ctx.timeoutMs(req.timeoutMs),
    });
    if (result.value === RESULT_REJECTED) {
      // Applied as a refusal: in the log, changed nothing; the same command fails again.
      throw new ConnectError(
        "failed_precondition",
        `the state machine of shard ${shardId} refused the command at log index ${result.index} (nothing changed): ${fromUtf8.decode(result.data)}`,
      );
    }
    return { value: result.value, data: result.data, index: result.index };
  },
  async Read(ctx, req) {
    const result = await ctx.nodehost.syncRead(req.shardId, req.query, {
      timeoutMs: ctx.timeoutMs(req.timeoutMs),
    });
    return { result };
  },
  StaleRead(ctx, req) {
    return { result: ctx.nodehost.staleRead(req.shardId, req.query) };
  },
  async AddReplica(ctx, req) {
    const nh = ctx.nodehost;
    const args = [req.shardId, req.replicaId, req.raftAddress, req.configChangeId] as const;
    const opts = { timeoutMs: ctx.timeoutMs(req.timeoutMs) };
    if (req.role === 2) await nh.syncRequestAddNonVoting(...args, opts);
    else if (req.role === 3) await nh.syncRequestAddWitness(...args, opts);
    else await nh.syncRequestAddReplica(...args, opts);
    return { membership: localMembership(nh, req.shardId) };
  },
  async DeleteReplica(ctx, req) {
    const opts = { timeoutMs: ctx.timeoutMs(req.timeoutMs) };
    await ctx.nodehost.syncRequestDeleteReplica(req.shardId, req.replicaId, req.configChangeId, opts);
    return { membership: localMembership(ctx.nodehost, req.shardId) };
  },
  async GetMembership(ctx, req) {
    const opts = { timeoutMs: ctx.timeoutMs(req.timeoutMs) };
    return { membership: await ctx.nodehost.syncGetShardMembership(req.shardId, opts) };
  },
  TransferLeader(ctx, req) {
    ctx.nodehost.requestLeaderTransfer(req.shardId, req.targetReplicaId);
    return {};
  },
  async RequestSnapshot(ctx, req) {
    const opts: {
      timeoutMs: number;
      exportPath?: string;
      compactionOverhead?: number;
      compactionIndex?: number;
    } = { timeoutMs: ctx.timeoutMs(req.timeoutMs) };
    const dir = exportDirectory(ctx, req);
    if (dir !== undefined) opts.exportPath = dir;
    if (req.overrideCompactionOverhead) opts.compactionOverhead = req.compactionOverhead;
    if (req.compactionIndex > 0) opts.compactionIndex = req.compactionIndex;
    return { index: await ctx.nodehost.syncRequestSnapshot(req.shardId, opts) };
  },
  async RemoveData(ctx, req) {
    const opts = {
      timeoutMs: ctx.timeoutMs(req.timeoutMs),
      ...(req.membership ? { membership: req.membership } : {}),
    };
    await ctx.nodehost.syncRemoveData(req.shardId, req.replicaId, opts);
    return {};
  },
  Compact(ctx, req) {
    const opts = req.overrideCompactionOverhead ? { compactionOverhead: req.compactionOverhead } : {};
    const r = ctx.nodehost.requestCompaction(req.shardId, opts);
    return {
      replicaId: r.replicaId,
      snapshotIndex: r.snapshotIndex,
      firstIndex: r.firstIndex,
      entriesRemoved: r.entriesRemoved,
      logBytesRemoved: r.logBytesRemoved,
      logEntries: r.logEntries,
      logBytes: r.logBytes,
      fileBytesBefore: r.fileBytesBefore,
      fileBytesAfter: r.fileBytesAfter,
    };
  },
  QueryRaftLog(ctx, req) {
    if (req.maxBytes > QUERY_LOG_MAX_BYTES) {
      throw new ConnectError(
        "invalid_argument",
        `QueryRaftLogRequest.maxBytes ${req.maxBytes} exceeds ${QUERY_LOG_MAX_BYTES}`,
      );
    }
    const lastIndex = req.lastIndex === 0 ? Number.MAX_SAFE_INTEGER : req.lastIndex;
    const maxBytes = req.maxBytes === 0 ? QUERY_LOG_DEFAULT_BYTES : req.maxBytes;
    const opts = req.replicaId === 0 ? {} : { replicaId: req.replicaId };
    const r = ctx.nodehost.queryRaftLog(req.shardId, req.firstIndex, lastIndex, maxBytes, opts);
    return {
      replicaId: r.replicaId,
      firstIndex: r.firstIndex,
      lastIndex: r.lastIndex,
      commitIndex: r.commitIndex,
      snapshotIndex: r.snapshotIndex,
      entries: r.entries,
    };
  },
  Status(ctx) {
    const info = ctx.nodehost.getNodeHostInfo();
    return {
      raftAddress: info.raftAddress,
      apiAddress: ctx.apiAddress,
      deploymentId: info.deploymentId,
      region: ctx.region,
      shards: info.shards.map((s) => ({
        shardId: s.shardId,
        replicaId: s.replicaId,
        app: s.app,
        role: s.role,
        term: s.term,
        leaderId: s.leaderId,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        membership: s.membership,
        quiesced: s.quiesced,
      })),
      logsOnDisk: info.logsOnDisk.map((l) => ({ shardId: l.shardId, replicaId: l.replicaId })),
    };
  },
};

/**
 * Where RequestSnapshot exports to: nowhere unless asked (export, or an export_path); then
 * only into the directory the operator set (--snapshot-export-dir). A client never chooses a
 * path on the server: export_path, when given, must name that same directory.
 */
function exportDirectory(ctx: HandlerContext, req: RequestOf<"RequestSnapshot">): string | undefined {
  if (!req.export && req.exportPath === "") return undefined;
  if (ctx.snapshotExportDir === undefined) {
    throw new ConnectError(
      "failed_precondition",
      "snapshot export is disabled on this NodeHost: its operator enables it with --snapshot-export-dir (a client cannot choose a path on the server)",
    );
  }
  if (req.exportPath !== "" && resolve(req.exportPath) !== ctx.snapshotExportDir) {
    throw new ConnectError(
      "permission_denied",
      "RequestSnapshotRequest.exportPath names a directory other than this NodeHost's export directory; send export=true without exportPath",
    );
  }
  return ctx.snapshotExportDir;
}
