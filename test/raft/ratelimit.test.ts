import { describe, expect, test } from "bun:test";
import {
  MAX_RATE_LIMIT_REPORTS,
  RATE_LIMIT_FLIP_INTERVAL_TICKS,
  RATE_LIMIT_REPORT_TTL_TICKS,
  RateLimiter,
} from "../../src/raft/ratelimit.ts";
import { makeMessage } from "../../src/raft/types.ts";
import { entry, MT, Network, sentOf } from "./network.ts";

function limiter(maxBytes: number, own: { bytes: number }): RateLimiter {
  return new RateLimiter(maxBytes, () => own.bytes);
}

describe("rate limiting", () => {
  test("a disabled limiter never limits", () => {
    const own = { bytes: 1e9 };
    expect(limiter(0, own).rateLimited()).toBe(false);
  });

  test("the limiter engages when the own in-memory log exceeds the limit", () => {
    const own = { bytes: 1000 };
    const l = limiter(1000, own);
    expect(l.rateLimited()).toBe(false);
    own.bytes = 1001;
    expect(l.rateLimited()).toBe(true);
  });

  test("once limited it stays limited until the log drops below 70% of the limit", () => {
    const own = { bytes: 2000 };
    const l = limiter(1000, own);
    expect(l.rateLimited()).toBe(true);
    for (let i = 0; i < RATE_LIMIT_FLIP_INTERVAL_TICKS; i++) l.tick();
    own.bytes = 700;
    expect(l.rateLimited()).toBe(true);
    own.bytes = 699;
    expect(l.rateLimited()).toBe(false);
  });

  test("the limited state flips at most once per flip interval", () => {
    const own = { bytes: 2000 };
    const l = limiter(1000, own);
    expect(l.rateLimited()).toBe(true);
    own.bytes = 0;
    for (let i = 0; i < RATE_LIMIT_FLIP_INTERVAL_TICKS - 1; i++) l.tick();
    expect(l.rateLimited()).toBe(true);
    l.tick();
    expect(l.rateLimited()).toBe(false);
  });

  test("a follower report limits the leader until it is older than the report TTL", () => {
    const own = { bytes: 0 };
    const l = limiter(1000, own);
    l.setFollowerState(2, 5000);
    expect(l.rateLimited()).toBe(true);
    for (let i = 0; i < RATE_LIMIT_REPORT_TTL_TICKS; i++) l.tick();
    expect(l.followerReportCount()).toBe(1);
    l.tick();
    expect(l.followerReportCount()).toBe(0);
  });

  test("follower reports are bounded at MAX_RATE_LIMIT_REPORTS", () => {
    const l = limiter(1000, { bytes: 0 });
    for (let i = 0; i < MAX_RATE_LIMIT_REPORTS + 10; i++) l.setFollowerState(i + 1, 1);
    expect(l.followerReportCount()).toBe(MAX_RATE_LIMIT_REPORTS);
  });

  test("a limited leader drops proposals and says so in status()", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInMemLogSizeBytes: 1000 });
    net.campaign(1);
    net.isolate(2);
    net.isolate(3);
    for (let i = 0; i < 8; i++) net.propose(1, "x".repeat(100));
    expect(net.peer(1).status().rateLimited).toBe(true);
    net.propose(1, "refused");
    expect(net.node(1).droppedEntries.map((e) => new TextDecoder().decode(e.cmd))).toContain("refused");
  });

  test("the in-memory log shrinks once entries are applied and persisted", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInMemLogSizeBytes: 100_000 });
    net.campaign(1);
    net.isolate(3);
    net.isolate(2);
    net.propose(1, "x".repeat(500));
    const before = net.raft(1).log.tailSizeBytes;
    expect(before).toBeGreaterThan(500);
    net.recover();
    net.tickAll(2);
    expect(net.raft(1).log.tailSizeBytes).toBeLessThan(before);
  });

  test("a follower reports its log size to the leader every election timeout", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInMemLogSizeBytes: 1000 });
    net.campaign(1);
    net.sent = [];
    net.tickAll(10);
    const reports = sentOf(net, MT.RateLimit, 2);
    expect(reports).toHaveLength(1);
    expect(reports[0]!.to).toBe(1);
    expect(reports[0]!.hint).toBe(0);
  });

  test("a follower without a leader sends no rate-limit report", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInMemLogSizeBytes: 1000, checkQuorum: false });
    net.tick(2, 10);
    net.collect(2);
    expect(sentOf(net, MT.RateLimit)).toHaveLength(0);
  });

  test("a leader never sends rate-limit reports", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInMemLogSizeBytes: 1000 });
    net.campaign(1);
    net.sent = [];
    net.tickAll(30);
    expect(sentOf(net, MT.RateLimit, 1)).toHaveLength(0);
  });

  test("a follower's over-limit report makes the leader limited", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInMemLogSizeBytes: 1000 });
    net.campaign(1);
    net.peer(1).step(makeMessage({ type: MT.RateLimit, from: 2, to: 1, term: 2, hint: 5000 }));
    expect(net.peer(1).status().rateLimited).toBe(true);
    net.peer(1).propose([entry("busy")]);
    net.collect(1);
    expect(net.node(1).droppedEntries).toHaveLength(1);
  });

  test("a state change clears follower reports", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInMemLogSizeBytes: 1000 });
    net.campaign(1);
    net.peer(1).step(makeMessage({ type: MT.RateLimit, from: 2, to: 1, term: 2, hint: 5000 }));
    net.raft(1).becomeFollower(5, 0);
    expect(net.raft(1).rateLimiter.followerReportCount()).toBe(0);
  });
});
