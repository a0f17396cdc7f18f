import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { makeMessage } from "../../src/raft/types.ts";
import { MT, Network, sentOf } from "./network.ts";

describe("checkquorum", () => {
  test("a leader without responses for an election timeout steps down", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    net.tickAll(9);
    expect(net.raft(1).role).toBe(Role.Leader);
    net.tickAll(11);
    expect(net.raft(1).role).toBe(Role.Follower);
    expect(net.raft(1).leaderId).toBe(0);
  });

  test("a leader with a quorum of active followers stays leader", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.tickAll(50);
    expect(net.raft(1).role).toBe(Role.Leader);
  });

  test("the check clears every active flag", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    expect(net.raft(1).remotes.get(2)!.active).toBe(true);
    net.isolate(1);
    net.tickAll(10);
    expect(net.raft(1).remotes.get(2)!.active).toBe(false);
  });

  test("without checkQuorum an isolated leader stays leader", () => {
    const net = Network.bootstrap([1, 2, 3], { checkQuorum: false });
    net.campaign(1);
    net.isolate(1);
    for (let i = 0; i < 50; i++) net.tick(1);
    expect(net.raft(1).role).toBe(Role.Leader);
  });

  test("followers hearing from a leader drop a disruptive higher-term vote request", () => {
    const net = Network.bootstrap([1, 2, 3], { preVote: false });
    net.campaign(1);
    net.sent = [];
    net
      .peer(2)
      .step(makeMessage({ type: MT.RequestVote, from: 3, to: 2, term: 9, logIndex: 99, logTerm: 9 }));
    net.collect(2);
    expect(net.raft(2).term).toBe(2);
    expect(sentOf(net, MT.RequestVoteResp)).toHaveLength(0);
  });

  test("vote suppression also drops higher-term pre-vote requests", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.sent = [];
    net
      .peer(2)
      .step(makeMessage({ type: MT.RequestPreVote, from: 3, to: 2, term: 9, logIndex: 99, logTerm: 9 }));
    net.collect(2);
    expect(sentOf(net, MT.RequestPreVoteResp)).toHaveLength(0);
  });

  test("a vote request tagged as a leader transfer bypasses vote suppression", () => {
    const net = Network.bootstrap([1, 2, 3], { preVote: false });
    net.campaign(1);
    net.sent = [];
    net
      .peer(2)
      .step(
        makeMessage({ type: MT.RequestVote, from: 3, to: 2, term: 9, logIndex: 99, logTerm: 9, hint: 3 }),
      );
    net.collect(2);
    expect(sentOf(net, MT.RequestVoteResp)[0]!.reject).toBe(false);
  });

  test("a stale-term leader message is answered with a NoOP at the receiver's term", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.sent = [];
    net.peer(2).step(makeMessage({ type: MT.Heartbeat, from: 3, to: 2, term: 1 }));
    net.collect(2);
    const noop = sentOf(net, MT.NoOP)[0]!;
    expect(noop.term).toBe(2);
    expect(noop.to).toBe(3);
  });

  test("a stale-term non-leader message is dropped without reply", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.sent = [];
    net.peer(2).step(makeMessage({ type: MT.ReplicateResp, from: 3, to: 2, term: 1 }));
    net.collect(2);
    expect(net.sent).toHaveLength(0);
  });

  test("without CheckQuorum and PreVote a stale leader message gets no NoOP", () => {
    const net = Network.bootstrap([1, 2, 3], { checkQuorum: false, preVote: false });
    net.campaign(1);
    net.sent = [];
    net.peer(2).step(makeMessage({ type: MT.Heartbeat, from: 3, to: 2, term: 1 }));
    net.collect(2);
    expect(sentOf(net, MT.NoOP)).toHaveLength(0);
  });

  test("a stuck high-term candidate is freed and the shard elects a leader", () => {
    const net = Network.bootstrap([1, 2, 3], { preVote: false });
    net.campaign(1);
    net.isolate(3);
    net.tick(3, 60);
    net.stabilize();
    expect(net.raft(3).term).toBeGreaterThan(net.raft(1).term);
    net.recover();
    net.tickAll(60);
    expect(net.leaders()).toHaveLength(1);
    const l = net.leaders()[0]!;
    expect(net.raft(1).term).toBe(net.raft(l).term);
    expect(net.raft(3).term).toBe(net.raft(l).term);
  });

  test("elections still succeed with checkQuorum once the old leader is gone", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.crash(1);
    net.tickAll(40);
    expect(net.leaders()).toHaveLength(1);
    expect(net.leaders()[0]).not.toBe(1);
  });

  test("a removed voter keeps following the leader and never campaigns", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.raft(3).remotes.delete(3);
    net.tickAll(60);
    expect(net.raft(3).role).toBe(Role.Follower);
    expect(net.raft(3).leaderId).toBe(1);
    expect(sentOf(net, MT.RequestPreVote, 3)).toHaveLength(0);
  });
});
