import { readdirSync } from "node:fs";
import { buildInfo } from "../build-info.ts";
import {
  type CollectedFamily,
  COUNT_BUCKETS,
  type Counter,
  type Gauge,
  type Histogram,
  LATENCY_BUCKETS_SECONDS,
  LONG_DURATION_BUCKETS_SECONDS,
  MetricsRegistry,
} from "./metrics.ts";
import type { NodeHostLike } from "./types.ts";

/** At most this many shards get per-shard gauges in one scrape (the rest are summarised by count). */
export const MAX_SHARD_SERIES = 1000;

/**
 * The metrics of one NodeHost. The API records requests itself; the engine, log database and
 * transport feed the `observe…`/`add…`/`set…` hooks; engine stats and shard state are read at
 * every scrape by `watchNodeHost`.
 */
export class NodeHostMetrics {
  readonly registry: MetricsRegistry;
  readonly apiRequests: Counter;
  readonly apiRequestSeconds: Histogram;
  readonly apiForwarded: Counter;
  readonly apiAuthFailures: Counter;
  readonly apiRefused: Counter;
  readonly saveSeconds: Histogram;
  readonly saveBatchEntries: Histogram;
  readonly queueDepth: Gauge;
  readonly transportBytes: Counter;
  readonly transportDrops: Counter;
  readonly transportSnapshots: Counter;
  readonly transportSnapshotBytes: Counter;
  readonly snapshotSeconds: Histogram;

  constructor(registry = new MetricsRegistry()) {
    this.registry = registry;
    this.apiRequests = registry.counter(
      "longboat_api_requests_total",
      "NodeHost API requests by method and Connect code (ok on success).",
      ["method", "code"],
    );
    this.apiRequestSeconds = registry.histogram(
      "longboat_api_request_duration_seconds",
      "NodeHost API request latency by method, forwarding included.",
      LATENCY_BUCKETS_SECONDS,
      ["method"],
    );
    this.apiForwarded = registry.counter(
      "longboat_api_forwarded_total",
      "Requests forwarded to the leader's NodeHost, by method and outcome.",
      ["method", "result"],
    );
    this.apiAuthFailures = registry.counter(
      "longboat_api_auth_failures_total",
      "API requests refused for their bearer token, by reason (missing, malformed, wrong).",
      ["reason"],
    );
    this.apiRefused = registry.counter(
      "longboat_api_refused_total",
      "API requests or connections refused by a limit, by reason (concurrency, buffered_bytes, body_timeout, headers, tls_handshake).",
      ["reason"],
    );
    this.saveSeconds = registry.histogram(
      "longboat_logdb_save_duration_seconds",
      "Time of one log database save (one transaction, one fsync).",
      LATENCY_BUCKETS_SECONDS,
    );
    this.saveBatchEntries = registry.histogram(
      "longboat_logdb_save_batch_entries",
      "Entries written by one log database save.",
      COUNT_BUCKETS,
    );
    this.queueDepth = registry.gauge("longboat_queue_depth", "Current depth of a bounded queue.", ["queue"]);
    this.transportBytes = registry.counter(
      "longboat_transport_bytes_total",
      "Bytes sent or received by the Raft transport.",
      ["direction"],
    );
    this.transportDrops = registry.counter(
      "longboat_transport_drops_total",
      "Messages the Raft transport dropped, by reason.",
      ["reason"],
    );
    this.transportSnapshots = registry.counter(
      "longboat_transport_snapshots_total",
      "Snapshot streams of the Raft transport by result (sent, send_failed, received, refused).",
      ["result"],
    );
    this.transportSnapshotBytes = registry.counter(
      "longboat_transport_snapshot_bytes_total",
      "Bytes of snapshot streams the Raft transport received.",
      ["direction"],
    );
    this.snapshotSeconds = registry.histogram(
      "longboat_snapshot_create_duration_seconds",
      "Time one snapshot took to be taken (saving the state machine and recording it in the log database).",
      LONG_DURATION_BUCKETS_SECONDS,
    );
    registry.addCollector(processFamilies);
  }

  /** One API request finished: method name (or "unknown"), Connect code or "ok", latency. */
  observeApiRequest(method: string, code: string, latencyMs: number): void {
    this.apiRequests.inc({ method, code });
    this.apiRequestSeconds.observe({ method }, latencyMs / 1000);
  }

  /** Hook for the engine: one LogDB save (fsync) took durationMs and wrote entryCount entries. */
  observeSave(durationMs: number, entryCount: number): void {
    this.saveSeconds.observe({}, durationMs / 1000);
    this.saveBatchEntries.observe({}, entryCount);
  }

  /** Hook for the engine: a replica took a snapshot in durationMs. */
  observeSnapshot(durationMs: number): void {
    this.snapshotSeconds.observe({}, durationMs / 1000);
  }

  /** Hook: the current depth of a named bounded queue (e.g. "inbound", "proposals", "send:h2:7001"). */
  setQueueDepth(queue: string, depth: number): void {
    this.queueDepth.set({ queue }, depth);
  }

