import { describe, expect, test } from "bun:test";
import { QuiesceState } from "../../src/raft/quiesce.ts";
import { makeMessage } from "../../src/raft/types.ts";
import { entry, MT, Network, sentOf } from "./network.ts";

const Q = { quiesce: true };

function quiet(): Network {
  const net = Network.bootstrap([1, 2, 3], Q);
  net.campaign(1);
  return net;
}

describe("quiesce", () => {
  test("quiesce is off by default", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.tickAll(300);
    expect(net.peer(1).status().quiesced).toBe(false);
  });

  test("a replica quiesces after more than 20 × electionRtt idle ticks", () => {
    const q = new QuiesceState(true, 10);
    for (let i = 0; i < 200; i++) expect(q.tick()).toBe(false);
    expect(q.tick()).toBe(true);
    expect(q.quiesced).toBe(true);
  });

  test("heartbeats do not keep an idle shard awake", () => {
    const net = quiet();
    net.tickAll(205);
    for (const id of [1, 2, 3]) expect(net.peer(id).status().quiesced).toBe(true);
  });

  test("a replica that quiesces tells the other full members", () => {
    const net = quiet();
    net.tickAll(205);
    const to = sentOf(net, MT.Quiesce).map((m) => `${m.from}->${m.to}`);
    expect(to).toContain("1->2");
    expect(to).toContain("1->3");
  });

  test("a Quiesce message makes an idle replica quiesce at once", () => {
    const net = quiet();
    net.tickAll(50);
    net.peer(2).step(makeMessage({ type: MT.Quiesce, from: 1, to: 2, term: 2 }));
    expect(net.peer(2).status().quiesced).toBe(true);
  });

  test("a quiesced leader sends no heartbeats", () => {
    const net = quiet();
    net.tickAll(205);
    net.sent = [];
    net.tickAll(50);
    expect(sentOf(net, MT.Heartbeat)).toHaveLength(0);
  });

  test("ticks(n) is n calls of tick(): through quiescing, and the rest only counted", () => {
    // The engine steps a quiesced replica's missed ticks at once (Replica.stepInputs).
    for (const n of [1, 150, 205, 5000]) {
      const one = quiet();
      const bulk = quiet();
      for (const id of [1, 2, 3]) {
        for (let i = 0; i < n; i++) one.peer(id).tick();
        bulk.peer(id).ticks(n);
        const a = one.peer(id);
        const b = bulk.peer(id);
        expect([b.status(), b.raft.electionTick]).toEqual([a.status(), a.raft.electionTick]);
      }
      one.stabilize();
      bulk.stabilize();
      expect(sentOf(bulk, MT.Quiesce).length).toBe(sentOf(one, MT.Quiesce).length);
      // The quiesce clock moved as far: a heartbeat now wakes both or neither.
      for (const net of [one, bulk])
        net
          .peer(2)
          .step(makeMessage({ type: MT.Heartbeat, from: 1, to: 2, term: net.peer(1).status().term }));
      expect(bulk.peer(2).status().quiesced).toBe(one.peer(2).status().quiesced);
    }
  });

  test("a quiesced follower does not campaign", () => {
    const net = quiet();
    net.tickAll(205);
    net.crash(1);
    net.sent = [];
    net.tickAll(100);
    expect(sentOf(net, MT.RequestPreVote)).toHaveLength(0);
  });

  test("a proposal wakes a quiesced replica", () => {
    const net = quiet();
    net.tickAll(205);
    net.peer(1).propose([entry("wake")]);
    expect(net.peer(1).status().quiesced).toBe(false);
    net.stabilize();
    expect(net.peer(2).status().quiesced).toBe(false);
    net.spreadCommit(1);
    expect(net.node(2).appliedData()).toEqual(["wake"]);
  });

  test("a read wakes a quiesced replica", () => {
    const net = quiet();
    net.tickAll(205);
    net.peer(2).readIndex({ low: 1, high: 2 });
    expect(net.peer(2).status().quiesced).toBe(false);
  });

  test("a heartbeat wakes a replica quiesced for at least 2 × electionRtt ticks", () => {
    const q = new QuiesceState(true, 10);
    for (let i = 0; i < 201; i++) q.tick();
    for (let i = 0; i < 19; i++) q.tick();
    expect(q.recordHeartbeat()).toBe(false);
    q.tick();
    expect(q.recordHeartbeat()).toBe(true);
    expect(q.quiesced).toBe(false);
  });

  test("a replica that woke recently ignores a peer's Quiesce", () => {
    const q = new QuiesceState(true, 10);
    for (let i = 0; i < 201; i++) q.tick();
    q.recordActivity();
    for (let i = 0; i < 50; i++) q.tick();
    expect(q.peerQuiesced()).toBe(false);
    expect(q.quiesced).toBe(false);
  });

  test("waking gives the leader a full election timeout before a follower campaigns", () => {
    const net = quiet();
    net.tickAll(205);
    net.tick(2, 30);
    net.peer(2).propose([entry("x")]);
    expect(net.raft(2).electionTick).toBe(0);
  });
});

test("quiesce > a fully quiesced shard whose leader died elects a new one once a request wakes it", () => {
  const net = Network.bootstrap([1, 2, 3], Q);
  net.campaign(1);
  net.tickAll(205);
  net.crash(1);
  net.peer(2).propose([entry("wake")]);
  for (let i = 0; i < 80 && net.leaders().length === 0; i++) net.tickAll(1);
  expect(net.leaders()).toHaveLength(1);
  expect(net.leaders()[0]).not.toBe(1);
});
