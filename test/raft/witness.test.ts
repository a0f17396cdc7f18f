import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { ConfigChangeType, EntryType, makeMessage } from "../../src/raft/types.ts";
import { entry, member, MT, Network, sentOf } from "./network.ts";

/** Full members 1..n (leader 1) and witness n + 1. */
function withWitness(n = 3): Network {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const net = Network.bootstrap(ids);
  net.campaign(1);
  net.configChange(1, { type: ConfigChangeType.AddWitness, replicaId: n + 1 });
  net.addNode(n + 1, { config: { isWitness: true } });
  net.tickAll(3);
  return net;
}

describe("witness", () => {
  test("a witness never starts an election", () => {
    const net = withWitness();
    net.crash(1);
    net.tick(4, 100);
    net.collect(4);
    expect(sentOf(net, MT.RequestPreVote, 4)).toHaveLength(0);
    expect(net.raft(4).role).toBe(Role.Witness);
  });

  test("a witness votes in elections", () => {
    const net = withWitness();
    net.sent = [];
    net.raft(4).leaderId = 0;
    net
      .peer(4)
      .step(makeMessage({ type: MT.RequestVote, from: 2, to: 4, term: 9, logIndex: 99, logTerm: 9 }));
    net.collect(4);
    expect(sentOf(net, MT.RequestVoteResp, 4)[0]!.reject).toBe(false);
  });

  test("application entries reach a witness as metadata only", () => {
    const net = withWitness();
    net.sent = [];
    net.propose(1, "payload");
    const toWitness = sentOf(net, MT.Replicate, 1).filter((m) => m.to === 4 && m.entries.length > 0);
    expect(toWitness.length).toBeGreaterThan(0);
    for (const m of toWitness) {
      for (const e of m.entries) {
        expect(e.type).toBe(EntryType.Metadata);
        expect(e.cmd.byteLength).toBe(0);
      }
    }
    expect(net.node(4).appliedData()).toEqual([]);
  });

  test("config change entries reach a witness intact", () => {
    const net = withWitness();
    net.sent = [];
    net.configChange(1, { type: ConfigChangeType.AddNode, replicaId: 5 });
    const ents = sentOf(net, MT.Replicate, 1)
      .filter((m) => m.to === 4)
      .flatMap((m) => m.entries);
    expect(ents.some((e) => e.type === EntryType.ConfigChange && e.cmd.byteLength > 0)).toBe(true);
    expect(net.raft(4).remotes.has(5)).toBe(true);
  });

  test("a witness counts toward commit: 3 full + 1 witness commit with one full member cut off", () => {
    const net = withWitness();
    net.isolate(3);
    net.propose(1, "a");
    expect(net.node(1).appliedData()).toEqual(["a"]);
    net.spreadCommit(1);
    expect(net.node(2).appliedData()).toEqual(["a"]);
    expect(net.raft(1).witnesses.get(4)!.match).toBe(net.raft(1).log.lastIndex());
  });

  test("a witness drops proposals and reads", () => {
    const net = withWitness();
    net.peer(4).propose([entry("w")]);
    net.peer(4).readIndex({ low: 1, high: 2 });
    net.collect(4);
    expect(net.node(4).droppedEntries).toHaveLength(1);
    expect(net.node(4).droppedReads).toEqual([{ low: 1, high: 2 }]);
  });

  test("a leader drops a read forwarded by a witness", () => {
    const net = withWitness();
    net.peer(1).step(makeMessage({ type: MT.ReadIndex, from: 4, to: 1, hint: 5, hintHigh: 6 }));
    net.stabilize();
    expect(sentOf(net, MT.ReadIndexResp)).toHaveLength(0);
    expect(net.raft(1).readIndex.size).toBe(0);
  });

  test("a witness cannot be promoted to a full member", () => {
    const net = withWitness();
    expect(() =>
      net.peer(1).applyConfigChange({
        configChangeId: 0,
        type: ConfigChangeType.AddNode,
        replicaId: 4,
        address: "n4",
        initialize: false,
      }),
    ).toThrow(/witness 4 cannot be promoted/);
  });

  test("a full member cannot be made a witness of itself", () => {
    const net = Network.bootstrap([1, 2, 3]);
    expect(() =>
      net.peer(2).applyConfigChange({
        configChangeId: 0,
        type: ConfigChangeType.AddWitness,
        replicaId: 9,
        address: "",
        initialize: false,
      }),
    ).not.toThrow();
    const fresh = new Network().addNode(5, {});
    expect(() =>
      fresh.peer.applyConfigChange({
        configChangeId: 0,
        type: ConfigChangeType.AddWitness,
        replicaId: 5,
        address: "",
        initialize: false,
      }),
    ).toThrow(/witness/);
  });

  test("a snapshot sent to a witness is flagged witness and carries no file", () => {
    const net = withWitness();
    net.isolate(4);
    for (let i = 0; i < 5; i++) net.propose(1, `p${i}`);
    net.snapshot(1, net.node(1).appliedIndex);
    net.recover();
    net.sent = [];
    net.tickAll(3);
    const snaps = sentOf(net, MT.InstallSnapshot, 1).filter((m) => m.to === 4);
    expect(snaps.length).toBeGreaterThan(0);
    expect(snaps[0]!.snapshot!.witness).toBe(true);
    expect(snaps[0]!.snapshot!.filePath).toBe("");
    expect(snaps[0]!.snapshot!.dummy).toBe(false);
  });

  test("a snapshot cannot turn a witness into a full member", () => {
    const net = withWitness();
    const snap = {
      ...net.snapshot(1),
      witness: true,
      membership: { ...net.membershipOf(net.raft(1)), addresses: [member(4)] },
    };
    expect(() => net.peer(4).restoreRemotes(snap)).toThrow(/witness 4/);
    // Sent by a peer, such a snapshot is refused when it arrives: nothing is installed.
    const reason = net.peer(4).step(
      makeMessage({
        type: MT.InstallSnapshot,
        from: 1,
        to: 4,
        term: net.raft(4).term,
        snapshot: { ...snap, index: snap.index + 10 },
      }),
    );
    expect(reason).toContain("would turn witness 4 into another role");
    expect(net.raft(4).log.lastIndex()).toBeLessThan(snap.index + 10);
  });

  test("a witness can be removed", () => {
    const net = withWitness();
    net.configChange(1, { type: ConfigChangeType.RemoveNode, replicaId: 4 });
    expect(net.raft(1).witnesses.has(4)).toBe(false);
    expect(net.raft(1).quorum()).toBe(2);
  });
});
