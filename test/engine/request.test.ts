import { describe, expect, test } from "bun:test";
import { PendingProposals, PendingReads, RequestState } from "../../src/engine/request.ts";

const read = (deadlineTick = 100) => ({ state: new RequestState(0, deadlineTick), query: null });

describe("pending reads", () => {
  test("a cycle queues at most maxQueued reads", () => {
    const reads = new PendingReads(2, 10);
    expect(reads.enqueue(read())).toBe(true);
    expect(reads.enqueue(read())).toBe(true);
    expect(reads.enqueue(read())).toBe(false);
  });

  test("reads awaiting confirmation count against maxPending until answered or failed", () => {
    const reads = new PendingReads(2, 3);
    reads.enqueue(read());
    reads.enqueue(read());
    reads.startBatch({ low: 1, high: 1 });
    reads.enqueue(read());
    expect(reads.enqueue(read())).toBe(false); // 3 waiting in all
    expect(reads.pendingCount).toBe(3);
    reads.ready({ low: 1, high: 1 }, 5);
    expect(reads.takeReadable(4)).toHaveLength(0);
    expect(reads.takeReadable(5)).toHaveLength(2);
    expect(reads.pendingCount).toBe(1);
    expect(reads.enqueue(read())).toBe(true);
  });

  test("expired, dropped and failed reads leave the count", async () => {
    const reads = new PendingReads(10, 10);
    const early = read(3);
    reads.enqueue(early);
    reads.enqueue(read(50));
    reads.startBatch({ low: 2, high: 2 });
    reads.enqueue(read(50));
    reads.expire(3);
    expect((await early.state.result).code).toBe("timeout");
    expect(reads.pendingCount).toBe(2);
    reads.dropped({ low: 2, high: 2 }, "no leader");
    expect(reads.pendingCount).toBe(1);
    reads.failAll("terminated", "stop");
    expect(reads.pendingCount).toBe(0);
  });

  test("a leader change fails unconfirmed reads and keeps confirmed ones", async () => {
    const reads = new PendingReads(10, 10);
    const confirmed = read();
    const unconfirmed = read();
    reads.enqueue(confirmed);
    reads.startBatch({ low: 1, high: 1 });
    reads.ready({ low: 1, high: 1 }, 7);
    reads.enqueue(unconfirmed);
    reads.startBatch({ low: 2, high: 2 });
    reads.failUnconfirmed("dropped", "leader changed");
    expect((await unconfirmed.state.result).code).toBe("dropped");
    expect(reads.takeReadable(7)).toEqual([confirmed]);
    expect(reads.pendingCount).toBe(0);
  });
});

describe("pending proposals", () => {
  test("hold at most maxCount and time out at their deadline tick", async () => {
    const pending = new PendingProposals(2);
    const a = new RequestState(1, 5);
    pending.add(a);
    pending.add(new RequestState(2, 50));
    expect(pending.hasRoom()).toBe(false);
    pending.expire(5);
    expect((await a.result).code).toBe("timeout");
    expect(pending.hasRoom()).toBe(true);
  });

  test("a key already pending is a programming error that names the key", () => {
    const pending = new PendingProposals(4);
    pending.add(new RequestState(9, 5));
    expect(() => pending.add(new RequestState(9, 5))).toThrow("request key 9 is already pending");
  });
});
