/**
 * Drummers and NodeHosts in master mode, in one process on a virtual clock: shards are placed,
 * a dead NodeHost's replicas are rebuilt elsewhere, a drummer leader crash mid-repair does not
 * stop the repair, and a NodeHost that comes back has its zombie replicas killed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encodeKvCommand, encodeKvQuery, decodeKvQueryResult } from "../../src/statemachine/kv.ts";
import { DecisionKind, DecisionState } from "../../src/drummer/types.ts";
import type { LongboatError } from "../../src/engine/errors.ts";
import { DrummerGroup, type HostMember } from "./group.ts";

const SHARDS = [1, 2, 3];
const text = new TextEncoder();

describe("drummers rebuild a dead NodeHost's replicas", () => {
  const g = new DrummerGroup(Number(process.env.LONGBOAT_TEST_SEED ?? 21), 3, {
    deadTimeoutMs: 2000,
    reportIntervalMs: 200,
    passIntervalMs: 50,
    maxRepairs: 2,
  });
  const members = (shardId: number) =>
    g
      .leader()!
      .db.state.views.get(shardId)
      ?.members.map((m) => m.raftAddress) ?? [];
  const running = (shardId: number) =>
    g.hosts.filter((h) =>
      h.nodehost
        ?.getNodeHostInfo({ skipLogInfo: true })
        .shards.some((s) => s.shardId === shardId && s.appliedIndex > 0),
    );
  const whole = () =>
    SHARDS.every(
      (s) =>
        members(s).length === 3 &&
        running(s).length === 3 &&
        members(s).every((a) => running(s).some((h) => h.raftAddress === a)),
    );

  beforeAll(async () => {
    await g.startAll();
    await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
    for (const i of [1, 2, 3, 4]) await g.startHost(i, i <= 2 ? "eu" : "us");
    for (const shardId of SHARDS) await g.request(1, "CreateShard", { shardId, app: "kv", replicaCount: 3 });
    await g.request(2, "Bootstrap", {});
    await g.until(() => g.leader() !== undefined && whole(), 20_000, "every shard placed and running");
  }, 60_000);
  afterAll(() => g.close());

  /** A put through host, retried while the shard answers "not applied" (no leader yet). */
  async function put(host: HostMember, shardId: number, key: string, value: string): Promise<void> {
    const nh = host.nodehost!;
    const cmd = encodeKvCommand({ op: "put", key, value: text.encode(value) });
    for (let attempt = 0; attempt < 20; attempt++) {
      const p = nh.syncPropose(nh.getNoOpSession(shardId), cmd, { timeoutMs: 2000 });
      let outcome: "ok" | "retry" | null = null;
      p.then(
        () => (outcome = "ok"),
        (e: LongboatError) => {
          if (e.code !== "shardNotReady") throw e;
          outcome = "retry";
        },
      );
      await g.until(() => outcome !== null, 5000, "the write");
      if (outcome === "ok") return;
      await g.run(50);
    }
    throw new Error(`shard ${shardId} took no write`);
  }

  test("every shard runs three replicas on distinct hosts, and takes writes", async () => {
    for (const s of SHARDS) {
      expect(new Set(members(s)).size).toBe(3);
      await put(running(s)[0]!, s, "k", `v${s}`);
    }
  });

  test("a NodeHost dies for good: each of its shards returns to three running members, at most 2 repairs at once", async () => {
    const victim = g.hosts.find((h) => SHARDS.some((s) => members(s).includes(h.raftAddress)))!;
    const hit = SHARDS.filter((s) => members(s).includes(victim.raftAddress));
    await g.crashHost(victim.index);
    let peak = 0;
    await g.until(
      () => {
        peak = Math.max(peak, g.leader()?.db.state.repairing.size ?? 0);
        const done = g.leader()?.db.state.repairing.size === 0;
        return done && hit.every((s) => !members(s).includes(victim.raftAddress)) && whole();
      },
      60_000,
      "the repair of every shard the dead host held",
    );
    expect(peak).toBeLessThanOrEqual(2);
    const s = g.leader()!.db.state;
    expect(s.counters.repairsDone).toBe(hit.length);
    expect(s.repairing.size).toBe(0);
    for (const shardId of hit) {
      const host = running(shardId)[0]!;
      const nh = host.nodehost!;
      const read = nh.syncRead(shardId, encodeKvQuery({ op: "get", key: "k" }), { timeoutMs: 2000 });
      let answer: Uint8Array | null = null;
      read.then((a) => (answer = a));
      await g.until(() => answer !== null, 5000, "a read");
      expect(new TextDecoder().decode(decodeKvQueryResult(answer!).value)).toBe(`v${shardId}`);
    }
    // Back again: the host's old replicas are zombies, stopped and their data removed.
    await g.startHost(victim.index, victim.region);
    await g.until(
      () => {
        const st = g.leader()?.db.state;
        const kills =
          st?.finished.filter((d) => d.kind === DecisionKind.Kill && d.state === DecisionState.Done) ?? [];
        return kills.length >= hit.length;
      },
      20_000,
      "the zombies' kills",
    );
    const left = victim.nodehost!.getNodeHostInfo();
    for (const shardId of hit) {
      expect(
        left.logsOnDisk.some(
          (k) => k.shardId === shardId && members(shardId).every((a) => a !== victim.raftAddress),
        ),
      ).toBe(false);
    }
  }, 120_000);

  test("the drummer leader crashes mid-repair; the new leader completes the repair", async () => {
    const victim = g.hosts.find(
      (h) => h.nodehost !== null && SHARDS.some((s) => members(s).includes(h.raftAddress)),
    )!;
    await g.crashHost(victim.index);
    await g.until(() => (g.leader()?.db.state.repairing.size ?? 0) > 0, 20_000, "a repair to start");
    const old = g.leader()!;
    await g.crash(old.settings.drummerId);
    await g.until(
      () =>
        g.leader() !== undefined && SHARDS.every((s) => !members(s).includes(victim.raftAddress)) && whole(),
      60_000,
      "the repair under the new leader",
    );
    expect(g.leader()!.settings.drummerId).not.toBe(old.settings.drummerId);
    await g.start(old.settings.drummerId);
  }, 120_000);
  test("a new drummer leader asks for the members hosts leave out; then they are left out again", async () => {
    await g.run(1000);
    const live = g.hosts.filter(
      (h) => h.master !== null && (h.nodehost?.getNodeHostInfo().shards.length ?? 0) > 0,
    );
    expect(live.length).toBeGreaterThan(2);
    // Steady: the leader has every replica's members, the hosts leave them out.
    for (const h of live)
      expect(h.master!.membersSent.size).toBe(h.nodehost!.getNodeHostInfo().shards.length);
    const resent = live.map((h) => h.master!.counts.membersResent);
    const old = g.leader()!;
    await g.crash(old.settings.drummerId);
    await g.until(() => g.leader() !== undefined, 10_000, "a new leader");
    await g.run(1500); // several report intervals
    const book = g.leader()!.reports;
    for (const [i, h] of live.entries()) {
      expect(h.master!.counts.membersResent).toBeGreaterThan(resent[i]!);
      const seen = book.hosts.get(h.raftAddress)!;
      for (const r of seen.replicas) if (!r.pending) expect(r.members.length).toBeGreaterThan(0);
      expect(h.master!.membersSent.size).toBe(h.nodehost!.getNodeHostInfo().shards.length);
    }
    expect(whole()).toBe(true);
    await g.start(old.settings.drummerId);
  }, 120_000);
});
