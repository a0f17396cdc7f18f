import { describe, expect, test } from "bun:test";
import { MAX_RESULTS_PER_SESSION, SessionManager } from "../../src/rsm/session.ts";

const result = (value: number) => ({ value, data: new Uint8Array([value % 256]) });

function applyOnce(
  s: SessionManager,
  clientId: number,
  seriesId: number,
  respondedTo: number,
  value: number,
) {
  const c = s.check(clientId, seriesId, respondedTo);
  if (c.kind !== "apply") throw new Error(`expected apply, got ${c.kind}`);
  s.record(c.session, seriesId, result(value));
}

describe("sessions", () => {
  test("register creates a session and a second register is refused", () => {
    const s = new SessionManager();
    expect(s.register(7)).toBeNull();
    expect(s.has(7)).toBe(true);
    expect(s.register(7)).toContain("already has a session");
  });

  test("client id 0 cannot be registered", () => {
    expect(new SessionManager().register(0)).toContain("no-op session");
  });

  test("unregister removes a session; an unknown one is refused", () => {
    const s = new SessionManager();
    s.register(7);
    expect(s.unregister(7)).toBeNull();
    expect(s.unregister(7)).toContain("has no session");
  });

  test("a proposal of an unknown client is rejected", () => {
    const c = new SessionManager().check(9, 1, 0);
    expect(c.kind).toBe("rejected");
  });

  test("a retried proposal returns the cached result", () => {
    const s = new SessionManager();
    s.register(7);
    applyOnce(s, 7, 1, 0, 42);
    const c = s.check(7, 1, 0);
    expect(c).toEqual({ kind: "duplicate", result: result(42) });
  });

  test("respondedTo discards cached results and later retries of them are rejected", () => {
    const s = new SessionManager();
    s.register(7);
    applyOnce(s, 7, 1, 0, 1);
    applyOnce(s, 7, 2, 1, 2);
    const c = s.check(7, 1, 1);
    expect(c.kind).toBe("rejected");
    if (c.kind === "rejected") expect(c.reason).toContain("already acknowledged");
    expect(s.check(7, 2, 1).kind).toBe("duplicate");
  });

  test("the table evicts the least recently used session at maxSessions", () => {
    const s = new SessionManager(3);
    s.register(1);
    s.register(2);
    s.register(3);
    applyOnce(s, 1, 1, 0, 1); // 1 becomes most recent; 2 is now the oldest
    s.register(4);
    expect(s.size()).toBe(3);
    expect(s.has(2)).toBe(false);
    expect(s.clientIds()).toEqual([3, 1, 4]);
  });

  test("an evicted client's proposals are rejected", () => {
    const s = new SessionManager(1);
    s.register(1);
    s.register(2);
    expect(s.check(1, 1, 0).kind).toBe("rejected");
  });

  test("maxSessions below 1 is refused", () => {
    expect(() => new SessionManager(0)).toThrow(/maxSessions must be an integer ≥ 1, got 0/);
  });

  test("a session holds at most MAX_RESULTS_PER_SESSION unacknowledged results", () => {
    const s = new SessionManager();
    s.register(7);
    for (let i = 1; i <= MAX_RESULTS_PER_SESSION; i++) applyOnce(s, 7, i, 0, i);
    const c = s.check(7, MAX_RESULTS_PER_SESSION + 1, 0);
    expect(c.kind).toBe("rejected");
    // Acknowledging one makes room again.
    expect(s.check(7, MAX_RESULTS_PER_SESSION + 1, 1).kind).toBe("apply");
  });

  test("save then load restores sessions, results and LRU order", () => {
    const s = new SessionManager(8);
    s.register(5);
    s.register(3);
    applyOnce(s, 5, 1, 0, 10);
    applyOnce(s, 3, 4, 3, 20);
    const chunks: Uint8Array[] = [];
    s.save((c) => chunks.push(c));
    const t = new SessionManager(8);
    t.register(99);
    t.load(Buffer.concat(chunks));
    expect(t.clientIds()).toEqual([5, 3]);
    expect(t.check(5, 1, 0)).toEqual({ kind: "duplicate", result: result(10) });
    expect(t.check(3, 3, 0).kind).toBe("rejected");
    expect(t.hash()).toBe(s.hash());
  });

  test("loading a table saved with another maxSessions is refused", () => {
    const chunks: Uint8Array[] = [];
    new SessionManager(8).save((c) => chunks.push(c));
    expect(() => new SessionManager(9).load(Buffer.concat(chunks))).toThrow(/hard setting/);
  });

  test("loading a truncated table throws and keeps the old sessions", () => {
    const s = new SessionManager(8);
    s.register(1);
    const chunks: Uint8Array[] = [];
    s.save((c) => chunks.push(c));
    const bytes = Buffer.concat(chunks);
    const t = new SessionManager(8);
    t.register(2);
    expect(() => t.load(bytes.subarray(0, bytes.byteLength - 3))).toThrow(/truncated/);
    expect(t.clientIds()).toEqual([2]);
  });
});
