// The event hub: per-listener bounded queues delivered off the publishing call.
import { describe, expect, test } from "bun:test";
import {
  EVENT_QUEUE_MAX_LIMIT,
  EVENTS_PER_TURN_MAX,
  type EventBody,
  EventHub,
  type NodeHostEvent,
} from "../../src/engine/events.ts";
import { ManualEnv } from "../../src/env.ts";

/** Lets promise continuations run (a macrotask boundary drains all microtasks). */
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

function hub() {
  const env = new ManualEnv(1);
  const errors: { name: string; error: unknown }[] = [];
  const h = new EventHub(env, (name, error) => errors.push({ name, error }));
  /** Runs deferred deliveries and their promise continuations until nothing is left. */
  const flush = async () => {
    for (let i = 0; i < 50; i++) {
      env.advance(0);
      await drain();
    }
  };
  return { env, h, errors, flush };
}

const created = (shardId: number, index: number): EventBody => ({
  kind: "snapshotCreated",
  shardId,
  replicaId: 1,
  index,
});

describe("EventHub", () => {
  test("events reach a listener in publish order, after the publishing call returns", async () => {
    const { h, flush } = hub();
    const seen: number[] = [];
    h.subscribe((e) => {
      if (e.kind === "snapshotCreated") seen.push(e.index);
    });
    for (let i = 1; i <= 5; i++) h.publish(created(1, i));
    expect(seen).toEqual([]);
    await flush();
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });

  test("seq numbers grow by one per published event", async () => {
    const { h, flush } = hub();
    const seqs: number[] = [];
    h.subscribe((e) => {
      seqs.push(e.seq);
    });
    for (let i = 1; i <= 3; i++) h.publish(created(1, i));
    await flush();
    expect(seqs).toEqual([1, 2, 3]);
  });

  test("kinds and shardId filter what a listener gets", async () => {
    const { h, flush } = hub();
    const got: string[] = [];
    h.subscribe((e) => void got.push(`${e.kind}/${e.shardId}`), { kinds: ["snapshotCreated"], shardId: 2 });
    h.publish(created(1, 1));
    h.publish(created(2, 2));
    h.publish({ kind: "replicaReady", shardId: 2, replicaId: 1 });
    await flush();
    expect(got).toEqual(["snapshotCreated/2"]);
  });

  test("a throwing listener is reported and keeps receiving; a rejecting one too", async () => {
    const { h, errors, flush } = hub();
    const thrown: number[] = [];
    const rejected: number[] = [];
    h.subscribe(
      (e) => {
        thrown.push(e.seq);
        throw new Error("listener bug");
      },
      { name: "thrower" },
    );
    h.subscribe(
      async (e) => {
        rejected.push(e.seq);
        throw new Error("async listener bug");
      },
      { name: "rejecter" },
    );
    h.publish(created(1, 1));
    h.publish(created(1, 2));
    await flush();
    expect(thrown).toEqual([1, 2]);
    expect(rejected).toEqual([1, 2]);
    expect(errors.map((e) => e.name).sort()).toEqual(["rejecter", "rejecter", "thrower", "thrower"]);
  });

  test("a hanging async listener loses only its own events: counted, then announced once there is room", async () => {
    const { h, flush } = hub();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow: NodeHostEvent[] = [];
    const fast: number[] = [];
    const slowSub = h.subscribe(
      async (e) => {
        slow.push(e);
        if (slow.length === 1) await gate;
      },
      { queueMax: 3, name: "slow" },
    );
    h.subscribe((e) => void fast.push(e.seq));
    h.publish(created(1, 1));
    await flush(); // the slow listener now hangs in event 1
    for (let i = 2; i <= 10; i++) h.publish(created(1, i));
    await flush();
    // Events 2, 3 and 4 wait; 5 to 10 were dropped.
    expect(fast).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(slowSub.dropped).toBe(6);
    expect(slowSub.queued).toBe(3);
    expect(h.stats().find((s) => s.name === "slow")).toEqual({
      name: "slow",
      delivered: 0,
      dropped: 6,
      queued: 3,
    });
    release();
    await flush();
    h.publish(created(1, 11));
    await flush();
    expect(slow.map((e) => (e.kind === "eventsDropped" ? `dropped ${e.count}` : e.seq))).toEqual([
      1,
      2,
      3,
      4,
      "dropped 6",
      11,
    ]);
    expect(slowSub.delivered).toBe(6);
  });

  test("one macrotask hands a listener at most EVENTS_PER_TURN_MAX events, the rest in later ones", () => {
    const deferred: (() => void)[] = [];
    const h = new EventHub({ defer: (fn) => void deferred.push(fn) }, () => {});
    let count = 0;
    h.subscribe(
      () => {
        count++;
      },
      { queueMax: 1000 },
    );
    for (let i = 0; i < 3 * EVENTS_PER_TURN_MAX; i++) h.publish(created(1, i));
    expect(deferred.length).toBe(1);
    deferred.shift()!();
    expect(count).toBe(EVENTS_PER_TURN_MAX);
    expect(deferred.length).toBe(1); // the rest waits for the next macrotask
    while (deferred.length > 0) deferred.shift()!();
    expect(count).toBe(3 * EVENTS_PER_TURN_MAX);
  });

  test("close stops delivery and removes the listener", async () => {
    const { h, flush } = hub();
    const got: number[] = [];
    const sub = h.subscribe((e) => void got.push(e.seq));
    h.publish(created(1, 1));
    sub.close();
    h.publish(created(1, 2));
    await flush();
    expect(got).toEqual([]);
    expect(h.stats()).toEqual([]);
    expect(h.wants("snapshotCreated")).toBe(false);
  });

  test("bad options are refused with the reason", () => {
    const { h } = hub();
    expect(() => h.subscribe(() => {}, { queueMax: 0 })).toThrow("queueMax must be an integer in 1..");
    expect(() => h.subscribe(() => {}, { queueMax: EVENT_QUEUE_MAX_LIMIT + 1 })).toThrow("queueMax");
    expect(() => h.subscribe(() => {}, { kinds: ["nope" as "replicaReady"] })).toThrow(
      'unknown event kind "nope"',
    );
    expect(() => h.subscribe(42 as unknown as () => void)).toThrow("must be a function");
  });
});
