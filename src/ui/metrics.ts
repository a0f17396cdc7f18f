/**
 * The dashboard's live charts: reads two scrapes of a NodeHost's `/metrics` (Prometheus text)
 * and computes proposals per second, the p99 latency of proposals over the interval, and log
 * fsyncs per second. Runs in the browser: imports nothing.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (comments and unreadable lines are skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      }
    }
    const value = m[4] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[4]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** One scrape and when it was taken (ms on the browser's clock). */
export interface Scrape {
  atMs: number;
  samples: Sample[];
}

const PROPOSE = (s: Sample) => s.labels.method === "Propose";

function total(scrape: Scrape, name: string, keep: (s: Sample) => boolean = () => true): number | undefined {
  const found = scrape.samples.filter((s) => s.name === name && keep(s));
  return found.length === 0 ? undefined : found.reduce((a, s) => a + s.value, 0);
}

function rate(prev: Scrape, next: Scrape, name: string, keep?: (s: Sample) => boolean): number | undefined {
  const a = total(prev, name, keep);
  const b = total(next, name, keep);
  const seconds = (next.atMs - prev.atMs) / 1000;
  if (a === undefined || b === undefined || seconds <= 0 || b < a) return undefined;
  return (b - a) / seconds;
}

/** Cumulative bucket counts by upper bound, summed over the series `keep` selects. */
function buckets(scrape: Scrape, name: string, keep: (s: Sample) => boolean): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of scrape.samples) {
    if (s.name !== `${name}_bucket` || !keep(s) || s.labels.le === undefined) continue;
    const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    out.set(le, (out.get(le) ?? 0) + s.value);
  }
  return out;
}

/**
 * The q-quantile of the observations a histogram gained between two scrapes, in the histogram's
 * unit: the upper bound of the first bucket holding it (as Prometheus does without
 * interpolation's guesswork). Undefined when nothing was observed.
 */
export function quantileBetween(
  prev: Scrape,
  next: Scrape,
  name: string,
  q: number,
  keep: (s: Sample) => boolean = () => true,
): number | undefined {
  const a = buckets(prev, name, keep);
  const b = buckets(next, name, keep);
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const count = (b.get(Number.POSITIVE_INFINITY) ?? 0) - (a.get(Number.POSITIVE_INFINITY) ?? 0);
  if (count <= 0) return undefined;
  const rank = q * count;
  let last = 0;
  for (const le of bounds) {
    const c = (b.get(le) ?? 0) - (a.get(le) ?? 0);
    if (c >= rank) return Number.isFinite(le) ? le : last;
    if (Number.isFinite(le)) last = le;
  }
  return last;
}

/** The three chart values between two scrapes of a NodeHost's /metrics. */
export function chartPoint(
  prev: Scrape,
  next: Scrape,
): { proposals: number | undefined; p99ms: number | undefined; fsyncs: number | undefined } {
  const p99 = quantileBetween(prev, next, "longboat_api_request_duration_seconds", 0.99, PROPOSE);
  return {
    proposals: rate(prev, next, "longboat_api_requests_total", PROPOSE),
    p99ms: p99 === undefined ? undefined : p99 * 1000,
    fsyncs: rate(prev, next, "longboat_logdb_saved_batches_total"),
  };
}
