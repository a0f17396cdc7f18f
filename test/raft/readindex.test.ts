import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { PeerArgumentError } from "../../src/raft/peer.ts";
import { MAX_PENDING_READ_INDEXES, ReadIndexQueue } from "../../src/raft/readindex.ts";
import { ConfigChangeType, makeMessage } from "../../src/raft/types.ts";
import { lone, MT, Network, sentOf } from "./network.ts";

const ctx = (low: number) => ({ low, high: 100 + low });

describe("readindex", () => {
  test("a single-voter leader answers a read at once at its commit index", () => {
    const net = lone(1, [1]);
    net.raft(1).handleElection(false);
    net.collect(1);
    net.collect(1);
    net.peer(1).readIndex(ctx(7));
    net.collect(1);
    expect(net.node(1).readyToReads).toEqual([{ index: net.raft(1).log.committed, ctx: ctx(7) }]);
  });

  test("a leader refuses reads until it has committed an entry of its term", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.ignore(MT.ReplicateResp);
    net.campaign(1);
    net.peer(1).readIndex(ctx(1));
    net.collect(1);
    expect(net.node(1).droppedReads).toEqual([ctx(1)]);
  });

  test("a leader confirms a read with one heartbeat round to the voters", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.sent = [];
    net.peer(1).readIndex(ctx(5));
    net.stabilize();
    const hbs = sentOf(net, MT.Heartbeat, 1);
    expect(hbs.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const m of hbs) expect([m.hint, m.hintHigh]).toEqual([5, 105]);
    expect(net.node(1).readyToReads).toEqual([{ index: net.raft(1).log.committed, ctx: ctx(5) }]);
  });

  test("a read waits for a quorum of confirmations", () => {
    const net = Network.bootstrap([1, 2, 3, 4, 5]);
    net.campaign(1);
    net.isolate(2);
    net.isolate(3);
    net.isolate(4);
    net.peer(1).readIndex(ctx(5));
    net.stabilize();
    expect(net.node(1).readyToReads).toHaveLength(0);
    net.recover();
    net.tickAll(1);
    expect(net.node(1).readyToReads).toHaveLength(1);
  });

  test("the read index is the commit index when the read arrived", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    const at = net.raft(1).log.committed;
    net.ignore(MT.HeartbeatResp);
    net.peer(1).readIndex(ctx(5));
    net.stabilize();
    net.recover();
    net.propose(1, "later");
    net.tickAll(1);
    expect(net.node(1).readyToReads[0]!.index).toBe(at);
  });

  test("confirming a later read releases every earlier one at the later index", () => {
    const q = new ReadIndexQueue();
    q.add(5, ctx(1), 1);
    q.add(6, ctx(2), 1);
    q.add(7, ctx(3), 1);
    expect(q.confirm(ctx(2), 2, 2)).toEqual([
      { ctx: ctx(1), index: 6, from: 1 },
      { ctx: ctx(2), index: 6, from: 1 },
    ]);
    expect(q.size).toBe(1);
  });

  test("a duplicate read context is queued once", () => {
    const q = new ReadIndexQueue();
    q.add(5, ctx(1), 1);
    q.add(5, ctx(1), 1);
    expect(q.size).toBe(1);
  });

  test("a read index going backwards is a programming error", () => {
    const q = new ReadIndexQueue();
    q.add(5, ctx(1), 1);
    expect(() => q.add(4, ctx(2), 1)).toThrow(/went backwards/);
  });

  test("the read queue holds at most MAX_PENDING_READ_INDEXES reads; more are dropped", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    for (let i = 1; i <= MAX_PENDING_READ_INDEXES; i++) net.peer(1).readIndex(ctx(i));
    expect(net.raft(1).readIndex.size).toBe(MAX_PENDING_READ_INDEXES);
    net.peer(1).readIndex(ctx(MAX_PENDING_READ_INDEXES + 1));
    net.collect(1);
    expect(net.node(1).droppedReads).toEqual([ctx(MAX_PENDING_READ_INDEXES + 1)]);
  });

  test("a follower forwards a read and records the leader's answer", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.peer(2).readIndex(ctx(9));
    net.stabilize();
    expect(sentOf(net, MT.ReadIndex, 2)[0]!.to).toBe(1);
    expect(net.node(2).readyToReads).toEqual([{ index: net.raft(1).log.committed, ctx: ctx(9) }]);
  });

  test("a ReadIndexResp resets the follower's election tick and sets its leader", () => {
    const net = lone(1, [1, 2, 3]);
    net.tick(1, 5);
    net
      .peer(1)
      .step(
        makeMessage({ type: MT.ReadIndexResp, from: 2, to: 1, term: 1, logIndex: 3, hint: 4, hintHigh: 5 }),
      );
    expect(net.raft(1).electionTick).toBe(0);
    expect(net.raft(1).leaderId).toBe(2);
  });

  test("a follower without a leader drops a read", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.peer(2).readIndex(ctx(3));
    net.collect(2);
    expect(net.node(2).droppedReads).toEqual([ctx(3)]);
  });

  test("a candidate drops a read", () => {
    const net = lone(1, [1, 2, 3]);
    net.raft(1).handleElection(false);
    net.peer(1).readIndex(ctx(3));
    net.collect(1);
    expect(net.node(1).droppedReads).toEqual([ctx(3)]);
  });

  test("a leadership change discards pending reads", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    net.peer(1).readIndex(ctx(3));
    expect(net.raft(1).readIndex.size).toBe(1);
    net.peer(1).step(makeMessage({ type: MT.Heartbeat, from: 2, to: 1, term: 9 }));
    expect(net.raft(1).readIndex.size).toBe(0);
  });

  test("a regular heartbeat carries the newest pending read context", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.ignore(MT.HeartbeatResp);
    net.peer(1).readIndex(ctx(3));
    net.stabilize();
    net.sent = [];
    net.tick(1);
    net.collect(1);
    expect(sentOf(net, MT.Heartbeat, 1).every((m) => m.hint === 3)).toBe(true);
  });

  /** A 3-voter shard led by 1 whose last read was released by 2's echo alone (3's answers lost). */
  function ledWithConfirmer2(): Network {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.drop(3, 1, 1);
    net.peer(1).readIndex(ctx(5));
    net.stabilize();
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(5)]);
    net.recover();
    net.sent = [];
    return net;
  }

  test("a read's heartbeats go only to the voters whose echoes released the last read", () => {
    const net = ledWithConfirmer2();
    net.peer(1).readIndex(ctx(6));
    net.stabilize();
    const hbs = sentOf(net, MT.Heartbeat, 1);
    expect(hbs.map((m) => [m.to, m.hint])).toEqual([[2, 6]]);
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(5), ctx(6)]);
  });

  test("a read whose chosen voter is silent is confirmed through another at the next heartbeat", () => {
    const net = ledWithConfirmer2();
    net.isolate(2);
    net.peer(1).readIndex(ctx(7));
    net.stabilize();
    expect(net.node(1).readyToReads).toHaveLength(1);
    net.tick(1, net.raft(1).config.heartbeatRtt);
    net.stabilize();
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(5), ctx(7)]);
    // 3 answered this time: the next read asks 3 alone.
    net.sent = [];
    net.peer(1).readIndex(ctx(8));
    net.stabilize();
    expect(sentOf(net, MT.Heartbeat, 1).map((m) => m.to)).toEqual([3]);
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(5), ctx(7), ctx(8)]);
  });

  test("a deposed leader's read sent to its chosen voter is never released", () => {
    const net = ledWithConfirmer2();
    // 2 and 3 elect one of them in a later term while 1 hears nothing, and commit a write 1
    // never saw; 1 still believes it leads.
    net.isolate(1);
    const later = () => [2, 3].find((id) => net.raft(id).role === Role.Leader);
    for (let i = 0; i < 100 && later() === undefined; i++) {
      net.tick(2);
      net.tick(3);
      net.stabilize();
    }
    net.propose(later()!, "newer");
    expect(net.raft(2).term).toBeGreaterThan(net.raft(1).term);
    expect(net.raft(1).role).toBe(Role.Leader);
    net.recover();
    net.cut(1, 3);
    net.peer(1).readIndex(ctx(9));
    net.stabilize();
    net.tick(1, net.raft(1).config.heartbeatRtt);
    net.stabilize();
    // 2 answers with its newer term: 1 steps down, and the read never reads 1's stale state.
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(5)]);
    expect(net.raft(1).readIndex.size).toBe(0);
  });

  test("a chosen voter removed from the shard is not asked; the read goes to every peer", () => {
    const net = ledWithConfirmer2();
    net.peer(1).applyConfigChange({
      configChangeId: 0,
      type: ConfigChangeType.RemoveNode,
      replicaId: 2,
      address: "",
      initialize: false,
    });
    net.sent = [];
    net.peer(1).readIndex(ctx(6));
    net.stabilize();
    expect(sentOf(net, MT.Heartbeat, 1).map((m) => m.to)).toEqual([3]);
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(5), ctx(6)]);
  });

  test("an echo of a round sent before a read arrived does not release that read", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.ignore(MT.HeartbeatResp);
    net.peer(1).readIndex(ctx(1));
    net.stabilize();
    net.peer(1).readIndex(ctx(2));
    net.stabilize();
    const term = net.raft(1).term;
    const echo = (low: number) =>
      net
        .peer(1)
        .step(makeMessage({ type: MT.HeartbeatResp, from: 2, to: 1, term, hint: low, hintHigh: 100 + low }));
    // 2 answers the first round late, after the second read arrived: only the first is released.
    echo(1);
    net.collect(1);
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(1)]);
    echo(2);
    net.collect(1);
    expect(net.node(1).readyToReads.map((r) => r.ctx)).toEqual([ctx(1), ctx(2)]);
  });

  test("a read context with low = 0 is refused (0 means no read)", () => {
    const net = lone(1, [1]);
    expect(() => net.peer(1).readIndex({ low: 0, high: 1 })).toThrow(PeerArgumentError);
  });
});
