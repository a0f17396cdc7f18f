/**
 * A tiny Prometheus registry: counters, gauges and histograms with fixed buckets, exposed in
 * the text format 0.0.4 (HELP and TYPE lines, cumulative `_bucket{le=…}`, `_sum`, `_count`).
 *
 * ```ts
 * const registry = new MetricsRegistry();
 * const requests = registry.counter("api_requests_total", "API requests.", ["method"]);
 * requests.inc({ method: "Propose" });
 * registry.expose(); // "# HELP api_requests_total API requests.\n# TYPE ..."
 * ```
 *
 * Bound: each metric holds at most `maxSeriesPerMetric` label combinations (default 1000); an
 * observation for a new combination beyond that is dropped and counted in
 * `longboat_metrics_dropped_series_total`, so a label fed from input can never grow memory.
 */

export type Labels = Record<string, string>;
export type MetricType = "counter" | "gauge" | "histogram";

/** A family produced at scrape time by a collector (values read from elsewhere, e.g. engine stats). */
export interface CollectedFamily {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: { labels?: Labels; value: number }[];
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const DEFAULT_MAX_SERIES_PER_METRIC = 1000;

/** Latency buckets in seconds: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Buckets in seconds for work that takes milliseconds to minutes (taking a snapshot): 1 ms to 10 min. */
export const LONG_DURATION_BUCKETS_SECONDS = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];
/** Count buckets (batch sizes): 1 to 4096. */
export const COUNT_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

interface Exposable {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  lines(out: string[]): void;
}

abstract class Metric<S> implements Exposable {
  protected readonly series = new Map<string, { labels: Labels; state: S }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly string[],
    private readonly registry: MetricsRegistry,
  ) {
    if (!NAME_RE.test(name)) throw new Error(`metric name "${name}" is not a valid Prometheus name`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l === "le")
        throw new Error(`metric ${name}: label name "${l}" is not allowed`);
    }
  }

  /**
   * The series of a metric without labels exists from the start (at zero), as Prometheus
   * clients do, so a rate or a histogram quantile has a series before the first observation.
   * The registry calls it once the metric is built.
   */
  started(): this {
    if (this.labelNames.length === 0) this.state({});
    return this;
  }

  protected abstract fresh(): S;

  /** The state of the series with these labels, or undefined when the series bound is hit. */
  protected state(labels: Labels): S | undefined {
    const key = this.key(labels);
    const found = this.series.get(key);
    if (found) return found.state;
    if (this.series.size >= this.registry.maxSeriesPerMetric) {
      this.registry.droppedSeries += 1;
      return undefined;
    }
    const state = this.fresh();
    this.series.set(key, { labels: { ...labels }, state });
    return state;
  }

  private key(labels: Labels): string {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || this.labelNames.some((l) => labels[l] === undefined)) {
      throw new Error(
        `metric ${this.name} takes labels [${this.labelNames.join(", ")}], got [${keys.join(", ")}]`,
      );
    }
    return this.labelNames.map((l) => labels[l]).join("\u0000");
  }

  abstract lines(out: string[]): void;

  get seriesCount(): number {
    return this.series.size;
  }
}

export class Counter extends Metric<{ value: number }> {
  protected fresh() {
    return { value: 0 };
  }
  inc(labels: Labels = {}, amount = 1): void {
    if (!(amount >= 0)) throw new Error(`counter ${this.name} can only grow, got increment ${amount}`);
    const s = this.state(labels);
    if (s) s.value += amount;
  }
  get(labels: Labels = {}): number {
    return this.state(labels)?.value ?? 0;
  }
  lines(out: string[]): void {
    for (const { labels, state } of this.series.values()) out.push(sample(this.name, labels, state.value));
  }
}

export class Gauge extends Metric<{ value: number }> {
  protected fresh() {
    return { value: 0 };
  }
  set(labels: Labels, value: number): void {
    const s = this.state(labels);
    if (s) s.value = value;
  }
  get(labels: Labels = {}): number {
    return this.state(labels)?.value ?? 0;
  }
  lines(out: string[]): void {
    for (const { labels, state } of this.series.values()) out.push(sample(this.name, labels, state.value));
  }
}

export class Histogram extends Metric<{ counts: number[]; sum: number; count: number }> {
  constructor(
    name: string,
    help: string,
    readonly buckets: readonly number[],
    labelNames: readonly string[],
    registry: MetricsRegistry,
  ) {
    super(name, help, "histogram", labelNames, registry);
    if (buckets.length === 0) throw new Error(`histogram ${name} needs at least one bucket`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) {
        throw new Error(`histogram ${name}: buckets must increase, got ${buckets[i - 1]} then ${buckets[i]}`);
      }
    }
  }
  protected fresh() {
    return { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
  }
  observe(labels: Labels, value: number): void {
    const s = this.state(labels);
    if (!s) return;
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]! += 1;
    s.sum += value;
    s.count += 1;
  }
  lines(out: string[]): void {
    for (const { labels, state } of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += state.counts[i]!;
        out.push(sample(`${this.name}_bucket`, { ...labels, le: formatValue(this.buckets[i]!) }, cumulative));
      }
      out.push(sample(`${this.name}_bucket`, { ...labels, le: "+Inf" }, state.count));
      out.push(sample(`${this.name}_sum`, labels, state.sum));
      out.push(sample(`${this.name}_count`, labels, state.count));
    }
  }
}

export class MetricsRegistry {
  droppedSeries = 0;
  private readonly metrics = new Map<string, Exposable>();
  private readonly collectors: (() => CollectedFamily[])[] = [];

  constructor(readonly maxSeriesPerMetric = DEFAULT_MAX_SERIES_PER_METRIC) {
    if (!Number.isSafeInteger(maxSeriesPerMetric) || maxSeriesPerMetric < 1) {
      throw new Error(`maxSeriesPerMetric must be a positive integer, got ${maxSeriesPerMetric}`);
    }
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, "counter", labelNames, this)).started();
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, "gauge", labelNames, this)).started();
  }
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[] = [],
  ): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames, this)).started();
  }

  /** Adds families read at every scrape (each scrape calls fn once). */
  addCollector(fn: () => CollectedFamily[]): void {
    this.collectors.push(fn);
  }

  /** The whole registry in the Prometheus text format 0.0.4. */
  expose(): string {
    const out: string[] = [];
    // Collectors run first: some update registered metrics (queue depths) before they print.
    const collected = this.collectors.map((collect) => collect());
    for (const m of this.metrics.values()) {
      header(out, m.name, m.help, m.type);
      m.lines(out);
    }
    for (const families of collected) {
      for (const f of families) {
        header(out, f.name, f.help, f.type);
        for (const s of f.samples) out.push(sample(f.name, s.labels ?? {}, s.value));
      }
    }
    header(
      out,
      "longboat_metrics_dropped_series_total",
      "Observations dropped at the series bound.",
      "counter",
    );
    out.push(sample("longboat_metrics_dropped_series_total", {}, this.droppedSeries));
    return `${out.join("\n")}\n`;
  }

  private add<M extends Exposable>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

function header(out: string[], name: string, help: string, type: string): void {
  out.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
  out.push(`# TYPE ${name} ${type}`);
}

function sample(name: string, labels: Labels, value: number): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return `${name} ${formatValue(value)}`;
  const body = keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(",");
  return `${name}{${body}} ${formatValue(value)}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}
