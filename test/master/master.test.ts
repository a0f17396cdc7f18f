/**
 * The master client against a scripted drummer: it reports, finds the leader, carries out each
 * decision once and in order, reports the results, and keeps the NodeHost serving while no
 * drummer answers.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FetchLike } from "../../src/api/types.ts";
import { DRUMMER_METHOD_TYPES } from "../../src/drummer/api/methods.ts";
import { type Decision, DecisionKind } from "../../src/drummer/types.ts";
import { ManualEnv } from "../../src/env.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { MasterClient } from "../../src/master/client.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { currentTest, parkIfEnded } from "../support/resources.ts";
import { decision } from "../drummer/helpers.ts";

const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve)); // env-ok: test driver
const Report = DRUMMER_METHOD_TYPES.Report;

/** Drummers as a script: each answers reports with what `reply` returns (or is down). */
class ScriptedDrummers {
  readonly received: { address: string; request: Record<string, unknown> }[] = [];
  readonly down = new Set<string>();
  reply: (address: string) => {
    requests?: Decision[];
    leaderApiAddress?: string;
    reportIntervalMs?: number;
    resendMembers?: boolean;
  } = () => ({});

  readonly fetch: FetchLike = async (url, init) => {
    const address = new URL(url).host;
    if (this.down.has(address)) throw new TypeError(`connection refused: ${address}`);
    const bytes = new Uint8Array(init.body as ArrayBuffer);
    const request = Report.request.toObject(Report.request.decode(bytes), { defaults: true, arrays: true });
    this.received.push({ address, request });
    const body = Report.response
      .encode(Report.response.fromObject(this.reply(address) as Record<string, unknown>))
      .finish();
    return new Response(body, { status: 200, headers: { "content-type": "application/proto" } });
  };
}

class Bench {
  readonly env = new ManualEnv(3);
  readonly net = new SimNetwork(this.env);
  readonly root = mkdtempSync(join(tmpdir(), "longboat-master-"));
  readonly drummers = new ScriptedDrummers();
  nh!: NodeHost;
  master!: MasterClient;
  readonly address = "10.7.0.1:7001";

  async start(masters = ["d1:9001", "d2:9001"]): Promise<void> {
    this.nh = new NodeHost({
      nodeHostDir: this.root,
      raftAddress: this.address,
      rttMs: 10,
      env: this.env,
      expert: {
        logdb: new MemoryLogDB({
          identity: { raftAddress: this.address, deploymentId: 1, formatVersion: 1 },
        }),
        transport: (registry) => this.net.transport(this.address, 1, registry),
      },
    });
    await this.nh.ready;
    this.master = new MasterClient({
      nodehost: this.nh,
      masters,
      apps: builtinApps(),
      apiAddress: "10.7.0.1:8001",
      region: "eu",
      replicaConfig: { electionRtt: 10, heartbeatRtt: 1 },
      reportIntervalMs: 100,
      timeoutMs: 500,
      env: this.env,
      fetch: this.drummers.fetch,
    });
    this.master.start();
  }

  async run(ms: number): Promise<void> {
    const token = currentTest();
    for (let t = 0; t < ms; t += 5) {
      this.env.advance(5);
      await drain();
      await parkIfEnded(token); // a test that timed out stops here (test/support/resources.ts)
    }
  }

  shards(): { shardId: number; replicaId: number; appliedIndex: number }[] {
    return this.nh.getNodeHostInfo({ skipLogInfo: true }).shards;
  }

