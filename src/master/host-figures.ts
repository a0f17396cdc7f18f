/**
 * A NodeHost's live figures for the drummers' dashboard, sent with each report: proposals/s,
 * the p99 latency of the proposals answered and log fsyncs/s over the interval since the
 * previous report — the same three figures, computed the same way (src/ui/metrics.ts
 * chartPoint), as the NodeHost's own page charts from its /metrics. The drummers keep the last
 * ones per host and ListNodeHosts returns them; nothing else reads them.
 *
 * ```ts
 * const figures = new HostFigures(nodeHostSamples(metrics, nh), () => env.nowMs());
 * buildReport(nh, { ..., figures: figures.next() });
 * ```
 */
import type { NodeHostMetrics } from "../api/nodehost-metrics.ts";
import { chartPoint, parsePrometheus, type Sample, type Scrape } from "../ui/metrics.ts";

/** The figures of one interval (a HostFigures message as a plain object). */
export interface HostFiguresOut {
  /** Numbers the samples of one NodeHost process (1, 2, …): a dashboard charts each once. */
  sample: number;
  intervalMs: number;
  proposalsPerSecond: number;
  /** 0 when no proposal was answered in the interval. */
  proposalP99Ms: number;
  fsyncsPerSecond: number;
}

/** Reads the totals the figures are computed from, as Prometheus samples. */
export type LiveSamples = () => Sample[];

/**
 * The samples chartPoint reads, taken from a NodeHost's metrics (API requests and their
 * latency by method; the engine's saved batches, one fsync each) without exposing the rest.
 */
export function nodeHostSamples(
  metrics: Pick<NodeHostMetrics, "apiRequests" | "apiRequestSeconds">,
  nodehost: { readonly stats: { readonly savedBatches: number } },
): LiveSamples {
  return () => {
    const lines: string[] = [];
    metrics.apiRequests.lines(lines);
    metrics.apiRequestSeconds.lines(lines);
    const samples = parsePrometheus(lines.join("\n"));
    samples.push({
      name: "longboat_logdb_saved_batches_total",
      labels: {},
      value: nodehost.stats.savedBatches,
    });
    return samples;
  };
}

export class HostFigures {
  private last: Scrape | undefined;
  private samples = 0;

  constructor(
    private readonly read: LiveSamples,
    private readonly nowMs: () => number,
  ) {}

  /** The figures since the previous call; undefined on the first (nothing to compare with yet). */
  next(): HostFiguresOut | undefined {
    const scrape: Scrape = { atMs: this.nowMs(), samples: this.read() };
    const prev = this.last;
    this.last = scrape;
    if (!prev || scrape.atMs <= prev.atMs) return undefined;
    const p = chartPoint(prev, scrape);
    this.samples += 1;
    return {
      sample: this.samples,
      intervalMs: Math.round(scrape.atMs - prev.atMs),
      proposalsPerSecond: p.proposals ?? 0,
      proposalP99Ms: p.p99ms ?? 0,
      fsyncsPerSecond: p.fsyncs ?? 0,
    };
  }
}
