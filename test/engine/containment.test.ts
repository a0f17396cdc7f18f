// Containment: nothing a peer sends, and no single shard's failure, may stop a NodeHost. A
// message that breaks the protocol is refused (logged, counted); a replica whose processing
// throws is stopped alone, its data left on disk, while the host and its other shards go on.
import { afterEach, describe, expect, test } from "bun:test";
import { longboat } from "../../src/pb/longboat.js";
import { MessageType, makeMessage } from "../../src/raft/types.ts";
import { KvStateMachine } from "../../src/statemachine/kv.ts";
import type { CreateStateMachine, SMEntry } from "../../src/statemachine/types.ts";
import { MapRegistry } from "../../src/transport/registry.ts";
import { hostAddress, RTT_MS, SimCluster } from "./cluster.ts";

const kv = longboat.nodehost.v1;
const text = new TextEncoder();
const put = (key: string, value: string) =>
  kv.KvCommand.encode({ put: { key, value: text.encode(value) } }).finish();
const T = { timeoutMs: 3000 };

let cluster: SimCluster;
afterEach(async () => {
  await cluster?.close();
});

type LogEvent = Record<string, unknown>;

async function threeHosts(logs: Map<number, LogEvent[]>): Promise<void> {
  cluster = new SimCluster(11);
  for (const i of [1, 2, 3]) {
    const events: LogEvent[] = [];
    logs.set(i, events);
    await cluster.startHost(i, { log: (e) => events.push(e) });
  }
}

describe("containment", () => {
  test("a pre-vote request reaching a replica with preVote off is refused, logged and counted; the host goes on", async () => {
    const logs = new Map<number, LogEvent[]>();
    await threeHosts(logs);
    // checkQuorum off: a follower in its leader's lease would ignore any vote request first.
    await cluster.startShard(1, [1, 2, 3], { preVote: false, checkQuorum: false });
    const leader = await cluster.waitLeader(1);
    const target = [1, 2, 3].find((i) => i !== leader)!;
    const sender = [1, 2, 3].find((i) => i !== leader && i !== target)!;
    // A peer configured with preVote on (here: a transport speaking for replica `sender`).
    const registry = new MapRegistry();
    registry.add(1, target, hostAddress(target));
    const rogue = cluster.net.transport("10.0.0.99:7001", 1, registry);
    await rogue.start({
      onMessages: () => {},
      onUnreachable: () => {},
      onSnapshotStatus: () => {},
      onSnapshotReceived: () => {},
    });
    const nh = cluster.host(target);
    const term = nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!.term;
    rogue.send(
      makeMessage({
        type: MessageType.RequestPreVote,
        shardId: 1,
        from: sender,
        to: target,
        term: term + 1,
        logIndex: 100,
        logTerm: term,
      }),
    );
    rogue.flush();
    await cluster.until(() => nh.stats.refusedMessages > 0, 2000, "the refusal");
    const refused = logs.get(target)!.find((e) => e.event === "message-refused");
    expect(refused).toMatchObject({ level: "warn", shard: 1, replica: target });
    expect(String(refused!.reason)).toContain("preVote is off here");
    // The host still serves: no fatal stop, the shard keeps its leader and takes writes.
    expect(logs.get(target)!.some((e) => e.event === "engine-fatal")).toBe(false);
    await cluster.settle(nh.syncPropose(nh.getNoOpSession(1), put("after", "refusal"), T));
    expect(nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!.term).toBe(term);
    await rogue.stop();
  });

  test("a state machine that throws stops its replica only: the host and its other shards go on", async () => {
    const logs = new Map<number, LogEvent[]>();
    await threeHosts(logs);
    // Shard 1's app throws on a put of the key "boom" (an application bug every replica hits).
    const bomb: CreateStateMachine = () => {
      const sm = new KvStateMachine();
      const update = sm.update.bind(sm);
      sm.update = (entries: SMEntry[]) => {
        if (entries.some((e) => kv.KvCommand.decode(e.cmd).put?.key === "boom"))
          throw new Error("the app blew up");
        return update(entries);
      };
      return sm;
    };
    for (const i of [1, 2, 3]) {
      await cluster.settle(
        cluster.host(i).startReplica(cluster.members([1, 2, 3]), false, bomb, { shardId: 1, replicaId: i }),
      );
    }
    await cluster.startShard(2, [1, 2, 3]);
    const leader = cluster.host(await cluster.waitLeader(1));
    await cluster.waitLeader(2);
    const boom = leader.syncPropose(leader.getNoOpSession(1), put("boom", "x"), T).catch((e) => e);
    const error = await cluster.settle(boom);
    expect(error).toMatchObject({ code: "shardClosed", outcomeUnknown: true });
    expect(leader.stats.replicaFailures).toBe(1);
    // The followers learn that "boom" is committed lazily, from a later message of a leader
    // (docs/architecture.md, "The commit index travels lazily"): the failed leader sends none, so
    // they elect one of themselves, whose no-op commits "boom" again, and it fails in turn. The
    // last replica, alone, never learns the commit: a shard whose app fails on a committed entry
    // is down either way, and it stays down on that host's disk until the app is fixed.
    const failedHosts = () => [1, 2, 3].filter((i) => cluster.host(i).stats.replicaFailures > 0);
    await cluster.until(() => failedHosts().length >= 2, 40 * RTT_MS * 10, "a second replica failing");
    await cluster.run(10 * RTT_MS);
    for (const i of [1, 2, 3]) {
      const nh = cluster.host(i);
      expect(logs.get(i)!.some((e) => e.event === "engine-fatal")).toBe(false);
      const shards = nh.getNodeHostInfo({ skipLogInfo: true }).shards.map((s) => s.shardId);
      if (!failedHosts().includes(i)) {
        expect(shards).toEqual([1, 2]);
        continue;
      }
      expect(nh.stats.replicaFailures).toBe(1);
      const failed = logs.get(i)!.find((e) => e.event === "replica-failed");
      expect(failed).toMatchObject({ level: "error", shard: 1, phase: "applying committed entries" });
      expect(String(failed!.error)).toContain("the app blew up");
      expect(shards).toEqual([2]);
    }
    // Shard 2, on the same hosts and the same engine loop, still takes writes.
    const leader2 = cluster.host(await cluster.waitLeader(2));
    const r = await cluster.settle(leader2.syncPropose(leader2.getNoOpSession(2), put("still", "here"), T));
    expect(r.value).toBe(1);
  });
});
