import { describe, expect, test } from "bun:test";
import { Role, validateRaftConfig } from "../../src/raft/config.ts";
import { decodeConfigChange } from "../../src/raft/configchange.ts";
import { MemoryStorage } from "../../src/raft/memorystorage.ts";
import { Peer, PeerArgumentError } from "../../src/raft/peer.ts";
import { ConfigChangeType, EntryType, makeMessage } from "../../src/raft/types.ts";
import { entry, lone, member, MT, Network, TestRng } from "./network.ts";

function create(opts: Partial<Parameters<typeof Peer.create>[0]> = {}, replicaId = 1): Peer {
  return Peer.create({
    config: validateRaftConfig({ shardId: 1, replicaId }),
    storage: new MemoryStorage(),
    rng: new TestRng(1),
    initialMembers: [member(1), member(2)],
    newNode: true,
    lastApplied: 0,
    ...opts,
  });
}

describe("peer", () => {
  test("a new node synthesizes one committed AddNode entry per initial member, sorted by id", () => {
    const p = create({ initialMembers: [member(3), member(1), member(2)] });
    const u = p.getUpdate(true, 0);
    expect(u.entriesToSave.map((e) => [e.index, e.term, e.type])).toEqual([
      [1, 1, EntryType.ConfigChange],
      [2, 1, EntryType.ConfigChange],
      [3, 1, EntryType.ConfigChange],
    ]);
    expect(u.committedEntries).toHaveLength(3);
    const ccs = u.committedEntries.map((e) => decodeConfigChange(e.cmd));
    expect(ccs.map((c) => c.replicaId)).toEqual([1, 2, 3]);
    expect(ccs.every((c) => c.initialize && c.type === ConfigChangeType.AddNode)).toBe(true);
    expect(u.state).toEqual({ term: 1, vote: 0, commit: 3 });
  });

  test("a restarted replica recovers its hard state and replays entries above lastApplied", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.propose(1, "a", "b");
    net.spreadCommit(1);
    const storage = net.node(2).storage;
    const p = Peer.create({
      config: validateRaftConfig({ shardId: 1, replicaId: 2 }),
      storage,
      rng: new TestRng(2),
      initialMembers: [],
      newNode: false,
      lastApplied: 4,
    });
    const st = p.status();
    expect(st.term).toBe(2);
    expect(st.commit).toBe(storage.nodeState().state.commit);
    const u = p.getUpdate(true, 4);
    expect(u.committedEntries.map((e) => e.index)).toEqual([5, 6]);
    expect(u.state).toBeNull();
    expect(u.entriesToSave).toHaveLength(0);
  });

  test("bootstrap rejects a replica id of 0", () => {
    expect(() => create({ initialMembers: [member(1), { replicaId: 0, address: "x" }] })).toThrow(
      /must be > 0/,
    );
  });

  test("bootstrap rejects a duplicated address", () => {
    expect(() => create({ initialMembers: [member(1), { replicaId: 2, address: "n1" }] })).toThrow(
      /used twice/,
    );
  });

  test("bootstrap rejects a duplicated replica id", () => {
    expect(() => create({ initialMembers: [member(1), member(1)] })).toThrow(/listed twice/);
  });

  test("bootstrap requires the replica itself among the initial members", () => {
    expect(() => create({ initialMembers: [member(2), member(3)] })).toThrow(/itself is not among/);
  });

  test("bootstrap requires initial members", () => {
    expect(() => create({ initialMembers: [] })).toThrow(PeerArgumentError);
  });

  test("a non-voting replica cannot be an initial member", () => {
    expect(() =>
      create({ config: validateRaftConfig({ shardId: 1, replicaId: 1, isNonVoting: true }) }),
    ).toThrow(/cannot be an initial member/);
  });

  test("bootstrap refuses a log that already holds entries", () => {
    const storage = new MemoryStorage();
    storage.append([entry("x", { index: 1, term: 1 })]);
    expect(() => create({ storage })).toThrow(/already holds entries/);
  });

  test("a negative lastApplied is refused", () => {
    expect(() => create({ lastApplied: -1 })).toThrow(/lastApplied/);
  });

  test("a local message type from the network is refused with the reason, not thrown", () => {
    const p = create();
    expect(p.step(makeMessage({ type: MT.Election, from: 2, to: 1 }))).toContain("is local");
    expect(p.status().role).toBe(Role.Follower);
  });

  test("a message that claims to come from the replica itself is refused", () => {
    const p = create();
    expect(p.step(makeMessage({ type: MT.TimeoutNow, from: 1, to: 1, term: 5 }))).toContain(
      "not another replica",
    );
    expect(p.status().term).toBeLessThan(5);
  });

  test("a message addressed to another replica is dropped", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(makeMessage({ type: MT.Heartbeat, from: 2, to: 3, term: 9 }));
    expect(net.raft(1).term).toBe(1);
  });

  test("a response from an unknown sender is dropped", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(makeMessage({ type: MT.RequestVoteResp, from: 8, to: 1, term: 9 }));
    expect(net.raft(1).term).toBe(1);
  });

  test("a message type beyond the known range is dropped", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(makeMessage({ type: 99 as never, from: 2, to: 1, term: 9 }));
    expect(net.raft(1).term).toBe(1);
  });

  test("a vote response is never a fast message", () => {
    const net = lone(1, [1, 2, 3], { preVote: false });
    net.peer(1).step(makeMessage({ type: MT.RequestVote, from: 2, to: 1, term: 2, logIndex: 3, logTerm: 1 }));
    const u = net.peer(1).getUpdate(true, 3);
    expect(u.fastMessages).toHaveLength(0);
    expect(u.messages.map((m) => m.type)).toEqual([MT.RequestVoteResp]);
    expect(u.state!.vote).toBe(2);
  });

  test("a leader's Replicate and Heartbeat messages are fast", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.tickAll(1); // a heartbeat round: the answered no-op belongs to it, not to the next
    net.peer(1).propose([entry("a")]);
    net.tick(1);
    const u = net.peer(1).getUpdate(true, net.node(1).appliedIndex);
    expect(u.fastMessages.some((m) => m.type === MT.Replicate)).toBe(true);
    expect(u.fastMessages.some((m) => m.type === MT.Heartbeat)).toBe(true);
    expect(u.messages.some((m) => m.type === MT.Replicate || m.type === MT.Heartbeat)).toBe(false);
  });

  test("a heartbeat's answer is fast in a durable term, and waits when the heartbeat raised the term", () => {
    const net = lone(2, [1, 2, 3]);
    const p = net.peer(2);
    p.step(makeMessage({ type: MT.Heartbeat, from: 1, to: 2, term: 5 }));
    const raised = p.getUpdate(true, 3);
    expect(raised.state!.term).toBe(5);
    expect(raised.fastMessages).toHaveLength(0);
    expect(raised.messages.map((m) => m.type)).toEqual([MT.HeartbeatResp]);
    // While that Update is unpersisted, the next answer still waits for it.
    p.step(makeMessage({ type: MT.Heartbeat, from: 1, to: 2, term: 5 }));
    expect(p.takeFastMessages()).toHaveLength(0);
    p.commitUpdate(raised);
    expect(p.takeFastMessages().map((m) => m.type)).toEqual([MT.HeartbeatResp]);
  });

  test("takeFastMessages leaves a follower's acknowledgements for its next Update", () => {
    const net = lone(2, [1, 2, 3]);
    const p = net.peer(2);
    p.step(makeMessage({ type: MT.Heartbeat, from: 1, to: 2, term: 5 }));
    p.commitUpdate(p.getUpdate(true, 3));
    p.step(
      makeMessage({
        type: MT.Replicate,
        from: 1,
        to: 2,
        term: 5,
        logIndex: 3,
        logTerm: 1,
        commit: 3,
        entries: [entry("x", { index: 4, term: 5 })],
      }),
    );
    p.step(makeMessage({ type: MT.Heartbeat, from: 1, to: 2, term: 5, commit: 3 }));
    expect(p.takeFastMessages().map((m) => m.type)).toEqual([MT.HeartbeatResp]);
    const u = p.getUpdate(true, 3);
    expect(u.fastMessages).toHaveLength(0);
    expect(u.messages.map((m) => m.type)).toEqual([MT.ReplicateResp]);
    expect(u.entriesToSave).toHaveLength(1);
  });

  test("a leader whose term is not yet persisted sends nothing fast", () => {
    const net = lone(1, [1, 2, 3], { preVote: false });
    net.raft(1).handleElection(false);
    net.peer(1).step(makeMessage({ type: MT.RequestVoteResp, from: 2, to: 1, term: 2 }));
    expect(net.raft(1).role).toBe(Role.Leader);
    const u = net.peer(1).getUpdate(true, 3);
    expect(u.fastMessages).toHaveLength(0);
    expect(u.messages.some((m) => m.type === MT.Replicate)).toBe(true);
  });

  test("the Update reports each leader change once (a new term with no leader yet, then the leader)", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.keepUpdates = true;
    net.campaign(1);
    net.tickAll(3);
    const notices = net
      .node(2)
      .updates.filter((u) => u.leaderUpdate !== null)
      .map((u) => u.leaderUpdate);
    expect(notices).toEqual([
      { leaderId: 0, term: 2 },
      { leaderId: 1, term: 2 },
    ]);
  });

  test("messages and dropped entries are handed out once", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).propose([entry("no leader")]);
    const u1 = net.peer(1).getUpdate(true, 3);
    expect(u1.droppedEntries).toHaveLength(1);
    net.peer(1).commitUpdate(u1);
    expect(net.peer(1).hasUpdate(true)).toBe(false);
  });

  test("the Update carries the host's lastApplied and the processed index", () => {
    const net = lone(1, [1]);
    net.raft(1).handleElection(false);
    net.collect(1);
    expect(net.raft(1).log.committed).toBe(2); // bootstrap entry 1, leader's no-op 2
    const u = net.peer(1).getUpdate(true, 1);
    expect(u.commit.lastApplied).toBe(1);
    expect(u.commit.processed).toBe(2);
  });

  test("committing an Update of another replica is refused", () => {
    const a = create();
    const b = create({}, 2);
    const u = b.getUpdate(true, 0);
    expect(() => a.commitUpdate(u)).toThrow(/given to shard 1 replica 1/);
  });

  test("a leader transfer to replica 0 is refused", () => {
    expect(() => create().requestLeaderTransfer(0)).toThrow(PeerArgumentError);
  });

  test("status() reports the replica's position", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.propose(1, "a");
    const st = net.peer(1).status();
    expect(st).toEqual({
      shardId: 1,
      replicaId: 1,
      role: Role.Leader,
      term: 2,
      vote: 1,
      leaderId: 1,
      commit: 5,
      applied: 5,
      lastIndex: 5,
      quiesced: false,
      isTransferring: false,
      rateLimited: false,
    });
  });

  test("entries persisted before a crash survive it; unpersisted ones do not", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    net.peer(1).propose([entry("kept")]);
    net.collect(1);
    net.peer(1).propose([entry("lost")]);
    net.crash(1);
    const n1 = net.restart(1);
    expect(n1.raft.log.lastIndex()).toBe(5);
  });
});
