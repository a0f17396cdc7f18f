import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { EntryType, makeMessage } from "../../src/raft/types.ts";
import { lone, MT, Network, sentOf } from "./network.ts";

const noPreVote = { preVote: false };

describe("election", () => {
  test("a follower campaigns only after its randomized timeout, within [E, 2E-1] ticks", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    const timeout = net.raft(1).randomizedElectionTimeout;
    expect(timeout).toBeGreaterThanOrEqual(10);
    expect(timeout).toBeLessThanOrEqual(19);
    net.tick(1, timeout - 1);
    net.collect(1);
    expect(sentOf(net, MT.RequestVote)).toHaveLength(0);
    net.tick(1);
    net.collect(1);
    expect(sentOf(net, MT.RequestVote)).toHaveLength(2);
  });

  test("randomized election timeouts take many distinct values", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      net.raft(1).becomeFollower(net.raft(1).term + 1, 0);
      seen.add(net.raft(1).randomizedElectionTimeout);
    }
    expect(seen.size).toBeGreaterThan(7);
    for (const t of seen) expect(t >= 10 && t <= 19).toBe(true);
  });

  test("three replicas elect exactly one leader through ticks", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.tickAll(40);
    expect(net.leaders()).toHaveLength(1);
  });

  test("a candidate raises its term and votes for itself", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.raft(1).handleElection(false);
    expect(net.raft(1).role).toBe(Role.Candidate);
    expect(net.raft(1).term).toBe(2);
    expect(net.raft(1).vote).toBe(1);
  });

  test("RequestVote carries the candidate's last index and last term", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.raft(1).handleElection(false);
    net.collect(1);
    const votes = sentOf(net, MT.RequestVote);
    expect(votes.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const m of votes) {
      expect(m.logIndex).toBe(3);
      expect(m.logTerm).toBe(1);
      expect(m.term).toBe(2);
    }
  });

  test("a single voter becomes leader at once without sending anything", () => {
    const net = lone(1, [1]);
    net.raft(1).handleElection(false);
    net.collect(1);
    expect(net.raft(1).role).toBe(Role.Leader);
    expect(net.sent).toHaveLength(0);
  });

  test("a single voter campaigns on its first tick, not after an election timeout", () => {
    const net = lone(1, [1]);
    expect(net.raft(1).randomizedElectionTimeout).toBeGreaterThan(1);
    net.peer(1).tick();
    net.collect(1);
    expect(net.raft(1).role).toBe(Role.Leader);
    // Two voters: it waits for its randomized timeout.
    const two = lone(1, [1, 2]);
    two.peer(1).tick();
    expect(two.raft(1).role).toBe(Role.Follower);
  });

  test("a vote is granted to a candidate whose log is as up to date", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.peer(1).step(makeMessage({ type: MT.RequestVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    net.collect(1);
    const resp = sentOf(net, MT.RequestVoteResp)[0]!;
    expect(resp.reject).toBe(false);
    expect(net.raft(1).vote).toBe(2);
  });

  test("a vote is refused to a candidate with a shorter log of the same last term", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.peer(1).step(makeMessage({ type: MT.RequestVote, from: 2, to: 1, term: 2, logIndex: 2, logTerm: 1 }));
    net.collect(1);
    expect(sentOf(net, MT.RequestVoteResp)[0]!.reject).toBe(true);
  });

  test("a vote is refused to a candidate with a lower last term even if longer", () => {
    const net = Network.bootstrap([1, 2, 3], { preVote: false, checkQuorum: false });
    net.campaign(1);
    net.propose(1, "x");
    net.sent = [];
    net
      .peer(2)
      .step(makeMessage({ type: MT.RequestVote, from: 3, to: 2, term: 5, logIndex: 100, logTerm: 1 }));
    net.collect(2);
    expect(sentOf(net, MT.RequestVoteResp)[0]!.reject).toBe(true);
  });

  test("a replica votes at most once per term (first come, first served)", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.peer(1).step(makeMessage({ type: MT.RequestVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    net.peer(1).step(makeMessage({ type: MT.RequestVote, from: 3, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    net.collect(1);
    expect(sentOf(net, MT.RequestVoteResp).map((m) => m.reject)).toEqual([false, true]);
  });

  test("a repeated RequestVote from the candidate voted for is granted again", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    const req = makeMessage({ type: MT.RequestVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 });
    net.peer(1).step({ ...req });
    net.peer(1).step({ ...req });
    net.collect(1);
    expect(sentOf(net, MT.RequestVoteResp).map((m) => m.reject)).toEqual([false, false]);
  });

  test("granting a vote resets the election tick", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.raft(1).term = 2;
    net.tick(1, 5);
    net.peer(1).step(makeMessage({ type: MT.RequestVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    expect(net.raft(1).electionTick).toBe(0);
  });

  test("a higher-term RequestVote does not reset the election tick (slow clocks still campaign)", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.tick(1, 5);
    net.peer(1).step(makeMessage({ type: MT.RequestVote, from: 2, to: 1, term: 5, logIndex: 1, logTerm: 1 }));
    expect(net.raft(1).term).toBe(5);
    expect(net.raft(1).electionTick).toBe(5);
  });

  test("a higher-term Replicate resets the election tick", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.tick(1, 5);
    net.peer(1).step(makeMessage({ type: MT.Replicate, from: 2, to: 1, term: 5, logIndex: 3, logTerm: 1 }));
    expect(net.raft(1).electionTick).toBe(0);
    expect(net.raft(1).leaderId).toBe(2);
  });

  test("a candidate steps down once a quorum rejects it", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.RequestVoteResp, from: 2, to: 1, term: 2, reject: true }));
    expect(net.raft(1).role).toBe(Role.Candidate);
    net.peer(1).step(makeMessage({ type: MT.RequestVoteResp, from: 3, to: 1, term: 2, reject: true }));
    expect(net.raft(1).role).toBe(Role.Follower);
  });

  test("a duplicated vote from the same voter counts once", () => {
    const net = lone(1, [1, 2, 3, 4, 5], noPreVote);
    net.raft(1).handleElection(false);
    for (let i = 0; i < 3; i++) {
      net.peer(1).step(makeMessage({ type: MT.RequestVoteResp, from: 2, to: 1, term: 2 }));
    }
    expect(net.raft(1).role).toBe(Role.Candidate);
    net.peer(1).step(makeMessage({ type: MT.RequestVoteResp, from: 3, to: 1, term: 2 }));
    expect(net.raft(1).role).toBe(Role.Leader);
  });

  test("a candidate that sees a Heartbeat of its term follows the sender", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.Heartbeat, from: 2, to: 1, term: 2 }));
    expect(net.raft(1).role).toBe(Role.Follower);
    expect(net.raft(1).leaderId).toBe(2);
  });

  test("a candidate that sees a Replicate of its term follows the sender and appends", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.raft(1).handleElection(false);
    const e = {
      term: 2,
      index: 4,
      type: EntryType.Application,
      key: 0,
      clientId: 0,
      seriesId: 0,
      respondedTo: 0,
      cmd: new Uint8Array(),
      proposerId: 0,
      proposerEpoch: 0,
    };
    net
      .peer(1)
      .step(
        makeMessage({ type: MT.Replicate, from: 3, to: 1, term: 2, logIndex: 3, logTerm: 1, entries: [e] }),
      );
    expect(net.raft(1).leaderId).toBe(3);
    expect(net.raft(1).log.lastIndex()).toBe(4);
  });

  test("a candidate drops proposals and reports them", () => {
    const net = lone(1, [1, 2, 3], noPreVote);
    net.raft(1).handleElection(false);
    net.propose(1, "p");
    expect(net.node(1).droppedEntries).toHaveLength(1);
  });

  test("a leader ignores the election trigger", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    const term = net.raft(1).term;
    net.campaign(1);
    expect(net.raft(1).term).toBe(term);
    expect(net.raft(1).role).toBe(Role.Leader);
  });

  test("no campaign while committed entries are unapplied", () => {
    const net = new Network();
    net.addNode(1, {
      initialMembers: [
        { replicaId: 1, address: "a" },
        { replicaId: 2, address: "b" },
      ],
      newNode: true,
    });
    net.raft(1).handleElection(false);
    expect(net.raft(1).role).toBe(Role.Follower);
    expect(net.raft(1).campaignsSkipped).toBe(1);
  });

  test("a replica absent from the membership never campaigns", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.addNode(9, {});
    net.tick(9, 100);
    net.collect(9);
    expect(net.raft(9).role).toBe(Role.Follower);
    expect(sentOf(net, MT.RequestPreVote, 9)).toHaveLength(0);
  });

  test("a new leader appends an empty entry of its term", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(2);
    const log = net.raft(2).log;
    const last = log.entries(log.lastIndex(), log.lastIndex() + 1, 1000)[0]!;
    expect(last.term).toBe(net.raft(2).term);
    expect(last.cmd.byteLength).toBe(0);
    expect(log.committed).toBe(log.lastIndex());
    net.spreadCommit(2);
    expect(net.raft(1).log.committed).toBe(log.lastIndex());
  });

  test("every replica can win an election in turn", () => {
    const net = Network.bootstrap([1, 2, 3], { checkQuorum: false });
    for (const id of [1, 2, 3, 1]) {
      net.campaign(id);
      expect(net.leaders()).toEqual([id]);
    }
  });

  test("a leader steps down on a higher-term message", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.peer(1).step(makeMessage({ type: MT.Heartbeat, from: 2, to: 1, term: 10 }));
    expect(net.raft(1).role).toBe(Role.Follower);
    expect(net.raft(1).term).toBe(10);
    expect(net.raft(1).leaderId).toBe(2);
  });

  test("a higher-term response makes a leader follow with no known leader", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.peer(1).step(makeMessage({ type: MT.ReplicateResp, from: 2, to: 1, term: 10 }));
    expect(net.raft(1).role).toBe(Role.Follower);
    expect(net.raft(1).leaderId).toBe(0);
  });

  test("a leader's log overwrites conflicting uncommitted entries of a higher term", () => {
    const net = Network.bootstrap([1, 2, 3], noPreVote);
    net.campaign(1);
    net.isolate(1);
    net.propose(1, "lost"); // never leaves node 1
    net.recover();
    net.isolate(1);
    net.tickAll(25); // 2 or 3 wins a later term
    net.recover();
    const leader = net.leaders().find((id) => id !== 1)!;
    net.propose(leader, "kept");
    net.tickAll(3);
    expect(net.node(1).appliedData()).toEqual(["kept"]);
  });
});
