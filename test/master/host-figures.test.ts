/**
 * The live figures a NodeHost sends with each report (src/master/host-figures.ts): proposals/s,
 * p99 proposal latency and fsyncs/s over the interval since the previous report, read from the
 * same metrics the NodeHost's /metrics exposes.
 */
import { describe, expect, test } from "bun:test";
import { NodeHostMetrics } from "../../src/api/nodehost-metrics.ts";
import { HostFigures, nodeHostSamples } from "../../src/master/host-figures.ts";

function bench() {
  const metrics = new NodeHostMetrics();
  const stats = { savedBatches: 0 };
  let now = 1000;
  const figures = new HostFigures(nodeHostSamples(metrics, { stats }), () => now);
  const propose = (n: number, seconds: number, code = "ok") => {
    for (let i = 0; i < n; i++) {
      metrics.apiRequests.inc({ method: "Propose", code });
      metrics.apiRequestSeconds.observe({ method: "Propose" }, seconds);
    }
  };
  return { metrics, stats, figures, propose, advance: (ms: number) => (now += ms) };
}

describe("a NodeHost's live figures", () => {
  test("none on the first report; then the interval's rates and p99, numbered", () => {
    const b = bench();
    b.propose(5, 0.001); // before the first sample: not in any interval
    expect(b.figures.next()).toBeUndefined();
    b.advance(2000);
    b.propose(98, 0.002);
    b.propose(2, 0.2, "unavailable"); // every outcome counts, as on the NodeHost's page
    b.stats.savedBatches += 30;
    // Other methods are not proposals.
    b.metrics.apiRequests.inc({ method: "Read", code: "ok" });
    b.metrics.apiRequestSeconds.observe({ method: "Read" }, 5);
    const f = b.figures.next()!;
    expect(f.sample).toBe(1);
    expect(f.intervalMs).toBe(2000);
    expect(f.proposalsPerSecond).toBe(50);
    expect(f.fsyncsPerSecond).toBe(15);
    // 100 proposals, the slowest 2 at 200 ms: the 99th is one of them (its bucket's bound).
    expect(f.proposalP99Ms).toBeGreaterThanOrEqual(200);
    expect(f.proposalP99Ms).toBeLessThan(1000);
    b.advance(1000);
    const idle = b.figures.next()!;
    expect(idle).toEqual({
      sample: 2,
      intervalMs: 1000,
      proposalsPerSecond: 0,
      proposalP99Ms: 0,
      fsyncsPerSecond: 0,
    });
  });

  test("two reads at the same instant give no figures rather than a division by zero", () => {
    const b = bench();
    b.figures.next();
    expect(b.figures.next()).toBeUndefined();
    b.advance(500);
    expect(b.figures.next()?.sample).toBe(1);
  });
});
