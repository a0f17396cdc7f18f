import { describe, expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import {
  ConfigChangeDecodeError,
  decodeConfigChange,
  encodeConfigChange,
} from "../../src/raft/configchange.ts";
import {
  type ConfigChange,
  ConfigChangeType,
  EntryType,
  makeEntry,
  makeMessage,
} from "../../src/raft/types.ts";
import { entry, MT, Network, text } from "./network.ts";

const cc = (type: ConfigChange["type"], replicaId: number): ConfigChange => ({
  configChangeId: 0,
  type,
  replicaId,
  address: `n${replicaId}`,
  initialize: false,
});
const ccEntry = (c: ConfigChange) => makeEntry({ type: EntryType.ConfigChange, cmd: encodeConfigChange(c) });

function elected(ids = [1, 2, 3]): Network {
  const net = Network.bootstrap(ids);
  net.campaign(1);
  return net;
}

const TAG = { key: 1, proposerId: 1, proposerEpoch: 1 };

describe("membership", () => {
  test("a config change round-trips through its protobuf encoding", () => {
    const c = {
      configChangeId: 42,
      type: ConfigChangeType.AddWitness,
      replicaId: 7,
      address: "h:1",
      initialize: true,
    };
    expect(decodeConfigChange(encodeConfigChange(c))).toEqual(c);
  });

  test("undecodable config change bytes give a typed error", () => {
    expect(() => decodeConfigChange(new Uint8Array([0xff, 0xff, 0xff]))).toThrow(ConfigChangeDecodeError);
  });

  test("proposeConfigChange appends a ConfigChange entry carrying the request tag", () => {
    const net = elected();
    net.peer(1).proposeConfigChange(cc(ConfigChangeType.AddNode, 4), {
      key: 77,
      proposerId: 1,
      proposerEpoch: 9,
    });
    const log = net.raft(1).log;
    const e = log.entries(log.lastIndex(), log.lastIndex() + 1, 1 << 20)[0]!;
    expect(e.type).toBe(EntryType.ConfigChange);
    expect([e.key, e.proposerId, e.proposerEpoch]).toEqual([77, 1, 9]);
    expect(decodeConfigChange(e.cmd).replicaId).toBe(4);
  });

  test("a proposed config change sets the pending flag", () => {
    const net = elected();
    net.isolate(1);
    net.peer(1).proposeConfigChange(cc(ConfigChangeType.AddNode, 4), TAG);
    expect(net.raft(1).pendingConfigChange).toBe(true);
  });

  test("a second config change while one is pending becomes an empty entry and is reported dropped", () => {
    const net = elected();
    net.isolate(1);
    net.peer(1).propose([ccEntry(cc(ConfigChangeType.AddNode, 4)), ccEntry(cc(ConfigChangeType.AddNode, 5))]);
    net.collect(1);
    const log = net.raft(1).log;
    const last = log.entries(log.lastIndex(), log.lastIndex() + 1, 1 << 20)[0]!;
    expect(last.type).toBe(EntryType.Application);
    expect(last.cmd.byteLength).toBe(0);
    expect(net.node(1).droppedEntries.map((e) => decodeConfigChange(e.cmd).replicaId)).toEqual([5]);
  });

  test("applying a config change clears the pending flag", () => {
    const net = elected();
    net.configChange(1, { type: ConfigChangeType.AddNode, replicaId: 4 });
    expect(net.raft(1).pendingConfigChange).toBe(false);
  });

  test("a rejected config change clears the pending flag", () => {
    const net = elected();
    for (const n of net.nodes.values()) n.rejectConfigChanges = true;
    net.configChange(1, { type: ConfigChangeType.AddNode, replicaId: 4 });
    expect(net.raft(1).pendingConfigChange).toBe(false);
    expect(net.raft(1).remotes.has(4)).toBe(false);
  });

  test("a config change takes effect when applied, not when appended", () => {
    const net = elected();
    net.isolate(1);
    net.peer(1).proposeConfigChange(cc(ConfigChangeType.AddNode, 4), TAG);
    net.stabilize();
    expect(net.raft(1).remotes.has(4)).toBe(false);
    net.recover();
    net.tickAll(2);
    expect(net.raft(1).remotes.has(4)).toBe(true);
  });

  test("a new leader recovers the pending flag from its uncommitted log", () => {
    const net = elected();
    net.ignore(MT.ReplicateResp);
    net.peer(1).proposeConfigChange(cc(ConfigChangeType.AddNode, 4), TAG);
    net.stabilize();
    net.crash(1);
    for (let i = 0; i < 40 && net.leaders().length === 0; i++) net.tickAll(1);
    const leader = net.leaders()[0]!;
    expect(leader).not.toBe(1);
    expect(net.raft(leader).pendingConfigChange).toBe(true);
  });

  test("a new leader with two uncommitted config changes (a peer wrote them) adds no third", () => {
    const net = elected();
    net.isolate(2);
    net.isolate(3);
    const r = net.raft(2);
    r.log.append([
      makeEntry({ term: 2, index: 5, type: EntryType.ConfigChange, cmd: encodeConfigChange(cc(0, 4)) }),
      makeEntry({ term: 2, index: 6, type: EntryType.ConfigChange, cmd: encodeConfigChange(cc(0, 5)) }),
    ]);
    r.term = 3;
    (r as unknown as { role: number }).role = Role.Candidate;
    r.becomeLeader();
    expect(r.pendingConfigChange).toBe(true);
  });

  test("an added replica joins with an empty log and catches up", () => {
    const net = elected();
    net.propose(1, "before");
    net.configChange(1, { type: ConfigChangeType.AddNode, replicaId: 4 });
    net.addNode(4, {});
    net.tickAll(3);
    net.propose(1, "after");
    net.spreadCommit(1);
    expect(net.node(4).appliedData()).toEqual(["before", "after"]);
    expect(net.raft(4).remotes.has(4)).toBe(true);
    expect(net.raft(1).quorum()).toBe(3);
  });

  test("adding an existing member changes nothing", () => {
    const net = elected();
    const r = net.raft(1).remotes.get(2);
    net.peer(1).applyConfigChange(cc(ConfigChangeType.AddNode, 2));
    expect(net.raft(1).remotes.get(2)).toBe(r!);
  });

  test("removing a member shrinks the quorum and commits what waited for it", () => {
    const net = elected([1, 2]);
    net.isolate(2);
    net.peer(1).propose([entry("waiting")]);
    net.stabilize();
    const before = net.raft(1).log.committed;
    net.peer(1).applyConfigChange(cc(ConfigChangeType.RemoveNode, 2));
    expect(net.raft(1).log.committed).toBeGreaterThan(before);
  });

  test("a leader that removes itself steps down", () => {
    const net = elected();
    net.configChange(1, { type: ConfigChangeType.RemoveNode, replicaId: 1 });
    expect(net.raft(1).role).toBe(Role.Follower);
    expect(net.raft(1).remotes.has(1)).toBe(false);
  });

  test("a removed id never returns", () => {
    const net = elected();
    net.configChange(1, { type: ConfigChangeType.RemoveNode, replicaId: 3 });
    net.peer(1).applyConfigChange(cc(ConfigChangeType.AddNode, 3));
    expect(net.raft(1).remotes.has(3)).toBe(false);
    expect(net.raft(1).removed.has(3)).toBe(true);
  });

  test("messages from a removed replica are dropped", () => {
    const net = elected();
    net.configChange(1, { type: ConfigChangeType.RemoveNode, replicaId: 3 });
    net.peer(1).step(makeMessage({ type: MT.Heartbeat, from: 3, to: 1, term: 50 }));
    expect(net.raft(1).term).toBe(2);
  });

  test("a config change with replica id 0 only clears the pending flag", () => {
    const net = elected();
    net.raft(1).pendingConfigChange = true;
    net.peer(1).applyConfigChange(cc(ConfigChangeType.AddNode, 0));
    expect(net.raft(1).pendingConfigChange).toBe(false);
    expect(net.raft(1).remotes.size).toBe(3);
  });

  test("a replayed bootstrap entry is applied as a no-op on restart", () => {
    const net = elected();
    net.propose(1, "x");
    net.crash(2);
    const n2 = net.restart(2);
    expect(n2.raft.remotes.size).toBe(0);
    net.tickAll(2);
    expect(n2.raft.remotes.size).toBe(3);
    expect(n2.appliedData()).toEqual(["x"]);
    expect(n2.applied.map(text)).toEqual(["x"]);
  });
});
