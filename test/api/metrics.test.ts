import { expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { MetricsRegistry } from "../../src/api/metrics.ts";
import { MAX_SHARD_SERIES, NodeHostMetrics } from "../../src/api/nodehost-metrics.ts";
import { ManualEnv } from "../../src/env.ts";
import { FakeNodeHost } from "./fake.ts";
import { postJson } from "./helpers.ts";
import { parsePrometheusText } from "./prom-text.ts";

interface Family {
  help: string;
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/** A strict parser of the text format 0.0.4: every sample belongs to a family announced by HELP and TYPE. */
function parseExposition(text: string): Map<string, Family> {
  expect(text.endsWith("\n")).toBe(true);
  const families = new Map<string, Family>();
  let current: string | undefined;
  for (const line of text.trimEnd().split("\n")) {
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
    if (help) {
      expect(families.has(help[1]!)).toBe(false);
      families.set(help[1]!, { help: help[2]!, type: "", samples: [] });
      current = help[1];
      continue;
    }
    if (type) {
      expect(type[1]).toBe(current);
      families.get(current!)!.type = type[2]!;
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable line: ${line}`);
    expect(m[1]!.startsWith(current!)).toBe(true);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? "").match(/[a-zA-Z_]\w*="(?:[^"\\]|\\.)*"/g) ?? []) {
      const eq = pair.indexOf("=");
      labels[pair.slice(0, eq)] = pair.slice(eq + 2, -1);
    }
    const value = m[3] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[3]);
    expect(Number.isNaN(value)).toBe(false);
    families.get(current!)!.samples.push({ name: m[1]!, labels, value });
  }
  return families;
}

test("histogram buckets are cumulative and end with +Inf, _sum and _count", () => {
  const registry = new MetricsRegistry();
  const h = registry.histogram("lat_seconds", "Latency.", [0.1, 1, 10], ["method"]);
  for (const v of [0.05, 0.5, 0.5, 5, 50]) h.observe({ method: "Read" }, v);
  const family = parseExposition(registry.expose()).get("lat_seconds")!;
  expect(family.type).toBe("histogram");
  expect(family.samples.map((s) => [s.name, s.labels.le ?? "", s.value])).toEqual([
    ["lat_seconds_bucket", "0.1", 1],
    ["lat_seconds_bucket", "1", 3],
    ["lat_seconds_bucket", "10", 4],
    ["lat_seconds_bucket", "+Inf", 5],
    ["lat_seconds_sum", "", 56.05],
    ["lat_seconds_count", "", 5],
  ]);
});

test("label values are escaped", () => {
  const registry = new MetricsRegistry();
  registry.counter("c_total", "C.", ["q"]).inc({ q: 'a"b\\c\nd' });
  expect(registry.expose()).toContain('c_total{q="a\\"b\\\\c\\nd"} 1');
});

test("a new series beyond the bound is dropped and counted; existing series still count", () => {
  const registry = new MetricsRegistry(2);
  const c = registry.counter("c_total", "C.", ["k"]);
  c.inc({ k: "a" });
  c.inc({ k: "b" });
  c.inc({ k: "c" });
  c.inc({ k: "a" });
  expect(c.seriesCount).toBe(2);
  expect(registry.droppedSeries).toBe(1);
  const families = parseExposition(registry.expose());
  expect(families.get("c_total")!.samples.map((s) => s.value)).toEqual([2, 1]);
  expect(families.get("longboat_metrics_dropped_series_total")!.samples[0]!.value).toBe(1);
});

test("misuse is refused with a message naming it", () => {
  const registry = new MetricsRegistry();
  expect(() => registry.histogram("h", "H.", [1, 1])).toThrow("buckets must increase, got 1 then 1");
  expect(() => registry.counter("bad-name", "B.")).toThrow('"bad-name" is not a valid Prometheus name');
  const c = registry.counter("c_total", "C.", ["k"]);
  expect(() => c.inc({ other: "x" })).toThrow("takes labels [k], got [other]");
  expect(() => c.inc({ k: "x" }, -1)).toThrow("can only grow");
  registry.counter("d_total", "D.");
  expect(() => registry.counter("d_total", "D.")).toThrow("registered twice");
});

test("/metrics exposes API requests, latencies, engine stats and shard state in a parseable format", async () => {
  const fake = new FakeNodeHost().addShard(1).addShard(2, { replicaId: 2, leaderId: 1 });
  const env = new ManualEnv(1);
  const app = createNodeHostApi({ nodehost: fake, env });
  await postJson(app, "StaleRead", { shardId: "1" });
  await postJson(app, "StaleRead", { shardId: "99" });
  const res = await app.request("/metrics");
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  const families = parseExposition(await res.text());
  const requests = families.get("longboat_api_requests_total")!;
  expect(requests.type).toBe("counter");
  expect(requests.samples.map((s) => [s.labels.method, s.labels.code, s.value])).toEqual([
    ["StaleRead", "ok", 1],
    ["StaleRead", "not_found", 1],
  ]);
  const latency = families.get("longboat_api_request_duration_seconds")!;
  expect(latency.samples.find((s) => s.name.endsWith("_count"))!.value).toBe(2);
  expect(families.get("longboat_raft_elections_total")!.samples[0]!.value).toBe(2);
  expect(families.get("longboat_logdb_save_seconds_total")!.samples[0]!.value).toBe(0.012);
  expect(families.get("longboat_shard_is_leader")!.samples.map((s) => [s.labels.shard, s.value])).toEqual([
    ["1", 1],
    ["2", 0],
  ]);
  expect(families.get("longboat_shards")!.samples[0]!.value).toBe(2);
});

test("the engine hooks feed fsync, batch size, queue depth and transport metrics", () => {
  const metrics = new NodeHostMetrics();
  metrics.observeSave(3, 17);
  metrics.setQueueDepth("inbound", 5);
  metrics.addTransportBytes("sent", 1000);
  metrics.addTransportDrops("queue_full", 3);
  const families = parseExposition(metrics.registry.expose());
  const count = (name: string) => families.get(name)!.samples.find((s) => s.name === `${name}_count`)!.value;
  expect(count("longboat_logdb_save_duration_seconds")).toBe(1);
  expect(
    families.get("longboat_logdb_save_batch_entries")!.samples.find((s) => s.labels.le === "32")!.value,
  ).toBe(1);
  expect(families.get("longboat_queue_depth")!.samples[0]).toMatchObject({
    labels: { queue: "inbound" },
    value: 5,
  });
  expect(families.get("longboat_transport_bytes_total")!.samples[0]!.value).toBe(1000);
  expect(families.get("longboat_transport_drops_total")!.samples[0]!.value).toBe(3);
});

test("snapshot durations are a histogram from milliseconds to minutes, present at zero before the first", () => {
  const metrics = new NodeHostMetrics();
  const name = "longboat_snapshot_create_duration_seconds";
  const buckets = () => {
    const text = metrics.registry.expose();
    parsePrometheusText(text); // the strict checker: cumulative buckets, +Inf equal to _count
    const family = parseExposition(text).get(name)!;
    expect(family.type).toBe("histogram");
    const at = (suffix: string, le?: string) =>
      family.samples.find((s) => s.name === `${name}${suffix}` && s.labels.le === le)!.value;
    return { at, les: family.samples.filter((s) => s.labels.le !== undefined).map((s) => s.labels.le) };
  };
  const before = buckets();
  expect(before.at("_count")).toBe(0);
  expect(before.at("_bucket", "+Inf")).toBe(0);
  expect(before.les[0]).toBe("0.001");
  expect(before.les.at(-2)).toBe("600");
  metrics.observeSnapshot(3); // 3 ms
  metrics.observeSnapshot(1500); // 1.5 s
  metrics.observeSnapshot(90_000); // 1.5 min
  const after = buckets();
  expect(after.at("_bucket", "0.001")).toBe(0);
  expect(after.at("_bucket", "0.005")).toBe(1);
  expect(after.at("_bucket", "1")).toBe(1);
  expect(after.at("_bucket", "2.5")).toBe(2);
  expect(after.at("_bucket", "60")).toBe(2);
  expect(after.at("_bucket", "120")).toBe(3);
  expect(after.at("_bucket", "+Inf")).toBe(3);
  expect(after.at("_count")).toBe(3);
  expect(after.at("_sum")).toBeCloseTo(91.503, 9);
});

test("a metric without labels is exposed at zero from the start; a labelled one only once it has a series", () => {
  const registry = new MetricsRegistry();
  registry.counter("plain_total", "Plain.");
  registry.counter("by_k_total", "By k.", ["k"]);
  const families = parseExposition(registry.expose());
  expect(families.get("plain_total")!.samples).toEqual([{ name: "plain_total", labels: {}, value: 0 }]);
  expect(families.get("by_k_total")!.samples).toEqual([]);
});

test(`per-shard gauges stop at ${MAX_SHARD_SERIES} shards while longboat_shards counts them all`, () => {
  const fake = new FakeNodeHost();
  for (let i = 1; i <= MAX_SHARD_SERIES + 1; i++) fake.addShard(i);
  const metrics = new NodeHostMetrics();
  metrics.watchNodeHost(fake);
  const families = parseExposition(metrics.registry.expose());
  expect(families.get("longboat_shard_term")!.samples).toHaveLength(MAX_SHARD_SERIES);
  expect(families.get("longboat_shards")!.samples[0]!.value).toBe(MAX_SHARD_SERIES + 1);
});

test("event listeners' delivered, dropped and queued counts are exposed per listener", () => {
  const fake = Object.assign(new FakeNodeHost().addShard(1), {
    eventListenerStats: () => [
      { name: "hooks", delivered: 7, dropped: 0, queued: 1 },
      { name: "watch-1", delivered: 3, dropped: 12, queued: 1024 },
    ],
  });
  const metrics = new NodeHostMetrics();
  metrics.watchNodeHost(fake);
  const families = parseExposition(metrics.registry.expose());
  const values = (name: string) => families.get(name)!.samples.map((s) => [s.labels.listener, s.value]);
  expect(families.get("longboat_events_dropped_total")!.type).toBe("counter");
  expect(values("longboat_events_dropped_total")).toEqual([
    ["hooks", 0],
    ["watch-1", 12],
  ]);
  expect(values("longboat_events_delivered_total")).toEqual([
    ["hooks", 7],
    ["watch-1", 3],
  ]);
  expect(values("longboat_events_queued")).toEqual([
    ["hooks", 1],
    ["watch-1", 1024],
  ]);
});

test("the log writer's appends, moves and seconds are exposed by kind (none without a writer)", () => {
  const without = new NodeHostMetrics();
  without.watchNodeHost(new FakeNodeHost().addShard(1));
  expect(parseExposition(without.registry.expose()).has("longboat_logdb_writer_transactions_total")).toBe(
    false,
  );
  const fake = Object.assign(new FakeNodeHost().addShard(1), {
    logWriterStats: () => ({
      appends: 40,
      appendMs: 120,
      commitMs: 100,
      moves: 2,
      moveMs: 30,
      movedEntries: 4096,
    }),
  });
  const metrics = new NodeHostMetrics();
  metrics.watchNodeHost(fake);
  const families = parseExposition(metrics.registry.expose());
  const values = (name: string) => families.get(name)!.samples.map((s) => [s.labels.kind, s.value]);
  expect(families.get("longboat_logdb_writer_transactions_total")!.type).toBe("counter");
  expect(values("longboat_logdb_writer_transactions_total")).toEqual([
    ["append", 40],
    ["move", 2],
  ]);
  expect(values("longboat_logdb_writer_seconds_total")).toEqual([
    ["append", 0.12],
    ["commit", 0.1],
    ["move", 0.03],
  ]);
  expect(families.get("longboat_logdb_writer_moved_entries_total")!.samples[0]!.value).toBe(4096);
});