  /** Hook for the transport: bytes sent or received. */
  addTransportBytes(direction: "sent" | "received", sizeBytes: number): void {
    this.transportBytes.inc({ direction }, sizeBytes);
  }

  /** Hook for the transport: messages dropped (queue full, unreachable, wrong deployment…). */
  addTransportDrops(reason: string, messageCount = 1): void {
    this.transportDrops.inc({ reason }, messageCount);
  }

  private pullQueuesAndTransport(nodehost: NodeHostLike): void {
    const q = nodehost.queueDepths?.();
    if (q) {
      this.setQueueDepth("proposals", q.proposals);
      this.setQueueDepth("reads", q.reads);
      this.setQueueDepth("inbox", q.inbox);
    }
    const t = nodehost.transportStats?.();
    if (!t) return;
    this.addTransportBytes("sent", delta(nodehost, "bytesSent", t.bytesSent));
    this.addTransportBytes("received", delta(nodehost, "bytesReceived", t.bytesReceived));
    this.transportSnapshots.inc({ result: "sent" }, delta(nodehost, "snapshotsSent", t.snapshotsSent));
    this.transportSnapshots.inc(
      { result: "send_failed" },
      delta(nodehost, "snapshotsSendFailed", t.snapshotsSendFailed),
    );
    this.transportSnapshots.inc(
      { result: "received" },
      delta(nodehost, "snapshotsReceived", t.snapshotsReceived),
    );
    this.transportSnapshots.inc(
      { result: "refused" },
      delta(nodehost, "snapshotsRefused", t.snapshotsRefused),
    );
    this.transportSnapshotBytes.inc(
      { direction: "received" },
      delta(nodehost, "snapshotBytesReceived", t.snapshotBytesReceived),
    );
    this.addTransportDrops("queue_full", delta(nodehost, "queueFull", t.messagesDroppedQueueFull));
    this.addTransportDrops("too_large", delta(nodehost, "tooLarge", t.messagesDroppedTooLarge));
    this.addTransportDrops("unreachable", delta(nodehost, "unreachable", t.messagesDroppedUnreachable));
    this.addTransportDrops("invalid", delta(nodehost, "invalid", t.messagesInvalid));
  }

  /** Reads engine stats and shard state from nodehost at every scrape. Call once per NodeHost. */
  watchNodeHost(nodehost: NodeHostLike): void {
    this.registry.addCollector(() => {
      this.pullQueuesAndTransport(nodehost);
      return [];
    });
    this.registry.addCollector(() => {
      const s = nodehost.stats;
      const counter = (name: string, help: string, value: number) => ({
        name,
        help,
        type: "counter" as const,
        samples: [{ value }],
      });
      return [
        counter("longboat_engine_iterations_total", "Engine loop iterations.", s.iterations),
        counter("longboat_logdb_saved_batches_total", "Log database saves (fsyncs).", s.savedBatches),
        counter("longboat_logdb_saved_entries_total", "Entries saved to the log database.", s.savedEntries),
        counter("longboat_logdb_save_seconds_total", "Total time spent in saves.", s.saveMsTotal / 1000),
        counter(
          "longboat_engine_sent_messages_total",
          "Raft messages handed to the transport.",
          s.sentMessages,
        ),
        counter("longboat_engine_dropped_messages_total", "Raft messages dropped.", s.droppedMessages),
        counter("longboat_rsm_applied_entries_total", "Entries applied to state machines.", s.appliedEntries),
        counter("longboat_raft_elections_total", "Elections started.", s.elections),
        counter(
          "longboat_raft_messages_refused_total",
          "Messages from peers dropped because they break the protocol (logged as message-refused).",
          s.refusedMessages,
        ),
        counter(
          "longboat_snapshots_created_total",
          "Snapshots taken by this host's replicas (on request or every snapshot-entries).",
          s.snapshotsCreated,
        ),
        counter(
          "longboat_snapshot_created_bytes_total",
          "Bytes of the snapshot files taken by this host's replicas.",
          s.snapshotBytesCreated,
        ),
        counter(
          "longboat_replica_failures_total",
          "Replicas stopped because processing them failed (logged as replica-failed); the host went on.",
          s.replicaFailures,
        ),
        ...writerFamilies(nodehost),
        ...shardFamilies(nodehost),
        ...listenerFamilies(nodehost),
      ];
    });
  }
}

/**
 * The log writer's work (longboat_logdb_writer_*): journal appends and moves into the
 * per-replica tables, each one transaction and one fsync, and the seconds spent in each — the
 * writer's busy share of a round is appends + moves seconds over wall time.
 */
