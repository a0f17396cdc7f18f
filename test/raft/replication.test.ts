import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { type Entry, makeEntry, makeMessage } from "../../src/raft/types.ts";
import { entry, lone, MT, Network, sentOf } from "./network.ts";

function ent(index: number, term: number): Entry {
  return makeEntry({ index, term });
}

describe("replication", () => {
  test("a proposal on the leader is replicated and applied everywhere", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.propose(1, "a", "b");
    expect(net.node(1).appliedData()).toEqual(["a", "b"]);
    net.spreadCommit(1); // followers learn the commit index lazily
    for (const id of [1, 2, 3]) expect(net.node(id).appliedData()).toEqual(["a", "b"]);
  });

  test("a follower forwards a proposal to the leader", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.propose(2, "via-2");
    net.spreadCommit(1);
    for (const id of [1, 2, 3]) expect(net.node(id).appliedData()).toEqual(["via-2"]);
    expect(sentOf(net, MT.Propose, 2)[0]!.to).toBe(1);
  });

  test("a forwarded proposal the network delivers twice is appended once", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    const last = net.raft(1).log.lastIndex();
    const forwarded = makeMessage({
      type: MT.Propose,
      from: 2,
      to: 1,
      entries: [entry("once", { key: 77 })],
    });
    net.peer(1).step(forwarded);
    net.peer(1).step({ ...forwarded, entries: [entry("once", { key: 77 })] });
    expect(net.raft(1).log.lastIndex()).toBe(last + 1);
    // A different key from the same follower is a different proposal.
    net.peer(1).step({ ...forwarded, entries: [entry("twice", { key: 78 })] });
    expect(net.raft(1).log.lastIndex()).toBe(last + 2);
  });

  test("a proposal without a known leader is dropped", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.propose(2, "x");
    expect(net.node(2).droppedEntries.map((e) => e.index)).toEqual([0]);
  });

  test("a single voter commits its proposals once they are persisted", () => {
    const net = lone(1, [1]);
    net.raft(1).handleElection(false);
    net.peer(1).propose([entry("solo")]);
    const before = net.raft(1).log.committed;
    expect(net.raft(1).log.lastIndex()).toBe(before + 2);
    net.collect(1); // persist → commit
    expect(net.raft(1).log.committed).toBe(before + 2);
    net.collect(1); // apply
    expect(net.node(1).appliedData()).toEqual(["solo"]);
  });

  test("the leader counts its own copy only after it is persisted", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.peer(1).propose([entry("a")]);
    const self = net.raft(1).remotes.get(1)!;
    expect(self.match).toBe(net.raft(1).log.lastIndex() - 1);
    net.collect(1);
    expect(self.match).toBe(net.raft(1).log.lastIndex());
  });

  test("an entry of an older term commits only through an entry of the current term", () => {
    const net = Network.bootstrap([1, 2, 3], { preVote: false, checkQuorum: false });
    net.campaign(1);
    net.isolate(1);
    net.propose(1, "old"); // index 5, term 2, only on node 1
    net.recover();
    net.ignore(MT.Replicate);
    net.raft(1).becomeFollower(2, 0);
    net.campaign(1); // term 3; the no-op at 6 and "old" at 5 are not replicated yet
    const r = net.raft(1);
    expect(r.term).toBe(3);
    expect(r.log.term(5)).toBe(2);
    r.remotes.get(2)!.match = 5;
    expect(r.tryCommit()).toBe(false);
    r.remotes.get(2)!.match = 6;
    expect(r.tryCommit()).toBe(true);
    expect(r.log.committed).toBe(6);
  });

  test("a follower rejects a Replicate whose previous entry does not match, with a hint", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(makeMessage({ type: MT.Replicate, from: 2, to: 1, term: 2, logIndex: 7, logTerm: 2 }));
    net.collect(1);
    const resp = sentOf(net, MT.ReplicateResp)[0]!;
    expect(resp.reject).toBe(true);
    expect(resp.logIndex).toBe(7);
    expect(resp.hint).toBe(3);
    expect(resp.hintHigh).toBe(1);
  });

  test("a follower truncates a conflicting uncommitted suffix", () => {
    const net = lone(1, [1, 2, 3]);
    const p = net.peer(1);
    p.step(
      makeMessage({
        type: MT.Replicate,
        from: 2,
        to: 1,
        term: 2,
        logIndex: 3,
        logTerm: 1,
        entries: [ent(4, 2), ent(5, 2)],
        commit: 3,
      }),
    );
    p.step(
      makeMessage({
        type: MT.Replicate,
        from: 3,
        to: 1,
        term: 3,
        logIndex: 3,
        logTerm: 1,
        entries: [ent(4, 3)],
        commit: 3,
      }),
    );
    const log = net.raft(1).log;
    expect(log.lastIndex()).toBe(4);
    expect(log.term(4)).toBe(3);
  });

  test("a follower commits up to min(leader commit, last new entry)", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(
      makeMessage({
        type: MT.Replicate,
        from: 2,
        to: 1,
        term: 2,
        logIndex: 3,
        logTerm: 1,
        entries: [ent(4, 2)],
        commit: 9,
      }),
    );
    expect(net.raft(1).log.committed).toBe(4);
  });

  test("a Replicate below the follower's commit is answered with the commit index", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(makeMessage({ type: MT.Replicate, from: 2, to: 1, term: 2, logIndex: 1, logTerm: 1 }));
    net.collect(1);
    const resp = sentOf(net, MT.ReplicateResp)[0]!;
    expect(resp.reject).toBe(false);
    expect(resp.logIndex).toBe(3);
  });

  test("a heartbeat carries min(match, commit) and no entries", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, "a");
    net.tick(1); // this round's heartbeat to 2 is skipped: it accepted this round's Replicate
    net.stabilize();
    net.sent = [];
    net.tick(1);
    net.collect(1);
    const hbs = sentOf(net, MT.Heartbeat, 1);
    const to2 = hbs.find((m) => m.to === 2)!;
    const to3 = hbs.find((m) => m.to === 3)!;
    expect(to2.commit).toBe(net.raft(1).log.committed);
    expect(to3.commit).toBe(net.raft(1).remotes.get(3)!.match);
    expect(to2.entries).toHaveLength(0);
  });

  test("a follower commits to the heartbeat's commit index", () => {
    const net = lone(1, [1, 2, 3]);
    net.peer(1).step(
      makeMessage({
        type: MT.Replicate,
        from: 2,
        to: 1,
        term: 2,
        logIndex: 3,
        logTerm: 1,
        entries: [ent(4, 2)],
        commit: 3,
      }),
    );
    expect(net.raft(1).log.committed).toBe(3);
    net.peer(1).step(makeMessage({ type: MT.Heartbeat, from: 2, to: 1, term: 2, commit: 4 }));
    expect(net.raft(1).log.committed).toBe(4);
  });

  test("a heartbeat response makes the leader resend to a lagging follower", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.tickAll(1); // a heartbeat round: the answered no-op belongs to the one before
    net.ignore(MT.Replicate);
    net.propose(1, "a");
    net.recover();
    net.sent = [];
    net.tickAll(1);
    expect(sentOf(net, MT.Heartbeat, 1).length).toBe(2);
    expect(sentOf(net, MT.Replicate, 1).length).toBeGreaterThan(0);
    expect(net.raft(3).log.lastIndex()).toBe(net.raft(1).log.lastIndex());
    net.spreadCommit(1); // a later heartbeat carries the commit index
    expect(net.node(3).appliedData()).toEqual(["a"]);
  });

  test("conflict hints let a leader skip a whole divergent term in one round trip", () => {
    const net = Network.bootstrap([1, 2, 3], { preVote: false });
    net.campaign(1);
    net.isolate(1);
    for (let i = 0; i < 30; i++) net.peer(1).propose([entry(`lost${i}`)]);
    net.stabilize();
    net.recover();
    net.isolate(1);
    net.tickAll(30);
    const leader = net.leaders().find((id) => id !== 1)!;
    net.propose(leader, "new");
    net.recover();
    net.sent = [];
    net.tickAll(3);
    const rejects = sentOf(net, MT.ReplicateResp, 1).filter((m) => m.reject);
    expect(rejects.length).toBeLessThanOrEqual(2);
    expect(net.node(1).appliedData()).toEqual(["new"]);
  });

  test("a stale-term Replicate is ignored", () => {
    const net = lone(1, [1, 2, 3]);
    net.raft(1).term = 5;
    net.peer(1).step(
      makeMessage({
        type: MT.Replicate,
        from: 2,
        to: 1,
        term: 4,
        logIndex: 3,
        logTerm: 1,
        entries: [ent(4, 4)],
      }),
    );
    expect(net.raft(1).log.lastIndex()).toBe(3);
  });

  test("divergent follower logs converge to the leader's log", () => {
    const net = Network.bootstrap([1, 2, 3, 4, 5], { preVote: false });
    net.campaign(1);
    net.propose(1, "a");
    for (const id of [2, 3]) {
      net.isolate(id);
      net.raft(id).term += id; // distinct terms: one leader per term
      (net.raft(id) as unknown as { role: number }).role = Role.Candidate;
      net.raft(id).becomeLeader();
      net.peer(id).propose([entry(`junk${id}`)]);
      net.stabilize();
      net.raft(id).becomeFollower(net.raft(id).term, 0);
      net.recover();
    }
    net.tickAll(40);
    const l = net.leaders()[0]!;
    net.propose(l, "b");
    net.tickAll(3);
    const history = net.node(l).appliedData();
    expect(history[0]).toBe("a");
    expect(history[history.length - 1]).toBe("b");
    for (const id of [1, 2, 3, 4, 5]) expect(net.node(id).appliedData()).toEqual(history);
  });

  test("one Replicate carries at most maxEntryBytesPerMessage of entries, but at least one", () => {
    const net = Network.bootstrap([1, 2], { maxEntryBytesPerMessage: 300 });
    net.campaign(1);
    net.sent = [];
    net.peer(1).propose([entry("x".repeat(1000)), entry("y"), entry("z")]);
    net.stabilize();
    net.spreadCommit(1);
    const sizes = sentOf(net, MT.Replicate, 1)
      .map((m) => m.entries.length)
      .filter((n) => n > 0);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2);
    expect(net.node(2).appliedData()).toHaveLength(3);
  });

  test("committed entries per Update stop at maxApplyBytes and flag that more wait", () => {
    const net = lone(1, [1], { maxApplyBytes: 300 });
    net.raft(1).handleElection(false);
    net.peer(1).propose([entry("a"), entry("b"), entry("c"), entry("d")]);
    net.collect(1);
    const u = net.peer(1).getUpdate(true, net.node(1).appliedIndex);
    expect(u.committedEntries).toHaveLength(2);
    expect(u.moreCommittedEntries).toBe(true);
  });

  test("hasUpdate(false) ignores entries waiting to be applied", () => {
    const net = lone(1, [1]);
    net.raft(1).handleElection(false);
    net.collect(1);
    const u = net.peer(1).getUpdate(false, 0);
    net.node(1).storage.setState(u.state!);
    net.peer(1).commitUpdate(u);
    expect(net.peer(1).hasUpdate(false)).toBe(false);
    expect(net.peer(1).hasUpdate(true)).toBe(true);
    expect(net.peer(1).getUpdate(false, 0).committedEntries).toHaveLength(0);
  });

  test("a replica with a lost message is caught up after messages flow again", () => {
    const net = Network.bootstrap([1, 2, 3]);
    net.campaign(1);
    net.drop(1, 3, 1);
    net.propose(1, "a", "b");
    net.propose(1, "c");
    net.recover();
    net.tickAll(3);
    expect(net.node(3).appliedData()).toEqual(["a", "b", "c"]);
  });
});
