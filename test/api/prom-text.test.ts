// The strict text-format checker itself: it must refuse what a scraper would refuse, or a test
// that passes through it proves nothing.
import { expect, test } from "bun:test";
import { MetricsRegistry } from "../../src/api/metrics.ts";
import { NodeHostMetrics } from "../../src/api/nodehost-metrics.ts";
import { parsePrometheusText } from "./prom-text.ts";

const ok = '# HELP a_total A counter.\n# TYPE a_total counter\na_total{x="1"} 3\n';

test("accepts a well-formed exposition, escapes included", () => {
  const f = parsePrometheusText(
    `${ok}# HELP b B \\\\ \\n.\n# TYPE b gauge\nb{l="q\\"\\\\\\n"} -Inf 1700000000000\n`,
  );
  expect(f.get("a_total")).toEqual({
    name: "a_total",
    help: "A counter.",
    type: "counter",
    samples: [{ name: "a_total", labels: { x: "1" }, value: 3 }],
  });
  expect(f.get("b")!.help).toBe("B \\ \n.");
  expect(f.get("b")!.samples[0]).toEqual({
    name: "b",
    labels: { l: 'q"\\\n' },
    value: Number.NEGATIVE_INFINITY,
  });
});

test.each([
  ["no final newline", ok.slice(0, -1), "does not end with a newline"],
  ["an unescaped quote in a label value", 'a{x="q"q"} 1\n', "labels not separated"],
  ["an unknown escape", 'a{x="\\t"} 1\n', "escape \\t"],
  ["a value and two more fields", "a 1 2 3\n", "expected name"],
  ["a bad value", "a one\n", "is not a float"],
  ["a reserved label name", 'a{__name__="x"} 1\n', "reserved"],
  ["a family split by another", 'a 1\nb 1\na{x="2"} 1\n', "continues after another family"],
  ["a series twice", "a 1\na 2\n", "appears twice"],
  ["TYPE after samples", "a 1\n# TYPE a gauge\n", "TYPE after the family's samples"],
  ["a negative counter", "# TYPE c counter\nc -1\n", "counter below 0"],
  ["an unknown type", "# TYPE c meter\n", "unknown type"],
  [
    "buckets that are not cumulative",
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    "not cumulative",
  ],
  ["a histogram without +Inf", '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', "le=+Inf"],
])("refuses %s", (_name, text, message) => {
  expect(() => parsePrometheusText(text)).toThrow(message);
});

test("what our registry exposes passes, histograms, escaped labels and process metrics included", () => {
  const metrics = new NodeHostMetrics(new MetricsRegistry());
  metrics.observeApiRequest('Pro"pose\\', "ok", 3);
  metrics.observeSave(2, 10);
  const families = parsePrometheusText(metrics.registry.expose());
  expect(families.get("longboat_api_request_duration_seconds")!.type).toBe("histogram");
  expect(families.get("longboat_api_requests_total")!.samples[0]!.labels.method).toBe('Pro"pose\\');
  expect(families.get("process_cpu_seconds_total")!.samples[0]!.value).toBeGreaterThan(0);
});
