import { describe, expect, test } from "bun:test";
import { Remote, RemoteState } from "../../src/raft/remote.ts";
import { entry, MT, Network, sentOf } from "./network.ts";

function remote(maxMsgs = 4, maxBytes = 1 << 20): Remote {
  const r = new Remote(maxMsgs, maxBytes);
  r.reset(11);
  return r;
}

describe("flow control: remote states", () => {
  test("retry and replicate are not paused; wait and snapshot are", () => {
    const r = remote();
    expect(r.isPaused()).toBe(false);
    r.becomeWait();
    expect(r.isPaused()).toBe(true);
    r.becomeReplicate();
    expect(r.isPaused()).toBe(false);
    r.becomeSnapshot(20);
    expect(r.isPaused()).toBe(true);
  });

  test("a probe sent in retry moves the remote to wait", () => {
    const r = remote();
    r.sent(12, 2, 300);
    expect(r.state).toBe(RemoteState.Wait);
    expect(r.next).toBe(11);
  });

  test("sends in replicate advance next optimistically", () => {
    const r = remote();
    r.match = 10;
    r.becomeReplicate();
    r.sent(15, 5, 640);
    r.sent(17, 2, 256);
    expect(r.next).toBe(18);
    expect(r.inflightCount()).toBe(2);
  });

  test("the in-flight window fills at maxInflightMsgs messages", () => {
    const r = remote(2);
    r.becomeReplicate();
    r.sent(11, 1, 129);
    expect(r.isPaused()).toBe(false);
    r.sent(12, 1, 129);
    expect(r.isPaused()).toBe(true);
  });

  test("the in-flight window fills at maxInflightBytes bytes", () => {
    const r = remote(100, 1000);
    r.becomeReplicate();
    r.sent(11, 1, 999);
    expect(r.isPaused()).toBe(false);
    r.sent(12, 1, 1);
    expect(r.isPaused()).toBe(true);
  });

  test("sending into a full window is a programming error", () => {
    const r = remote(1);
    r.becomeReplicate();
    r.sent(11, 1, 129);
    expect(() => r.sent(12, 1, 129)).toThrow(/window is full/);
  });

  test("an acknowledgement frees the window up to its index", () => {
    const r = remote(3);
    r.becomeReplicate();
    r.sent(11, 1, 100);
    r.sent(12, 1, 100);
    r.sent(13, 1, 100);
    expect(r.tryUpdate(12)).toBe(true);
    expect(r.inflightCount()).toBe(1);
    expect(r.inflightSizeBytes).toBe(100);
    expect(r.match).toBe(12);
  });

  test("an acknowledgement in wait resumes retry", () => {
    const r = remote();
    r.becomeWait();
    expect(r.tryUpdate(11)).toBe(true);
    expect(r.state).toBe(RemoteState.Retry);
  });

  test("a stale acknowledgement does not move match back", () => {
    const r = remote();
    r.tryUpdate(15);
    expect(r.tryUpdate(12)).toBe(false);
    expect(r.match).toBe(15);
  });

  test("a landed probe starts pipelining from match + 1", () => {
    const r = remote();
    r.tryUpdate(14);
    r.respondedTo();
    expect(r.state).toBe(RemoteState.Replicate);
    expect(r.next).toBe(15);
  });

  test("a stale rejection in replicate is ignored", () => {
    const r = remote();
    r.match = 10;
    r.becomeReplicate();
    r.sent(15, 5, 500);
    expect(r.decreaseTo(9, 9)).toBe(false);
    expect(r.next).toBe(16);
  });

  test("a rejection in replicate falls back to retry at the hint", () => {
    const r = remote();
    r.match = 10;
    r.becomeReplicate();
    r.sent(15, 5, 500);
    expect(r.decreaseTo(13, 11)).toBe(true);
    expect(r.state).toBe(RemoteState.Retry);
    expect(r.next).toBe(12);
    expect(r.inflightCount()).toBe(0);
  });

  test("a rejection in retry counts only for the probed index and never goes below match + 1", () => {
    const r = remote();
    r.match = 3;
    r.next = 9;
    expect(r.decreaseTo(5, 1)).toBe(false);
    expect(r.decreaseTo(8, 1)).toBe(true);
    expect(r.next).toBe(4);
  });

  test("leaving snapshot resumes after the snapshot index", () => {
    const r = remote();
    r.match = 5;
    r.becomeSnapshot(40);
    r.becomeRetry();
    expect(r.next).toBe(41);
    expect(r.snapshotIndex).toBe(0);
  });

  test("an acknowledgement at or past the snapshot ends the snapshot state", () => {
    const r = remote();
    r.becomeSnapshot(40);
    r.tryUpdate(40);
    r.respondedTo();
    expect(r.state).toBe(RemoteState.Retry);
  });

  test("an unreachable follower in replicate falls back to retry", () => {
    const r = remote();
    r.match = 10;
    r.becomeReplicate();
    r.sent(12, 2, 200);
    r.unreachable();
    expect(r.state).toBe(RemoteState.Retry);
    expect(r.next).toBe(11);
  });

  test("freeing the first in-flight message reopens a full window", () => {
    const r = remote(1);
    r.becomeReplicate();
    r.sent(11, 1, 100);
    r.freeFirstInflight();
    expect(r.isPaused()).toBe(false);
    expect(r.inflightSizeBytes).toBe(0);
  });
});

describe("flow control: leader", () => {
  test("a silent follower receives at most maxInflightMsgs Replicate messages", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInflightMsgs: 3 });
    net.campaign(1);
    net.ignore(MT.ReplicateResp);
    net.sent = [];
    for (let i = 0; i < 10; i++) net.propose(1, `p${i}`);
    const toTwo = sentOf(net, MT.Replicate, 1).filter((m) => m.to === 2 && m.entries.length > 0);
    expect(toTwo).toHaveLength(3);
  });

  test("a silent follower receives at most maxInflightBytes of entries (plus the message that crossed it)", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInflightBytes: 1000 });
    net.campaign(1);
    net.ignore(MT.ReplicateResp);
    net.sent = [];
    for (let i = 0; i < 10; i++) net.propose(1, "x".repeat(300));
    const toTwo = sentOf(net, MT.Replicate, 1).filter((m) => m.to === 2 && m.entries.length > 0);
    expect(toTwo).toHaveLength(3); // 428 + 428 < 1000 ≤ 1284
  });

  test("a probing follower receives one message until it answers", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.raft(1).remotes.get(2)!.becomeRetry();
    net.isolate(2);
    net.sent = [];
    for (let i = 0; i < 5; i++) net.propose(1, `p${i}`);
    expect(sentOf(net, MT.Replicate, 1).filter((m) => m.to === 2)).toHaveLength(1);
  });

  test("acknowledgements keep the pipeline full", () => {
    const net = Network.bootstrap([1, 2, 3], { maxInflightMsgs: 2 });
    net.campaign(1);
    for (let i = 0; i < 20; i++) net.peer(1).propose([entry(`p${i}`)]);
    net.stabilize();
    net.spreadCommit(1);
    expect(net.node(2).appliedData()).toHaveLength(20);
    expect(net.raft(1).remotes.get(2)!.state).toBe(RemoteState.Replicate);
  });

  test("an Unreachable report moves a replicating follower back to retry", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    expect(net.raft(1).remotes.get(2)!.state).toBe(RemoteState.Replicate);
    net.peer(1).reportUnreachable(2);
    expect(net.raft(1).remotes.get(2)!.state).toBe(RemoteState.Retry);
  });
});
