import type { EventKind, NodeHostEvent } from "../engine/events.ts";
import type { Session } from "../engine/session.ts";
import type { Env } from "../env.ts";
import type { EngineStats } from "../engine/engine.ts";
import type { CompactionReport, RaftLogQuery, ShardInfo, SnapshotExport } from "../nodehost.ts";
import type { WriterStats } from "../logdb/types.ts";
import type { Membership } from "../raft/types.ts";
import type { NodeHostMetrics } from "./nodehost-metrics.ts";
import type { Limits } from "./rpc/limits.ts";

interface TimeoutOption {
  timeoutMs: number;
}

/** One shard as NodeHost.getNodeHostInfo() reports it (role: 1 follower … 4 leader, 5 non-voting, 6 witness). */
export type ShardInfoLike = ShardInfo;
export type EngineStatsLike = EngineStats;

/**
 * The part of NodeHost (src/nodehost.ts) the API calls. The real NodeHost satisfies it
 * structurally; tests use a fake.
 */
export interface NodeHostLike {
  getNoOpSession(shardId: number): Session;
  getNewSession(shardId: number, opts: TimeoutOption): Promise<Session>;
  closeSession(session: Session, opts: TimeoutOption): Promise<void>;
  syncPropose(
    session: Session,
    cmd: Uint8Array,
    opts: TimeoutOption,
  ): Promise<{ value: number; data: Uint8Array; index: number }>;
  syncRead(shardId: number, query: Uint8Array, opts: TimeoutOption): Promise<Uint8Array>;
  staleRead(shardId: number, query: Uint8Array): Uint8Array;
  syncGetShardMembership(shardId: number, opts: TimeoutOption): Promise<Membership>;
  syncRequestAddReplica(
    shardId: number,
    replicaId: number,
    address: string,
    configChangeId: number,
    opts: TimeoutOption,
  ): Promise<void>;
  syncRequestAddNonVoting(
    shardId: number,
    replicaId: number,
    address: string,
    configChangeId: number,
    opts: TimeoutOption,
  ): Promise<void>;
  syncRequestAddWitness(
    shardId: number,
    replicaId: number,
    address: string,
    configChangeId: number,
    opts: TimeoutOption,
  ): Promise<void>;
  syncRequestDeleteReplica(
    shardId: number,
    replicaId: number,
    configChangeId: number,
    opts: TimeoutOption,
  ): Promise<void>;
  requestLeaderTransfer(shardId: number, targetReplicaId: number): void;
  syncRequestSnapshot(
    shardId: number,
    opts: TimeoutOption & { exportPath?: string; compactionOverhead?: number; compactionIndex?: number },
  ): Promise<number>;
  syncRemoveData(
    shardId: number,
    replicaId: number,
    opts: TimeoutOption & { membership?: Membership },
  ): Promise<void>;
  requestCompaction(shardId: number, opts?: { compactionOverhead?: number }): CompactionReport;
  queryRaftLog(
    shardId: number,
    firstIndex: number,
    lastIndex: number,
    maxBytes: number,
    opts?: { replicaId?: number },
  ): RaftLogQuery;
  syncExportSnapshot(
    shardId: number,
    opts: TimeoutOption & { unconfirmed?: boolean },
  ): Promise<SnapshotExport>;
  getLeaderId(shardId: number): { leaderId: number; term: number; valid: boolean };
  getNodeHostInfo(opts?: { skipLogInfo?: boolean }): {
    raftAddress: string;
    deploymentId: number;
    shards: ShardInfoLike[];
    logsOnDisk: { shardId: number; replicaId: number }[];
  };
  readonly stats: Readonly<EngineStatsLike>;
  /** Queued requests and inbound messages over all replicas (optional: read at every scrape). */
  queueDepths?(): { proposals: number; reads: number; inbox: number };
  /** Calls handler with this NodeHost's events, off the engine loop (WatchEvents; optional). */
  subscribe?(
    handler: (event: NodeHostEvent) => void,
    opts: { kinds?: readonly EventKind[]; shardId?: number; queueMax?: number; name?: string },
  ): { close(): void };
  /** Delivered, dropped and queued events per event listener (optional: read at every scrape). */
  eventListenerStats?(): { name: string; delivered: number; dropped: number; queued: number }[];
  /** Cumulative transport counters (optional: read at every scrape). */
  transportStats?(): {
    bytesSent: number;
    bytesReceived: number;
    snapshotBytesReceived: number;
    snapshotsSent: number;
    snapshotsSendFailed: number;
    snapshotsReceived: number;
    snapshotsRefused: number;
    messagesDroppedQueueFull: number;
    messagesDroppedTooLarge: number;
    messagesDroppedUnreachable: number;
    messagesInvalid: number;
  } | null;
  /** What the log writer did since open (optional: read at every scrape; null without one). */
  logWriterStats?(): WriterStats | null;
}

/** Client TLS of forwarded requests: the CA that signed the other NodeHosts' API certificates, and this host's certificate when they require one. */
export interface ForwardTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** A fetch-like function (globalThis.fetch by default; tests pass another app's fetch). */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export type ApiLog = (event: Record<string, unknown>) => void;

export interface NodeHostApiOptions {
  nodehost: NodeHostLike;
  /**
   * When set, every path except GET /healthz, /readyz and the dashboard's page and script
   * (src/ui/routes.tsx, which hold no data) requires `Authorization: Bearer <apiToken>`.
   */
  apiToken?: string;
  /** Seconds between the dashboard's refreshes (`GET /`). Default 2. */
  dashboardRefreshSeconds?: number;
  /** When set, GET /metrics requires this token (or the API token), so a scraper needs no API access. */
  metricsToken?: string;
  /**
   * The only directory RequestSnapshot may export into (set by the operator). A client never
   * names a path on the server: without it export is refused, and a request naming another path too.
   */
  snapshotExportDir?: string;
  /** Largest request body accepted, in bytes. Default 16 MiB (same as limits.maxBodyBytes). */
  maxBodyBytes?: number;
  /** The server's limits (src/api/rpc/limits.ts); defaults for what is left out. */
  limits?: Partial<Limits>;
  /** TLS for requests forwarded to the leader's NodeHost (https when given). */
  forwardTls?: ForwardTls;
  /** Timeout used when a request says timeoutMs 0. Default 5000. */
  defaultTimeoutMs?: number;
  /** The API address (host:port) of the NodeHost holding replica replicaId of shardId. */
  resolveApiAddress?: (shardId: number, replicaId: number) => string | undefined;
  /** How requests are forwarded to the leader's NodeHost. Default globalThis.fetch. */
  forward?: FetchLike;
  /** This NodeHost's own API address and region, reported by Status. */
  apiAddress?: string;
  region?: string;
  /** Clock for latencies and timer for forwarding timeouts. Default realEnv(). */
  env?: Pick<Env, "nowMs" | "setTimer">;
  /** Structured log sink. Default: nothing. */
  log?: ApiLog;
  /** Registry to add the API's metrics to (the lead may share one). Default a new one. */
  metrics?: NodeHostMetrics;
}
