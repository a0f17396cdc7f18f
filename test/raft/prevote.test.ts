import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { makeMessage } from "../../src/raft/types.ts";
import { lone, MT, Network, sentOf } from "./network.ts";

describe("prevote", () => {
  test("a pre-candidate keeps its term, clears the leader and asks for term + 1", () => {
    const net = lone(1, [1, 2, 3]);
    net.raft(1).leaderId = 2;
    net.raft(1).handleElection(false);
    net.collect(1);
    expect(net.raft(1).role).toBe(Role.PreVoteCandidate);
    expect(net.raft(1).term).toBe(1);
    expect(net.raft(1).leaderId).toBe(0);
    const reqs = sentOf(net, MT.RequestPreVote);
    expect(reqs).toHaveLength(2);
    expect(reqs[0]!.term).toBe(2);
  });

  test("three replicas elect a leader through pre-vote", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    expect(net.leaders()).toEqual([1]);
    expect(net.raft(1).term).toBe(2);
  });

  test("granting a pre-vote changes nothing locally", () => {
    const net = lone(1, [1, 2, 3]);
    net.tick(1, 4);
    net
      .peer(1)
      .step(makeMessage({ type: MT.RequestPreVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    net.collect(1);
    expect(sentOf(net, MT.RequestPreVoteResp)[0]!.reject).toBe(false);
    expect(sentOf(net, MT.RequestPreVoteResp)[0]!.term).toBe(2);
    expect(net.raft(1).term).toBe(1);
    expect(net.raft(1).vote).toBe(0);
    expect(net.raft(1).electionTick).toBe(4);
  });

  test("pre-votes for the same term may go to different candidates", () => {
    const net = lone(1, [1, 2, 3]);
    net
      .peer(1)
      .step(makeMessage({ type: MT.RequestPreVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    net
      .peer(1)
      .step(makeMessage({ type: MT.RequestPreVote, from: 3, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    net.collect(1);
    expect(sentOf(net, MT.RequestPreVoteResp).map((m) => m.reject)).toEqual([false, false]);
  });

  test("a rejected pre-vote carries the voter's own term", () => {
    const net = lone(1, [1, 2, 3]);
    net
      .peer(1)
      .step(makeMessage({ type: MT.RequestPreVote, from: 2, to: 1, term: 2, logIndex: 1, logTerm: 1 }));
    net.collect(1);
    const resp = sentOf(net, MT.RequestPreVoteResp)[0]!;
    expect(resp.reject).toBe(true);
    expect(resp.term).toBe(1);
  });

  test("a granted higher-term pre-vote response does not raise the term; a rejected one does", () => {
    const net = lone(1, [1, 2, 3, 4, 5]);
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.RequestPreVoteResp, from: 2, to: 1, term: 2 }));
    expect(net.raft(1).term).toBe(1);
    expect(net.raft(1).role).toBe(Role.PreVoteCandidate);
    net.peer(1).step(makeMessage({ type: MT.RequestPreVoteResp, from: 3, to: 1, term: 7, reject: true }));
    expect(net.raft(1).term).toBe(7);
    expect(net.raft(1).role).toBe(Role.Follower);
  });

  test("a quorum of pre-votes starts the real campaign at term + 1", () => {
    const net = lone(1, [1, 2, 3]);
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.RequestPreVoteResp, from: 2, to: 1, term: 2 }));
    expect(net.raft(1).role).toBe(Role.Candidate);
    expect(net.raft(1).term).toBe(2);
  });

  test("a quorum of pre-vote rejections makes the pre-candidate a follower", () => {
    const net = lone(1, [1, 2, 3]);
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.RequestPreVoteResp, from: 2, to: 1, term: 1, reject: true }));
    net.peer(1).step(makeMessage({ type: MT.RequestPreVoteResp, from: 3, to: 1, term: 1, reject: true }));
    expect(net.raft(1).role).toBe(Role.Follower);
  });

  test("a lower-term RequestPreVote is answered with a NoOP carrying the receiver's term", () => {
    const net = lone(1, [1, 2, 3]);
    net.raft(1).term = 5;
    net
      .peer(1)
      .step(makeMessage({ type: MT.RequestPreVote, from: 2, to: 1, term: 3, logIndex: 3, logTerm: 1 }));
    net.collect(1);
    const noop = sentOf(net, MT.NoOP)[0]!;
    expect(noop.to).toBe(2);
    expect(noop.term).toBe(5);
  });

  test("pre-vote avoids term inflation by a partitioned replica", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 5; i++) {
      net.tick(3, 30);
      net.stabilize();
    }
    expect(net.raft(3).term).toBe(net.raft(1).term);
    net.recover();
    net.tickAll(5);
    expect(net.leaders()).toEqual([1]);
  });

  test("a pre-vote message reaching a replica with preVote disabled is refused with the reason, not thrown", () => {
    const net = lone(1, [1, 2, 3], { preVote: false });
    const before = { term: net.raft(1).term, vote: net.raft(1).vote };
    const reason = net
      .peer(1)
      .step(makeMessage({ type: MT.RequestPreVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    expect(reason).toContain("preVote is off here");
    expect({ term: net.raft(1).term, vote: net.raft(1).vote }).toEqual(before);
    net.collect(1);
    expect(net.sent).toEqual([]); // no answer either
  });

  test("a non-voting replica's pre-vote response is not counted", () => {
    const net = lone(1, [1, 2, 3]);
    net.raft(1).nonVotings.set(4, net.raft(1).remotes.get(2)!);
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.RequestPreVoteResp, from: 4, to: 1, term: 2 }));
    expect(net.raft(1).role).toBe(Role.PreVoteCandidate);
  });
});
