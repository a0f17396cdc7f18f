import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { RemoteState } from "../../src/raft/remote.ts";
import { makeMessage, type SnapshotMeta } from "../../src/raft/types.ts";
import { lone, member, MT, Network, sentOf } from "./network.ts";

function snap(index: number, term: number, ids = [1, 2, 3]): SnapshotMeta {
  return {
    shardId: 1,
    replicaId: 2,
    index,
    term,
    membership: { configChangeId: 0, addresses: ids.map(member), nonVotings: [], witnesses: [], removed: [] },
    filePath: "f",
    fileSizeBytes: 1,
    witness: false,
    dummy: false,
    onDiskIndex: 0,
    app: "",
    checksum: 0,
  };
}

/** Leader 1; replica 3 missed `count` proposals that the leader then compacted away. */
function lagging(count = 5): Network {
  const net = Network.bootstrap([1, 2, 3]);
  net.campaign(1);
  // A heartbeat round: replica 3's answer to the no-op belongs to it, so the next round finds 3
  // silent and heartbeats it (a round in which it answered is not heartbeated).
  net.tickAll(1);
  net.isolate(3);
  for (let i = 0; i < count; i++) net.propose(1, `p${i}`);
  net.snapshot(1, net.node(1).appliedIndex);
  net.recover();
  net.sent = [];
  return net;
}

