/**
 * Drummers in one process on one virtual clock: each a real Drummer (NodeHost, DrummerDB,
 * leader loop, API app) over a simulated network and an in-memory log database. Calls between
 * drummers, and from tests, go through each drummer's Hono app (`fetch` routes by address), so
 * they take the same path as over HTTP, minus the socket.
 */
import type { RpcHandler } from "../../src/api/rpc/router.ts";
import type { FetchLike } from "../../src/api/types.ts";
import { drummerCaller } from "../../src/drummer/client.ts";
import type { DrummerMethod } from "../../src/drummer/api/schemas.ts";
import { Drummer } from "../../src/drummer/drummer.ts";
import type { DrummerSettingsInput } from "../../src/drummer/config.ts";
import { ManualEnv } from "../../src/env.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { MasterClient } from "../../src/master/client.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { currentTest, parkIfEnded, type Tracked, track } from "../support/resources.ts";

export const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve)); // env-ok: test driver

export interface GroupMember {
  id: number;
  raftAddress: string;
  apiAddress: string;
  logdb: MemoryLogDB;
  drummer: Drummer | null;
  app: RpcHandler | null;
}

/** A NodeHost in master mode reporting to the group. */
export interface HostMember {
  index: number;
  raftAddress: string;
  apiAddress: string;
  region: string;
  logdb: MemoryLogDB;
  nodehost: NodeHost | null;
  master: MasterClient | null;
}

export type GroupSettings = Omit<DrummerSettingsInput, "drummerId" | "apiAddress" | "deploymentId">;

export class DrummerGroup {
  readonly env: ManualEnv;
  readonly net: SimNetwork;
  readonly members: GroupMember[] = [];
  readonly root = mkdtempSync(join(tmpdir(), "longboat-drummers-"));
  /** Addresses whose API is unreachable (besides stopped drummers). */
  readonly cut = new Set<string>();
  /** Extra apps reachable through fetch (e.g. nothing, or test doubles). */
  readonly extraApps = new Map<string, RpcHandler>();
  readonly logs: Record<string, unknown>[] = [];
  readonly hosts: HostMember[] = [];
  private closed = false;
  private readonly tracked: Tracked;

  constructor(
    seed: number,
    count: number,
    readonly settings: GroupSettings = {},
    readonly deploymentId = 1,
  ) {
    this.env = new ManualEnv(seed);
    this.net = new SimNetwork(this.env, { snapshotDir: join(this.root, "net") });
    for (let id = 1; id <= count; id++) {
      const raftAddress = `10.9.0.${id}:9101`;
      this.members.push({
        id,
        raftAddress,
        apiAddress: `10.9.0.${id}:9001`,
        logdb: new MemoryLogDB({ identity: { raftAddress, deploymentId, formatVersion: 1 }, rng: this.env }),
        drummer: null,
        app: null,
      });
    }
    // Closed after the test (or file) that made it, however it ends; see step().
    this.tracked = track(`DrummerGroup(seed ${seed})`, () => this.close());
  }

  /**
   * Advances virtual time by ms and lets what it made runnable run. Never returns once the
   * group is closed or the test that started the loop (token) ended: a test that timed out
   * must not drive the group on beside the tests after it.
   */
  private async step(ms: number, token: number): Promise<void> {
    this.env.advance(ms);
    await drain();
    if (this.closed) await new Promise<never>(() => {});
    await parkIfEnded(token);
  }

  /** A fetch that reaches running drummers' apps 1 ms away (and fails for stopped or cut ones). */
  readonly fetch: FetchLike = (url, init) => {
    const host = new URL(url).host;
    return new Promise<Response>((resolve, reject) => {
      const signal = init.signal;
      signal?.addEventListener("abort", () => reject(new Error("aborted")));
      this.env.setTimer(1, () => {
        const app = this.members.find((m) => m.apiAddress === host)?.app ?? this.extraApps.get(host);
        if (!app || this.cut.has(host)) return reject(new TypeError(`connection refused: ${host}`));
        Promise.resolve(app.fetch(new Request(url, { ...init, signal: undefined }))).then(
          (res) => this.env.setTimer(1, () => resolve(res)),
          reject,
        );
      });
    });
  };

  get call() {
    return drummerCaller(this.fetch, this.env);
  }

