import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { ConfigChangeType, makeMessage, type SnapshotMeta } from "../../src/raft/types.ts";
import { lone, member, MT, Network, sentOf } from "./network.ts";

/** 3 full members (leader 1) and non-voting replica 4. */
function withNonVoting(): Network {
  const net = Network.bootstrap([1, 2, 3]);
  net.campaign(1);
  net.configChange(1, { type: ConfigChangeType.AddNonVoting, replicaId: 4 });
  net.addNode(4, { config: { isNonVoting: true } });
  net.tickAll(3);
  return net;
}

function snapWith(addresses: number[], nonVotings: number[]): SnapshotMeta {
  return {
    shardId: 1,
    replicaId: 1,
    index: 3,
    term: 1,
    membership: {
      configChangeId: 0,
      addresses: addresses.map(member),
      nonVotings: nonVotings.map(member),
      witnesses: [],
      removed: [],
    },
    filePath: "",
    fileSizeBytes: 0,
    witness: false,
    dummy: false,
    onDiskIndex: 0,
    app: "",
    checksum: 0,
  };
}

describe("non-voting", () => {
  test("a non-voting replica receives and applies the log", () => {
    const net = withNonVoting();
    net.propose(1, "a");
    net.spreadCommit(1);
    expect(net.node(4).appliedData()).toEqual(["a"]);
    expect(net.raft(4).role).toBe(Role.NonVoting);
  });

  test("a non-voting replica never starts an election", () => {
    const net = withNonVoting();
    net.crash(1);
    net.tick(4, 100);
    net.collect(4);
    expect(sentOf(net, MT.RequestPreVote, 4)).toHaveLength(0);
    expect(net.raft(4).role).toBe(Role.NonVoting);
  });

  test("a non-voting replica's acknowledgement does not count toward commit", () => {
    const net = withNonVoting();
    net.isolate(2);
    net.isolate(3);
    const before = net.raft(1).log.committed;
    net.propose(1, "a");
    expect(net.raft(1).nonVotings.get(4)!.match).toBe(net.raft(1).log.lastIndex());
    expect(net.raft(1).log.committed).toBe(before);
  });

  test("a non-voting replica's proposal is forwarded to the leader", () => {
    const net = withNonVoting();
    net.propose(4, "from-4");
    expect(net.node(1).appliedData()).toEqual(["from-4"]);
  });

  test("a non-voting replica gets a read index through the leader", () => {
    const net = withNonVoting();
    net.peer(4).readIndex({ low: 3, high: 4 });
    net.stabilize();
    expect(net.node(4).readyToReads).toEqual([
      { index: net.raft(1).log.committed, ctx: { low: 3, high: 4 } },
    ]);
  });

  test("a non-voting replica answers vote requests", () => {
    const net = withNonVoting();
    net.sent = [];
    net.raft(4).leaderId = 0;
    net
      .peer(4)
      .step(makeMessage({ type: MT.RequestVote, from: 2, to: 4, term: 9, logIndex: 99, logTerm: 9 }));
    net.collect(4);
    expect(sentOf(net, MT.RequestVoteResp, 4)[0]!.reject).toBe(false);
  });

  test("a candidate ignores a non-voting replica's vote", () => {
    const net = lone(1, [1, 2, 3], { preVote: false });
    net.raft(1).nonVotings.set(4, net.raft(1).remotes.get(2)!);
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.RequestVoteResp, from: 4, to: 1, term: 2 }));
    expect(net.raft(1).role).toBe(Role.Candidate);
  });

  test("AddNode promotes a non-voting replica to follower, keeping its progress", () => {
    const net = withNonVoting();
    const progress = net.raft(1).nonVotings.get(4)!;
    net.configChange(1, { type: ConfigChangeType.AddNode, replicaId: 4 });
    expect(net.raft(1).remotes.get(4)).toBe(progress);
    expect(net.raft(4).role).toBe(Role.Follower);
    expect(net.raft(1).quorum()).toBe(3);
  });

  test("a promoted replica can win an election", () => {
    const net = withNonVoting();
    net.configChange(1, { type: ConfigChangeType.AddNode, replicaId: 4 });
    net.peer(1).requestLeaderTransfer(4);
    net.stabilize();
    expect(net.leaders()).toEqual([4]);
  });

  test("a non-voting replica can be removed", () => {
    const net = withNonVoting();
    net.configChange(1, { type: ConfigChangeType.RemoveNode, replicaId: 4 });
    expect(net.raft(1).nonVotings.has(4)).toBe(false);
  });

  test("a snapshot listing a non-voting replica as full member promotes it", () => {
    const node = new Network().addNode(4, { config: { isNonVoting: true } });
    node.peer.restoreRemotes(snapWith([1, 2, 4], []));
    expect(node.raft.role).toBe(Role.Follower);
    expect(node.raft.remotes.has(4)).toBe(true);
  });

  test("a snapshot cannot turn a full member back into non-voting", () => {
    const net = lone(1, [1, 2, 3]);
    expect(() => net.peer(1).restoreRemotes(snapWith([2, 3], [1]))).toThrow(/back into non-voting/);
  });

  test("a replica asked to become non-voting while in another role fails loudly", () => {
    const fresh = new Network().addNode(5, {});
    expect(() =>
      fresh.peer.applyConfigChange({
        configChangeId: 0,
        type: ConfigChangeType.AddNonVoting,
        replicaId: 5,
        address: "",
        initialize: false,
      }),
    ).toThrow(/non-voting/);
  });
});