  async close(): Promise<void> {
    this.master.stop();
    await this.nh.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

const create = (shardId: number, decisionId: number, app = "kv"): Decision =>
  decision({
    decisionId,
    kind: DecisionKind.Create,
    shardId,
    replicaId: 1,
    replicaAddress: "10.7.0.1:7001",
    executorAddress: "10.7.0.1:7001",
    app,
    initialMembers: [{ replicaId: 1, raftAddress: "10.7.0.1:7001" }],
  });

let bench: Bench;
afterEach(() => bench.close());

describe("master client", () => {
  test("reports its address, region, API address, apps and replicas; then goes to the leader the reply names", async () => {
    bench = new Bench();
    bench.drummers.reply = () => ({ leaderApiAddress: "d2:9001", reportIntervalMs: 200 });
    await bench.start();
    await bench.run(50);
    expect(bench.drummers.received[0]!.address).toBe("d1:9001");
    expect(bench.drummers.received[0]!.request).toMatchObject({
      raftAddress: "10.7.0.1:7001",
      apiAddress: "10.7.0.1:8001",
      region: "eu",
      deploymentId: 1,
    });
    expect(bench.drummers.received[0]!.request.apps).toEqual(builtinApps().names());
    await bench.run(400);
    expect(bench.drummers.received.slice(1).every((r) => r.address === "d2:9001")).toBe(true);
    expect(bench.master.reportIntervalMs).toBe(200);
  });

  test("each replica's report carries its term and commit index (the dashboard's shard table shows the leader's)", async () => {
    bench = new Bench();
    bench.drummers.reply = () => ({ requests: [create(1, 50)] });
    await bench.start();
    await bench.run(500);
    const nh = bench.nh;
    await Promise.all([
      nh.syncPropose(nh.getNoOpSession(1), new Uint8Array([10, 3, 10, 1, 97]), { timeoutMs: 500 }),
      bench.run(200),
    ]);
    const info = nh.getNodeHostInfo({ skipLogInfo: true }).shards[0]!;
    expect(info.term).toBeGreaterThan(0);
    expect(info.commitIndex).toBeGreaterThan(1);
    await bench.run(200); // a report after the write
    const last = bench.drummers.received.at(-1)!.request.replicas as Record<string, unknown>[];
    expect(last[0]).toMatchObject({
      shardId: 1,
      isLeader: true,
      term: info.term,
      commitIndex: info.commitIndex,
    });
  });

  test("two decisions for this host in one reply are both carried out, in order (§11.5)", async () => {
    bench = new Bench();
    bench.drummers.reply = () => ({ requests: [create(1, 10), create(2, 11)] });
    await bench.start();
    await bench.run(500);
    expect(bench.shards().map((s) => s.shardId)).toEqual([1, 2]);
  });

  test("a decision delivered again (a lost reply, a new leader) is carried out once; its result is reported until received (§11.6)", async () => {
    bench = new Bench();
    let stopped = 0;
    const kill = decision({
      decisionId: 20,
      kind: DecisionKind.Kill,
      shardId: 7,
      replicaId: 5,
      replicaAddress: "10.7.0.1:7001",
      executorAddress: "10.7.0.1:7001",
    });
    bench.drummers.reply = () => ({ requests: [kill] });
    await bench.start();
    const original = bench.nh.stopReplica.bind(bench.nh);
    bench.nh.stopReplica = (s, r) => {
      stopped++;
      original(s, r);
    };
    await bench.run(600);
    const results = bench.drummers.received.map(
      (r) => r.request.results as { decisionId: number; ok: boolean; message: string }[],
    );
    const withResult = results.filter((r) => r.length > 0);
    expect(withResult.length).toBe(1); // sent once, then acknowledged by the reply
    expect(withResult[0]).toEqual([
      { decisionId: 20, ok: true, message: "replica 5 stopped and its data removed" },
    ]);
    expect(stopped).toBe(0); // it was not running; nothing ran twice either
    expect(bench.drummers.received.length).toBeGreaterThan(3);
  });

  test("an unknown app fails the decision with a message naming the app", async () => {
    bench = new Bench();
    bench.drummers.reply = () => ({ requests: [create(3, 30, "ledger")] });
    await bench.start();
    await bench.run(300);
    const sent = bench.drummers.received.flatMap(
      (r) => r.request.results as { message: string; ok: boolean }[],
    );
    expect(sent[0]!.ok).toBe(false);
    expect(sent[0]!.message).toMatch(/unknown app "ledger"/);
  });

  test("while no drummer answers it keeps trying every one, and its replicas keep serving", async () => {
    bench = new Bench();
    bench.drummers.reply = () => ({ requests: [create(1, 40)] });
    await bench.start();
    await bench.run(500);
    expect(bench.shards().length).toBe(1);
    bench.drummers.down.add("d1:9001");
    bench.drummers.down.add("d2:9001");
    const before = bench.master.counts.unanswered;
    await bench.run(1000);
    expect(bench.master.counts.unanswered).toBeGreaterThan(before + 3);
    expect(bench.master.lastError).toMatch(/connection refused/);
    const nh = bench.nh;
    const put = nh.syncPropose(nh.getNoOpSession(1), new Uint8Array([10, 3, 10, 1, 97]), { timeoutMs: 500 });
    let ok = false;
    put.then(() => (ok = true));
    await bench.run(200);
    expect(ok).toBe(true);
    bench.drummers.down.clear();
    const answered = bench.master.counts.answered;
    await bench.run(300);
    expect(bench.master.counts.answered).toBeGreaterThan(answered);
  });
  test("members the leader acknowledged are left out of later reports; resendMembers brings them all back", async () => {
    bench = new Bench();
    let resend = false;
    bench.drummers.reply = () => {
      const r = { requests: [create(1, 50)], resendMembers: resend };
      resend = false;
      return r;
    };
    await bench.start();
    await bench.run(600);
    type Sent = { shardId: number; members: unknown[]; pending: boolean; configChangeId: number };
    const replicasOf = (i: number) => bench.drummers.received[i]!.request.replicas as Sent[];
    const running = bench.drummers.received.map((_, i) => i).filter((i) => replicasOf(i).length > 0);
    expect(running.length).toBeGreaterThan(2);
    const first = replicasOf(running[0]!)[0]!;
    expect(first.members).toEqual([{ replicaId: 1, raftAddress: "10.7.0.1:7001" }]);
    // Every later report at the same config-change index leaves the members out (not pending).
    for (const i of running.slice(1)) {
      const r = replicasOf(i)[0]!;
      expect(r.configChangeId).toBe(first.configChangeId);
      expect(r.members).toEqual([]);
      expect(r.pending).toBe(false);
    }
    // The leader lost them (a new leader): the report after its request carries them again, once.
    resend = true;
    const before = bench.drummers.received.length;
    await bench.run(250);
    const after = bench.drummers.received
      .slice(before)
      .map((r) => (r.request.replicas as Sent[])[0]!.members);
    expect(after.length).toBeGreaterThanOrEqual(3);
    expect(after[0]).toEqual([]); // the report the drummer answered with resendMembers
    expect(after[1]).toEqual([{ replicaId: 1, raftAddress: "10.7.0.1:7001" }]);
    expect(after[2]).toEqual([]);
  });

  test("members sent in a report no drummer answered are sent again", async () => {
    bench = new Bench();
    bench.drummers.reply = () => ({ requests: [create(1, 60)] });
    await bench.start();
    await bench.run(600);
    bench.drummers.down.add("d1:9001");
    bench.drummers.down.add("d2:9001");
    bench.master.membersSent.clear(); // as after a restart: nothing is known to the leader
    await bench.run(300);
    bench.drummers.down.clear();
    const before = bench.drummers.received.length;
    await bench.run(150);
    const next = bench.drummers.received[before]!.request.replicas as { members: unknown[] }[];
    expect(next[0]!.members).toEqual([{ replicaId: 1, raftAddress: "10.7.0.1:7001" }]);
  });
});