function writerFamilies(nodehost: NodeHostLike) {
  const w = nodehost.logWriterStats?.();
  if (!w) return [];
  const counter = (
    name: string,
    help: string,
    samples: { labels?: Record<string, string>; value: number }[],
  ) => ({
    name,
    help,
    type: "counter" as const,
    samples,
  });
  return [
    counter(
      "longboat_logdb_writer_transactions_total",
      "Log writer appends (one transaction and fsync each) and moves into the per-replica tables (in the transaction of the append after which they fell due; alone at a checkpoint), by kind.",
      [
        { labels: { kind: "append" }, value: w.appends },
        { labels: { kind: "move" }, value: w.moves },
      ],
    ),
    counter(
      "longboat_logdb_writer_seconds_total",
      "Seconds the log writer spent in its transactions, by kind (append includes its commit; a move in an append's transaction counts as move).",
      [
        { labels: { kind: "append" }, value: w.appendMs / 1000 },
        { labels: { kind: "commit" }, value: w.commitMs / 1000 },
        { labels: { kind: "move" }, value: w.moveMs / 1000 },
      ],
    ),
    counter(
      "longboat_logdb_writer_moved_entries_total",
      "Entries the log writer moved from the journal into the per-replica tables.",
      [{ value: w.movedEntries }],
    ),
  ];
}

/** When this process started, in seconds since the epoch (a fact of the process, not a clock read). */
const PROCESS_START_SECONDS = performance.timeOrigin / 1000;

/**
 * The process metrics Prometheus clients export under these names: CPU, resident memory,
 * open file descriptors (from /proc, where there is one), start time; and longboat_build_info.
 */
function processFamilies(): CollectedFamily[] {
  const cpu = process.cpuUsage();
  const families: CollectedFamily[] = [
    {
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      type: "counter",
      samples: [{ value: (cpu.user + cpu.system) / 1e6 }],
    },
    {
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      type: "gauge",
      samples: [{ value: process.memoryUsage.rss() }],
    },
    {
      name: "process_start_time_seconds",
      help: "Start time of the process since unix epoch in seconds.",
      type: "gauge",
      samples: [{ value: Math.round(PROCESS_START_SECONDS) }],
    },
  ];
  const fds = openFds();
  if (fds !== null) {
    families.push({
      name: "process_open_fds",
      help: "Number of open file descriptors.",
      type: "gauge",
      samples: [{ value: fds }],
    });
  }
  const b = buildInfo();
  families.push({
    name: "longboat_build_info",
    help: "Always 1; the labels say which build runs: version, git commit, Bun version.",
    type: "gauge",
    samples: [{ labels: { version: b.version, commit: b.commit, bun: b.bun }, value: 1 }],
  });
  return families;
}

/** Open file descriptors of this process from /proc/self/fd, or null where there is none. */
function openFds(): number | null {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return null;
  }
}

/** Last cumulative transport counters seen, so each scrape adds only the difference. */
const seenTransport = new WeakMap<NodeHostLike, Record<string, number>>();

function delta(nodehost: NodeHostLike, key: string, value: number): number {
  const seen = seenTransport.get(nodehost) ?? {};
  seenTransport.set(nodehost, seen);
  const d = Math.max(0, value - (seen[key] ?? 0));
  seen[key] = value;
  return d;
}

function shardFamilies(nodehost: NodeHostLike) {
  const all = nodehost.getNodeHostInfo({ skipLogInfo: true }).shards;
  const shards = all.slice(0, MAX_SHARD_SERIES);
  const gauge = (name: string, help: string, value: (s: (typeof shards)[number]) => number) => ({
    name,
    help,
    type: "gauge" as const,
    samples: shards.map((s) => ({ labels: { shard: String(s.shardId) }, value: value(s) })),
  });
  return [
    {
      name: "longboat_shards",
      help: "Shards on this NodeHost.",
      type: "gauge" as const,
      samples: [{ value: all.length }],
    },
    gauge("longboat_shard_is_leader", "1 when this NodeHost's replica leads the shard.", (s) =>
      s.isLeader ? 1 : 0,
    ),
    gauge("longboat_shard_term", "Raft term of the shard's replica.", (s) => s.term),
    gauge("longboat_shard_commit_index", "Commit index of the shard's replica.", (s) => s.commitIndex),
    gauge("longboat_shard_applied_index", "Applied index of the shard's replica.", (s) => s.appliedIndex),
  ];
}

/** Event listeners' queues (src/engine/events.ts): a growing dropped count is a listener too slow. */
function listenerFamilies(nodehost: NodeHostLike) {
  const stats = nodehost.eventListenerStats?.() ?? [];
  const family = (
    name: string,
    help: string,
    type: "counter" | "gauge",
    key: "delivered" | "dropped" | "queued",
  ) => ({
    name,
    help,
    type,
    samples: stats.map((l) => ({ labels: { listener: l.name }, value: l[key] })),
  });
  return [
    family(
      "longboat_events_delivered_total",
      "Events handed to each event listener.",
      "counter",
      "delivered",
    ),
    family(
      "longboat_events_dropped_total",
      "Events dropped because the listener's queue was full.",
      "counter",
      "dropped",
    ),
    family("longboat_events_queued", "Events waiting for each event listener.", "gauge", "queued"),
  ];
}
