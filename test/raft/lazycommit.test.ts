import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { ConfigChangeType, makeEntry, makeMessage } from "../../src/raft/types.ts";
import { COMMIT_SPREAD_HEARTBEATS, entry, lone, MT, Network, sentOf } from "./network.ts";

/**
 * The commit index travels lazily (docs/architecture.md, "The commit index travels lazily"):
 * no empty Replicate per commit, followers learn it from the next Replicate or heartbeat
 * within two heartbeat intervals, and a plain heartbeat is skipped for a follower that
 * answered this round's Replicate.
 */

/** Leader 1 of 3 after one heartbeat round (the no-op's answers belong to that round). */
function elected(config = {}): Network {
  const net = Network.bootstrap([1, 2, 3], config);
  net.campaign(1);
  net.tickAll(1);
  net.sent = [];
  return net;
}

/** One proposal on the leader, settled, then one tick of every replica (one heartbeat round). */
function steadyRound(net: Network, i: number): void {
  net.propose(1, `w${i}`);
  net.tickAll(1);
}

describe("lazy commit", () => {
  test("a commit sends no empty Replicate: a write costs 4 messages, not 8", () => {
    const net = elected();
    net.propose(1, "a");
    const fromLeader = sentOf(net, MT.Replicate, 1);
    expect(fromLeader.map((m) => m.entries.length)).toEqual([1, 1]);
    expect(net.sent).toHaveLength(4); // 2 Replicate, 2 ReplicateResp
    const leaderCommit = net.raft(1).log.committed;
    expect(net.node(1).appliedData()).toEqual(["a"]);
    // The followers hold the entry but learned only the commit index before it.
    for (const id of [2, 3]) {
      expect(net.raft(id).log.lastIndex()).toBe(leaderCommit);
      expect(net.raft(id).log.committed).toBe(leaderCommit - 1);
    }
  });

  test("after the last write of a burst, followers learn its commit within two heartbeat intervals", () => {
    const net = elected();
    for (let i = 0; i < 5; i++) steadyRound(net, i);
    net.propose(1, "last");
    const commit = net.raft(1).log.committed;
    for (let t = 0; t < COMMIT_SPREAD_HEARTBEATS; t++) net.tickAll(1);
    for (const id of [2, 3]) {
      expect(net.raft(id).log.committed).toBe(commit);
      expect(net.node(id).appliedData()).toEqual(["w0", "w1", "w2", "w3", "w4", "last"]);
    }
  });

  test("under steady replication a follower's commit trails the leader's by at most one write", () => {
    const net = elected();
    for (let i = 0; i < 10; i++) {
      steadyRound(net, i);
      for (const id of [2, 3]) expect(net.node(id).appliedData().length).toBeGreaterThanOrEqual(i);
    }
  });

  test("a config change's commit reaches every member at once", () => {
    const net = elected();
    net.configChange(1, { type: ConfigChangeType.AddNonVoting, replicaId: 4 });
    for (const id of [1, 2, 3]) expect(net.raft(id).nonVotings.has(4)).toBe(true);
    net.configChange(1, { type: ConfigChangeType.RemoveNode, replicaId: 3 });
    // The removed replica learned its removal before the leader stopped sending to it.
    for (const id of [1, 2, 3]) expect(net.raft(id).removed.has(3)).toBe(true);
  });
});

describe("reads on a follower", () => {
  test("a ReadIndexResp carries the commit index, no further than the reader matches", () => {
    const net = elected();
    net.propose(1, "a");
    net.peer(2).readIndex({ low: 9, high: 0 });
    net.stabilize();
    const resp = sentOf(net, MT.ReadIndexResp, 1)[0]!;
    expect(resp.to).toBe(2);
    expect(resp.commit).toBe(net.raft(1).log.committed);
    expect(net.node(2).readyToReads.map((r) => r.index)).toEqual([net.raft(1).log.committed]);
    expect(net.raft(2).log.committed).toBe(net.raft(1).log.committed);
    expect(net.node(2).appliedData()).toEqual(["a"]);
  });

  test("a follower commits to a ReadIndexResp's commit index, within its own log", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(
      makeMessage({
        type: MT.Replicate,
        from: 2,
        to: 1,
        term: 2,
        logIndex: 3,
        logTerm: 1,
        entries: [makeEntry({ index: 4, term: 2 })],
        commit: 3,
      }),
    );
    expect(net.raft(1).log.committed).toBe(3);
    net
      .peer(1)
      .step(
        makeMessage({ type: MT.ReadIndexResp, from: 2, to: 1, term: 2, logIndex: 4, hint: 5, commit: 9 }),
      );
    expect(net.raft(1).log.committed).toBe(4);
    expect(net.raft(1).readyToReads.map((r) => r.index)).toEqual([4]);
  });
});

describe("heartbeat skipping", () => {
  test("a follower that answered this round's Replicate gets no plain heartbeat", () => {
    const net = elected();
    for (let i = 0; i < 10; i++) steadyRound(net, i);
    expect(sentOf(net, MT.Heartbeat, 1)).toHaveLength(0);
    expect(sentOf(net, MT.Replicate, 1).every((m) => m.entries.length > 0)).toBe(true);
  });

  test("an idle follower gets a heartbeat every round", () => {
    const net = elected();
    net.tickAll(5);
    expect(sentOf(net, MT.Heartbeat, 1)).toHaveLength(10);
  });

  test("a silent follower gets a heartbeat every round while the others replicate", () => {
    const net = elected();
    net.isolate(3);
    for (let i = 0; i < 5; i++) steadyRound(net, i);
    const hbs = sentOf(net, MT.Heartbeat, 1);
    expect(hbs.filter((m) => m.to === 3)).toHaveLength(5);
    expect(hbs.filter((m) => m.to === 2)).toHaveLength(0);
  });

  test("a read round is never skipped", () => {
    const net = elected();
    net.peer(1).propose([entry("a")]);
    net.peer(1).readIndex({ low: 7, high: 0 });
    net.stabilize();
    net.tickAll(1);
    expect(net.node(1).readyToReads.map((r) => r.ctx.low)).toEqual([7]);
    expect(sentOf(net, MT.Heartbeat, 1).filter((m) => m.hint === 7)).toHaveLength(2);
  });

  test("CheckQuorum keeps a leader whose heartbeats are skipped; followers never campaign", () => {
    const net = elected({ checkQuorum: true, preVote: true });
    const term = net.raft(1).term;
    for (let i = 0; i < 5 * 10; i++) steadyRound(net, i);
    expect(sentOf(net, MT.Heartbeat, 1)).toHaveLength(0);
    expect(net.raft(1).role).toBe(Role.Leader);
    for (const id of [1, 2, 3]) expect(net.raft(id).term).toBe(term);
    expect(sentOf(net, MT.RequestPreVote)).toHaveLength(0);
  });

  test("CheckQuorum still demotes a leader whose followers stopped answering", () => {
    const net = elected({ checkQuorum: true });
    net.isolate(2);
    net.isolate(3);
    for (let i = 0; i < 2 * 10; i++) {
      net.peer(1).propose([entry(`x${i}`)]);
      net.tick(1);
      net.stabilize();
    }
    expect(net.raft(1).role).toBe(Role.Follower);
  });

  test("no skipping when the election timeout is shorter than four heartbeat intervals", () => {
    const net = elected({ electionRtt: 3, heartbeatRtt: 1 });
    for (let i = 0; i < 3; i++) steadyRound(net, i);
    expect(sentOf(net, MT.Heartbeat, 1)).toHaveLength(6);
  });
});