  async start(id: number): Promise<Drummer> {
    const m = this.members[id - 1]!;
    m.logdb.crash();
    const d = new Drummer({
      drummerId: id,
      raftAddress: m.raftAddress,
      apiAddress: m.apiAddress,
      deploymentId: this.deploymentId,
      peers: this.members.map((x) => ({ id: x.id, address: x.raftAddress })),
      dataDir: join(this.root, `d${id}`),
      rttMs: 10,
      env: this.env,
      log: (e) => this.logs.push({ drummer: id, ...e }),
      expert: {
        logdb: m.logdb,
        transport: (registry) => this.net.transport(m.raftAddress, this.deploymentId, registry),
        fetch: this.fetch,
      },
      ...this.settings,
    });
    m.drummer = d;
    m.app = d.api();
    await d.start();
    return d;
  }

  /** Adds (and starts) NodeHost index in master mode, reporting every reportIntervalMs. */
  async startHost(index: number, region = "r1"): Promise<HostMember> {
    let h = this.hosts.find((x) => x.index === index);
    if (!h) {
      const raftAddress = `10.8.0.${index}:7001`;
      h = {
        index,
        raftAddress,
        apiAddress: `10.8.0.${index}:8001`,
        region,
        logdb: new MemoryLogDB({
          identity: { raftAddress, deploymentId: this.deploymentId, formatVersion: 1 },
          rng: this.env,
        }),
        nodehost: null,
        master: null,
      };
      this.hosts.push(h);
    }
    h.logdb.crash();
    const slot = h;
    const nh = new NodeHost({
      nodeHostDir: join(this.root, `h${index}`),
      raftAddress: h.raftAddress,
      rttMs: 10,
      deploymentId: this.deploymentId,
      env: this.env,
      expert: {
        logdb: h.logdb,
        transport: (registry) => this.net.transport(slot.raftAddress, this.deploymentId, registry),
      },
    });
    await nh.ready;
    h.nodehost = nh;
    h.master = new MasterClient({
      nodehost: nh,
      masters: this.members.map((m) => m.apiAddress),
      apps: builtinApps(),
      apiAddress: h.apiAddress,
      region,
      replicaConfig: { electionRtt: 10, heartbeatRtt: 1 },
      timeoutMs: 1000,
      env: this.env,
      fetch: this.fetch,
      log: (e) => this.logs.push({ host: index, ...e }),
    });
    h.master.start();
    return h;
  }

  /** Stops NodeHost index as a crash would (it stops reporting; its saved data stays). */
  async crashHost(index: number): Promise<void> {
    const h = this.hosts.find((x) => x.index === index)!;
    h.master?.stop();
    h.master = null;
    const nh = h.nodehost;
    h.nodehost = null;
    await nh?.stop();
  }

  async startAll(): Promise<void> {
    for (const m of this.members) await this.start(m.id);
  }

  /** Stops a drummer as a crash would (what its log database saved stays). */
  async crash(id: number): Promise<void> {
    const m = this.members[id - 1]!;
    const d = m.drummer;
    m.drummer = null;
    m.app = null;
    await d?.stop();
  }

  /** Runs the world for ms of virtual time in small steps. */
  async run(ms: number, stepMs = 5): Promise<void> {
    const token = currentTest();
    for (let t = 0; t < ms; t += stepMs) await this.step(stepMs, token);
  }

  /** Runs until cond holds (checked every step); throws after maxMs. */
  async until(cond: () => boolean, maxMs: number, what: string): Promise<void> {
    const token = currentTest();
    for (let t = 0; t < maxMs; t += 5) {
      if (cond()) return;
      await this.step(5, token);
    }
    if (!cond())
      throw new Error(`${what}: not within ${maxMs} ms of virtual time (at ${this.env.nowMs()} ms)`);
  }

  leader(): Drummer | undefined {
    return this.members.map((m) => m.drummer).find((d) => d?.loop.leading) ?? undefined;
  }

  /** Calls a method on drummer id's API while the clock runs. */
  async request(
    id: number,
    method: DrummerMethod,
    req: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const p = this.call(this.members[id - 1]!.apiAddress, method, req, { timeoutMs: 3000 });
    let settled = false;
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    const token = currentTest();
    for (let t = 0; t < 5000 && !settled; t += 5) await this.step(5, token);
    return p;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tracked.release();
    for (const h of this.hosts) await this.crashHost(h.index);
    for (const m of this.members) await this.crash(m.id);
    rmSync(this.root, { recursive: true, force: true });
  }
}
