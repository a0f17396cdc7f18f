import { describe, expect, test } from "bun:test";
import { ConfigChangeType } from "../../src/raft/types.ts";
import { MT, Network, sentOf } from "./network.ts";

function elected(ids = [1, 2, 3], config = {}): Network {
  const net = Network.bootstrap(ids, config);
  net.campaign(1);
  return net;
}

describe("leader transfer", () => {
  test("a transfer to an up-to-date follower sends TimeoutNow at once and the target wins", () => {
    const net = elected();
    net.peer(1).requestLeaderTransfer(2);
    net.stabilize();
    expect(sentOf(net, MT.TimeoutNow, 1).map((m) => m.to)).toEqual([2]);
    expect(net.leaders()).toEqual([2]);
  });

  test("a transfer requested on a follower is forwarded to the leader", () => {
    const net = elected();
    net.peer(3).requestLeaderTransfer(3);
    net.stabilize();
    expect(sentOf(net, MT.LeaderTransfer, 3)[0]!.to).toBe(1);
    expect(net.leaders()).toEqual([3]);
  });

  test("a transfer succeeds although CheckQuorum leases are active", () => {
    const net = elected([1, 2, 3], { checkQuorum: true });
    net.tickAll(2);
    net.peer(1).requestLeaderTransfer(3);
    net.stabilize();
    expect(net.leaders()).toEqual([3]);
  });

  test("the transfer target skips pre-vote and tags its RequestVote with its own id", () => {
    const net = elected();
    net.sent = [];
    net.peer(1).requestLeaderTransfer(2);
    net.stabilize();
    expect(sentOf(net, MT.RequestPreVote, 2)).toHaveLength(0);
    for (const m of sentOf(net, MT.RequestVote, 2)) expect(m.hint).toBe(2);
  });

  test("a transfer to a lagging follower waits until it has caught up", () => {
    const net = elected();
    net.isolate(3);
    net.propose(1, "a");
    net.peer(1).requestLeaderTransfer(3);
    net.stabilize();
    expect(sentOf(net, MT.TimeoutNow, 1)).toHaveLength(0);
    expect(net.peer(1).status().isTransferring).toBe(true);
    net.recover();
    net.tickAll(2);
    expect(net.leaders()).toEqual([3]);
  });

  test("a transfer to the leader itself is ignored", () => {
    const net = elected();
    net.peer(1).requestLeaderTransfer(1);
    expect(net.peer(1).status().isTransferring).toBe(false);
  });

  test("a transfer to an unknown replica is ignored", () => {
    const net = elected();
    net.peer(1).requestLeaderTransfer(9);
    expect(net.peer(1).status().isTransferring).toBe(false);
  });

  test("a transfer is aborted after an election timeout", () => {
    const net = elected();
    net.isolate(3);
    net.propose(1, "a");
    net.peer(1).requestLeaderTransfer(3);
    for (let i = 0; i < 9; i++) net.tick(1);
    expect(net.peer(1).status().isTransferring).toBe(true);
    net.tick(1);
    expect(net.peer(1).status().isTransferring).toBe(false);
    expect(net.leaders()).toContain(1);
  });

  test("proposals are dropped while a transfer is in progress", () => {
    const net = elected();
    net.isolate(3);
    net.propose(1, "a");
    net.peer(1).requestLeaderTransfer(3);
    net.propose(1, "b");
    expect(net.node(1).droppedEntries.map((e) => new TextDecoder().decode(e.cmd))).toEqual(["b"]);
  });

  test("a higher-term message aborts the transfer", () => {
    const net = elected();
    net.isolate(3);
    net.propose(1, "a");
    net.peer(1).requestLeaderTransfer(3);
    net.raft(1).becomeFollower(9, 0);
    expect(net.peer(1).status().isTransferring).toBe(false);
  });

  test("removing the target aborts the transfer", () => {
    const net = elected();
    net.isolate(3);
    net.propose(1, "a");
    net.peer(1).requestLeaderTransfer(3);
    net.peer(1).applyConfigChange({
      configChangeId: 0,
      type: ConfigChangeType.RemoveNode,
      replicaId: 3,
      address: "",
      initialize: false,
    });
    expect(net.peer(1).status().isTransferring).toBe(false);
  });

  test("a second transfer neither overrides the first nor extends its timeout", () => {
    const net = elected();
    net.isolate(2);
    net.isolate(3);
    net.propose(1, "a");
    net.peer(1).requestLeaderTransfer(3);
    net.tick(1, 5);
    net.peer(1).requestLeaderTransfer(2);
    expect(net.raft(1).transferTarget).toBe(3);
    net.tick(1, 5);
    expect(net.raft(1).transferTarget).toBe(0);
  });

  test("leadership can be transferred back", () => {
    const net = elected();
    net.peer(1).requestLeaderTransfer(2);
    net.stabilize();
    net.peer(2).requestLeaderTransfer(1);
    net.stabilize();
    expect(net.leaders()).toEqual([1]);
  });

  test("a non-voting replica cannot be a transfer target", () => {
    const net = elected();
    net.raft(1).nonVotings.set(4, net.raft(1).remotes.get(3)!);
    net.peer(1).requestLeaderTransfer(4);
    expect(net.peer(1).status().isTransferring).toBe(false);
  });
});