describe("snapshot", () => {
  test("a leader sends its snapshot to a follower that needs compacted entries", () => {
    const net = lagging();
    net.tickAll(3);
    const m = sentOf(net, MT.InstallSnapshot, 1)[0]!;
    expect(m.to).toBe(3);
    expect(m.snapshot!.index).toBe(net.raft(1).log.firstIndex() - 1);
  });

  test("a leader does not ship a snapshot to a follower it has not heard from", () => {
    const net = lagging();
    net.raft(1).remotes.get(3)!.active = false;
    net.raft(1).remotes.get(3)!.becomeRetry();
    net.raft(1).broadcastReplicate();
    net.collect(1);
    expect(sentOf(net, MT.InstallSnapshot, 1)).toHaveLength(0);
  });

  test("a slow replica catches up through a snapshot and later entries", () => {
    const net = lagging();
    net.tickAll(3);
    net.propose(1, "after");
    net.spreadCommit(1);
    expect(net.node(3).appliedData()).toEqual(["p0", "p1", "p2", "p3", "p4", "after"]);
    expect(net.raft(3).log.firstIndex()).toBeGreaterThan(1);
  });

  test("an installed snapshot comes out in the Update and resets the log", () => {
    const net = lone(1, [1, 2, 3]);
    net.keepUpdates = true;
    net
      .peer(1)
      .step(makeMessage({ type: MT.InstallSnapshot, from: 2, to: 1, term: 2, snapshot: snap(20, 2) }));
    const log = net.raft(1).log;
    expect(log.committed).toBe(20);
    expect(log.lastIndex()).toBe(20);
    expect(log.firstIndex()).toBe(21);
    net.collect(1);
    const u = net.node(1).updates[0]!;
    expect(u.snapshot!.index).toBe(20);
    expect(u.commit.stableSnapshotIndex).toBe(20);
    expect(net.node(1).storage.snapshot()!.index).toBe(20);
    expect(log.unpersistedSnapshot()).toBeNull();
    expect(sentOf(net, MT.ReplicateResp)[0]!.logIndex).toBe(20);
  });

  test("a snapshot at or below the commit index is ignored and answered with the commit", () => {
    const net = lone(1, [1, 2, 3]);
    net
      .peer(1)
      .step(makeMessage({ type: MT.InstallSnapshot, from: 2, to: 1, term: 2, snapshot: snap(2, 1) }));
    net.collect(1);
    expect(net.raft(1).log.unpersistedSnapshot()).toBeNull();
    expect(sentOf(net, MT.ReplicateResp)[0]!.logIndex).toBe(3);
  });

  test("a snapshot matching an entry the follower has only fast-forwards its commit", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(
      makeMessage({
        type: MT.Replicate,
        from: 2,
        to: 1,
        term: 2,
        logIndex: 3,
        logTerm: 1,
        entries: [
          {
            term: 2,
            index: 4,
            type: 0,
            key: 0,
            clientId: 0,
            seriesId: 0,
            respondedTo: 0,
            cmd: new Uint8Array(),
            proposerId: 0,
            proposerEpoch: 0,
          },
        ],
        commit: 3,
      }),
    );
    net
      .peer(1)
      .step(makeMessage({ type: MT.InstallSnapshot, from: 2, to: 1, term: 2, snapshot: snap(4, 2) }));
    expect(net.raft(1).log.committed).toBe(4);
    expect(net.raft(1).log.unpersistedSnapshot()).toBeNull();
  });

  test("an InstallSnapshot sets the leader and resets the election tick", () => {
    const net = lone(1, [1, 2, 3]);
    net.tick(1, 5);
    net
      .peer(1)
      .step(makeMessage({ type: MT.InstallSnapshot, from: 3, to: 1, term: 2, snapshot: snap(20, 2) }));
    expect(net.raft(1).leaderId).toBe(3);
    expect(net.raft(1).electionTick).toBe(0);
  });

  test("a follower receiving a snapshot is paused until its status is known", () => {
    const net = lagging();
    net.reportLostSnapshots = false;
    net.ignore(MT.InstallSnapshot);
    net.tickAll(1);
    const r = net.raft(1).remotes.get(3)!;
    expect(r.state).toBe(RemoteState.Snapshot);
    net.sent = [];
    net.propose(1, "x");
    expect(sentOf(net, MT.Replicate, 1).filter((m) => m.to === 3)).toHaveLength(0);
  });

  test("a failed snapshot clears the pending index and waits for the next heartbeat answer", () => {
    const net = lagging();
    net.reportLostSnapshots = false;
    net.ignore(MT.InstallSnapshot);
    net.tickAll(1);
    const r = net.raft(1).remotes.get(3)!;
    net.peer(1).reportSnapshotStatus(3, true);
    expect(r.state).toBe(RemoteState.Wait);
    expect(r.snapshotIndex).toBe(0);
    expect(r.next).toBe(r.match + 1);
  });

  test("a delivered snapshot moves the follower to wait, resuming after the snapshot index", () => {
    const net = lagging();
    net.reportLostSnapshots = false;
    net.ignore(MT.InstallSnapshot);
    net.tickAll(1);
    const r = net.raft(1).remotes.get(3)!;
    const index = r.snapshotIndex;
    net.peer(1).reportSnapshotStatus(3, false);
    expect(r.state).toBe(RemoteState.Wait);
    expect(r.next).toBe(index + 1);
  });

  test("an acknowledgement at or past the snapshot index ends the snapshot state", () => {
    const net = lagging();
    net.reportLostSnapshots = false;
    net.ignore(MT.InstallSnapshot);
    net.tickAll(1);
    const r = net.raft(1).remotes.get(3)!;
    net
      .peer(1)
      .step(makeMessage({ type: MT.ReplicateResp, from: 3, to: 1, term: 2, logIndex: r.snapshotIndex }));
    expect(r.state).not.toBe(RemoteState.Snapshot);
  });

  test("a snapshot status for a follower not in snapshot state is ignored", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.peer(1).reportSnapshotStatus(2, true);
    expect(net.raft(1).remotes.get(2)!.state).toBe(RemoteState.Replicate);
  });

  test("a replica restarts from its snapshot and replays only what follows it", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.propose(1, "a", "b");
    net.snapshot(2, net.node(2).appliedIndex);
    net.propose(1, "c");
    net.crash(2);
    const n2 = net.restart(2);
    expect(n2.appliedIndex).toBe(n2.storage.snapshot()!.index);
    net.tickAll(2);
    expect(n2.appliedData()).toEqual(["a", "b", "c"]);
  });

  test("a leader missing from a restored snapshot's membership steps down", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.peer(1).restoreRemotes(snap(3, 1, [2, 3]));
    expect(net.raft(1).role).toBe(Role.Follower);
  });

  test("restoring a snapshot's membership keeps the progress of members that stay", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    const r2 = net.raft(1).remotes.get(2);
    net.peer(1).restoreRemotes(snap(3, 1, [1, 2, 3, 4]));
    expect(net.raft(1).remotes.get(2)).toBe(r2!);
    expect(net.raft(1).remotes.has(4)).toBe(true);
  });
});
