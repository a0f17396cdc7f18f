import { type Counter, type Histogram, LATENCY_BUCKETS_SECONDS, MetricsRegistry } from "../api/metrics.ts";
import { SHARD_HEALTH_NAMES, type ShardHealth } from "./health.ts";

export interface DrummerGauges {
  leading: boolean;
  hostsByState: Record<"alive" | "dead" | "unknown", number>;
  shardsByHealth: Partial<Record<ShardHealth, number>>;
  repairs: { started: number; done: number; failed: number; stopped: number };
  decisionsInFlight: number;
}

/**
 * A drummer's metrics: report latency is observed as reports come; the rest is read at every
 * scrape (host and shard counts are the leader's view; repair counters are DrummerDB's, so they
 * survive a change of leader).
 */
export class DrummerMetrics {
  readonly registry: MetricsRegistry;
  readonly reportSeconds: Histogram;
  readonly apiRequests: Counter;
  readonly apiRequestSeconds: Histogram;

  constructor(registry = new MetricsRegistry()) {
    this.registry = registry;
    this.apiRequests = registry.counter(
      "longboat_drummer_api_requests_total",
      "Drummer API requests by method and code (ok on success).",
      ["method", "code"],
    );
    this.apiRequestSeconds = registry.histogram(
      "longboat_drummer_api_request_duration_seconds",
      "Drummer API request latency by method, forwarding included.",
      LATENCY_BUCKETS_SECONDS,
      ["method"],
    );
    this.reportSeconds = registry.histogram(
      "longboat_drummer_report_duration_seconds",
      "Time the leader took to handle one NodeHost report.",
      LATENCY_BUCKETS_SECONDS,
    );
  }

  observeApiRequest(method: string, code: string, latencyMs: number): void {
    this.apiRequests.inc({ method, code });
    this.apiRequestSeconds.observe({ method }, latencyMs / 1000);
  }

  /** Reads gauges() at every scrape. */
  watch(gauges: () => DrummerGauges): void {
    this.registry.addCollector(() => {
      const g = gauges();
      return [
        {
          name: "longboat_drummer_leader",
          help: "1 on the drummer that leads the drummers.",
          type: "gauge",
          samples: [{ value: g.leading ? 1 : 0 }],
        },
        {
          name: "longboat_drummer_nodehosts",
          help: "NodeHosts by state, as the leader sees them (0 on other drummers).",
          type: "gauge",
          samples: (["alive", "dead", "unknown"] as const).map((state) => ({
            labels: { state },
            value: g.hostsByState[state],
          })),
        },
        {
          name: "longboat_drummer_shards",
          help: "Managed shards by health, as the leader sees them (0 on other drummers).",
          type: "gauge",
          samples: Object.entries(SHARD_HEALTH_NAMES).map(([n, health]) => ({
            labels: { health },
            value: g.shardsByHealth[Number(n) as ShardHealth] ?? 0,
          })),
        },
        {
          name: "longboat_drummer_repairs_total",
          help: "Shard repairs started, done, stopped unfinished (next step impossible), and repair decisions failed (DrummerDB's counters).",
          type: "counter",
          samples: (["started", "done", "stopped", "failed"] as const).map((result) => ({
            labels: { result },
            value: g.repairs[result],
          })),
        },
        {
          name: "longboat_drummer_decisions_in_flight",
          help: "Committed decisions not ended yet.",
          type: "gauge",
          samples: [{ value: g.decisionsInFlight }],
        },
      ];
    });
  }
}
