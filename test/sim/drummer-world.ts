/**
 * The simulated world of a drummer seed: three drummers (each a real Drummer over the
 * simulated network and an in-memory log database) and NodeHosts in master mode, on one
 * ManualEnv. Drummer API calls go through each drummer's Hono app (the same path as HTTP,
 * minus the socket), delayed, lost and cut like the network's links. Clients run the kv
 * workload; the safety oracles watch the managed shards and the DrummerDB shard.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RpcHandler } from "../../src/api/rpc/router.ts";
import type { FetchLike } from "../../src/api/types.ts";
import { DRUMMER_SHARD_ID } from "../../src/drummer/config.ts";
import { Drummer } from "../../src/drummer/drummer.ts";
import { ManualEnv } from "../../src/env.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { MasterClient } from "../../src/master/client.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { AppRegistry, builtinApps } from "../../src/statemachine/registry.ts";
import type { IStateMachine, SMEntry } from "../../src/statemachine/types.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { drawDrummerSwarm, type DrummerSwarm, SIM_DRUMMER } from "./drummer-swarm.ts";
import { type AppliedRecord, fnv1a, Oracles, SimViolation } from "./oracles.ts";
import type { WorkloadHost, WorkloadWorld } from "./workload.ts";
import { drivenBy, SIM_RTT_MS } from "./world.ts";

const encoder = new TextEncoder();

/** How often the DrummerDB oracles (hash, committed entries) run, in virtual ms. */
export const DRUMMER_CHECK_MS = 50;

export interface DrummerSlot {
  id: number;
  raftAddress: string;
  apiAddress: string;
  logdb: MemoryLogDB;
  drummer: Drummer | null;
  app: RpcHandler | null;
  restartAtMs: number;
}

export interface DHostSlot extends WorkloadHost {
  address: string;
  apiAddress: string;
  region: string;
  logdb: MemoryLogDB;
  master: MasterClient | null;
  /** Dead for good: never restarts. */
  dead: boolean;
  restartAtMs: number;
}

export interface DrummerWorldStats {
  hostKills: number;
  hostBounces: number;
  drummerCrashesMidRepair: number;
  leaderIsolations: number;
  apiCallsLost: number;
}

export class DrummerWorld implements WorkloadWorld {
  readonly env: ManualEnv;
  readonly swarm: DrummerSwarm;
  readonly net: SimNetwork;
  readonly oracles = new Oracles();
  /** The oracles of the DrummerDB shard (its shard id may equal a managed shard's). */
  readonly drummerOracles = new Oracles();
  readonly root: string;
  readonly drummers: DrummerSlot[] = [];
  readonly hosts: DHostSlot[] = [];
  readonly stats: DrummerWorldStats = {
    hostKills: 0,
    hostBounces: 0,
    drummerCrashesMidRepair: 0,
    leaderIsolations: 0,
    apiCallsLost: 0,
  };
  newLeaders: { host: WorkloadHost; shardId: number }[] = [];
  violation: SimViolation | null = null;
  faultsOn = true;
  /** Virtual time when setup ended (the script's times count from it). */
  startMs = 0;
  traceDigest = 0x811c9dc5;
  private applied: AppliedRecord[] = [];
  private drummerCheckedMs = 0;
  private isolatedUntilMs = -1;
  private isolated: string | null = null;
  private killed = false;
  private bounced = false;
  private leaderCrashed = false;

  constructor(
    readonly seed: number,
    readonly trace: ((line: string) => void) | null,
  ) {
    this.env = new ManualEnv(seed);
    this.swarm = drawDrummerSwarm(new ManualEnv(seed + 3 * 2 ** 32));
    this.root = mkdtempSync(join(tmpdir(), `longboat-dsim-${seed}-`));
    this.net = new SimNetwork(this.env, { snapshotDir: join(this.root, "net") });
    const s = this.swarm;
    this.net.setDefaultLink({
      lossRate: s.lossRate,
      duplicateRate: s.duplicateRate,
      delayMsMin: s.delayMsMin,
      delayMsMax: s.delayMsMax,
      reorder: s.reorder,
    });
    for (let id = 1; id <= 3; id++) {
      const raftAddress = `10.1.0.${id}:9101`;
      this.drummers.push({
        id,
        raftAddress,
        apiAddress: `10.1.0.${id}:9001`,
        logdb: this.logdb(raftAddress),
        drummer: null,
        app: null,
        restartAtMs: Infinity,
      });
    }
    for (let index = 1; index <= s.hostCount; index++) {
      const address = `10.2.0.${index}:7001`;
      this.hosts.push({
        index,
        address,
        apiAddress: `10.2.0.${index}:8001`,
        region: index % 2 === 0 ? "even" : "odd",
        logdb: this.logdb(address),
        nh: null,
        master: null,
        fatal: false,
        dead: false,
        restartAtMs: Infinity,
      });
    }
  }

  private logdb(raftAddress: string): MemoryLogDB {
    return new MemoryLogDB({ identity: { raftAddress, deploymentId: 1, formatVersion: 1 }, rng: this.env });
  }

  log(line: string): void {
    const text = `${String(this.env.nowMs()).padStart(6)}ms ${line}`;
    this.traceDigest = fnv1a(encoder.encode(text), this.traceDigest);
    this.trace?.(text);
  }

  rand(): number {
    return this.env.random();
  }

  // ---- the Drummer API over the simulated network ----

  /** Calls from `from` (a raft address) to a drummer's API: delayed, lost and cut like its links. */
  fetchFrom(from: string): FetchLike {
    return (url, init) =>
      new Promise<Response>((resolve, reject) => {
        const to = this.drummers.find((d) => d.apiAddress === new URL(url).host);
        init.signal?.addEventListener("abort", () => reject(new Error("aborted")));
        const fail = (why: string) => reject(new TypeError(why));
        const delay = () =>
          this.swarm.delayMsMin + this.env.nextInt(this.swarm.delayMsMax - this.swarm.delayMsMin + 1) + 1;
        const lost = () => this.faultsOn && this.rand() < this.swarm.lossRate;
        this.env.setTimer(delay(), () => {
          if (!to?.app || this.net.isCut(from, to.raftAddress)) return fail(`connection refused: ${url}`);
          if (lost()) {
            this.stats.apiCallsLost++;
            return fail("connection reset (request lost)");
          }
          Promise.resolve(to.app.fetch(new Request(url, { ...init, signal: undefined }))).then((res) => {
            this.env.setTimer(delay(), () => {
              if (this.net.isCut(to.raftAddress, from) || lost()) {
                this.stats.apiCallsLost++;
                return fail("connection reset (answer lost)");
              }
              resolve(res);
            });
          }, reject);
        });
      });
  }

  // ---- drummers ----

  async startDrummer(d: DrummerSlot): Promise<void> {
    d.logdb.crash();
    const drummer = new Drummer({
      drummerId: d.id,
      raftAddress: d.raftAddress,
      apiAddress: d.apiAddress,
      deploymentId: 1,
      peers: this.drummers.map((x) => ({ id: x.id, address: x.raftAddress })),
      dataDir: join(this.root, `d${d.id}`),
      rttMs: SIM_RTT_MS,
      env: this.env,
      maxRepairs: this.swarm.maxRepairs,
      ...SIM_DRUMMER,
      log: (e) => {
        if (e.level === "warn" || e.level === "error" || String(e.event).startsWith("drummer-leader")) {
          this.log(`drummer ${d.id} ${String(e.event)} ${JSON.stringify(e).slice(0, 300)}`);
        }
      },
      expert: {
        logdb: d.logdb,
        transport: (registry) => this.net.transport(d.raftAddress, 1, registry),
        fetch: this.fetchFrom(d.raftAddress),
      },
    });
    d.drummer = drummer;
    d.app = drummer.api();
    // A restart recovers the drummer shard's snapshot in steps on the simulated clock.
    await drivenBy(this.env, drummer.start(), () => false);
    this.log(`drummer ${d.id} started`);
  }

  async crashDrummer(d: DrummerSlot, downMs: number, why: string): Promise<void> {
    const drummer = d.drummer;
    if (!drummer) return;
    d.drummer = null;
    d.app = null;
    d.restartAtMs = this.env.nowMs() + downMs;
    this.log(`crash drummer ${d.id} (${why}), restart in ${downMs}ms`);
    await drummer.stop();
    d.logdb.crash();
    this.checkDrummerCommitted(d);
  }

  leader(): Drummer | undefined {
    return this.drummers.map((d) => d.drummer).find((x) => x?.loop.leading) ?? undefined;
  }

  // ---- NodeHosts ----

  async startHost(h: DHostSlot): Promise<void> {
    this.shardsCache.atMs = -1;
    h.logdb.crash();
    const nh = new NodeHost({
      nodeHostDir: join(this.root, `h${h.index}`),
      raftAddress: h.address,
      rttMs: SIM_RTT_MS,
      env: this.env,
      listener: {
        leaderUpdated: (info) => this.onLeader(h, info.shardId, info.replicaId, info.leaderId, info.term),
      },
      expert: { logdb: h.logdb, transport: (registry) => this.net.transport(h.address, 1, registry) },
    });
    await nh.ready;
    h.nh = nh;
    h.master = new MasterClient({
      nodehost: nh,
      masters: this.drummers.map((d) => d.apiAddress),
      apps: this.recordingApps(h),
      apiAddress: h.apiAddress,
      region: h.region,
      replicaConfig: { electionRtt: 10, heartbeatRtt: 1, checkQuorum: true, preVote: true },
      timeoutMs: 500,
      reportIntervalMs: SIM_DRUMMER.reportIntervalMs,
      env: this.env,
      fetch: this.fetchFrom(h.address),
      log: (e) => {
        if (e.event === "master-decision")
          this.log(`host ${h.index}: ${String(e.what)} (${String(e.reason)}): ${String(e.message)}`);
      },
    });
    h.master.start();
    this.log(`host ${h.index} started`);
  }

  async crashHost(h: DHostSlot, downMs: number, why: string): Promise<void> {
    const nh = h.nh;
    if (nh === null) return;
    this.shardsCache.atMs = -1;
    h.nh = null;
    h.master?.stop();
    h.master = null;
    h.restartAtMs = h.dead ? Infinity : this.env.nowMs() + downMs;
    this.log(`crash host ${h.index} (${why})${h.dead ? " for good" : `, restart in ${downMs}ms`}`);
    await nh.stop();
    h.logdb.crash();
  }

  private onLeader(h: DHostSlot, shardId: number, replicaId: number, leaderId: number, term: number): void {
    this.log(`host ${h.index} shard ${shardId} replica ${replicaId}: leader ${leaderId} term ${term}`);
    if (leaderId === replicaId && this.newLeaders.length < 64) this.newLeaders.push({ host: h, shardId });
    try {
      this.oracles.onLeader(shardId, replicaId, leaderId, term);
    } catch (e) {
      if (e instanceof SimViolation && this.violation === null) this.violation = e;
    }
  }

  /** The kv app, recording what each instance applies (session and applied oracles). */
  private recordingApps(h: DHostSlot): AppRegistry {
    const kv = builtinApps().get("kv");
    const apps = new AppRegistry();
    apps.register("kv", (shardId, replicaId) => {
      const sm = kv(shardId, replicaId) as IStateMachine;
      const rec: AppliedRecord = {
        shardId,
        replicaId,
        host: h.index,
        pending: [],
        lastApplied: 0,
        seen: new Set(),
        closed: false,
      };
      this.applied.push(rec);
      return {
        update: (entries: SMEntry[]) => {
          for (const e of entries) {
            try {
              this.oracles.onApply(rec, e.index, e.cmd);
            } catch (err) {
              if (!(err instanceof SimViolation)) throw err;
              this.violation ??= err;
            }
          }
          return sm.update(entries);
        },
        lookup: (q) => sm.lookup(q),
        saveSnapshot: (sink) => sm.saveSnapshot(sink),
        recoverFromSnapshot: (payload) => {
          rec.seen.clear();
          rec.pending = [];
          rec.lastApplied = 0;
          sm.recoverFromSnapshot(payload);
        },
        hash: () => sm.hash(),
        close: () => {
          rec.closed = true;
          sm.close();
        },
      };
    });
    return apps;
  }

  running(): DHostSlot[] {
    return this.hosts.filter((h) => h.nh !== null);
  }

  private shardsCache = { atMs: -1, byHost: new Map<number, { shardId: number; replicaId: number }[]>() };

  /** Shards a host runs now (with its replica ids); read once per virtual millisecond. */
  shardsOn(h: DHostSlot): { shardId: number; replicaId: number }[] {
    if (this.shardsCache.atMs !== this.env.nowMs())
      this.shardsCache = { atMs: this.env.nowMs(), byHost: new Map() };
    let shards = this.shardsCache.byHost.get(h.index);
    if (shards === undefined) {
      shards = (h.nh?.getNodeHostInfo({ skipLogInfo: true }).shards ?? []).map((s) => ({
        shardId: s.shardId,
        replicaId: s.replicaId,
      }));
      this.shardsCache.byHost.set(h.index, shards);
    }
    return shards;
  }

  pickHostFor(shardId: number): DHostSlot | undefined {
    const candidates = this.running().filter((h) => this.shardsOn(h).some((s) => s.shardId === shardId));
    if (candidates.length === 0) return undefined;
    return candidates[this.env.nextInt(candidates.length)];
  }

  // ---- the script ----

  /** Runs the seed's scripted faults due now; restarts what is due. */
  async injectFaults(): Promise<void> {
    const t = this.env.nowMs() - this.startMs;
    const s = this.swarm;
    if (this.faultsOn && !this.killed && t >= s.killAtMs) await this.killOneHost();
    if (this.faultsOn && !this.bounced && s.bounceAtMs > 0 && t >= s.bounceAtMs) await this.bounceOneHost();
    const leader = this.leader();
    if (
      this.faultsOn &&
      s.crashLeaderMidRepair &&
      !this.leaderCrashed &&
      leader &&
      leader.db.state.repairing.size > 0
    ) {
      this.leaderCrashed = true;
      this.stats.drummerCrashesMidRepair++;
      const slot = this.drummers.find((d) => d.drummer === leader)!;
      await this.crashDrummer(
        slot,
        s.leaderDownMs,
        `leader, mid-repair of shards ${[...leader.db.state.repairing].join(",")}`,
      );
    }
    if (
      this.faultsOn &&
      this.isolated === null &&
      s.isolateLeaderAtMs > 0 &&
      t >= s.isolateLeaderAtMs &&
      this.isolatedUntilMs < 0 &&
      leader
    ) {
      const slot = this.drummers.find((d) => d.drummer === leader)!;
      this.isolated = slot.raftAddress;
      this.isolatedUntilMs = this.env.nowMs() + s.isolateMs;
      this.net.isolate(slot.raftAddress);
      this.stats.leaderIsolations++;
      this.log(`isolate drummer ${slot.id} (the leader) for ${s.isolateMs}ms`);
    }
    if (this.isolated !== null && this.env.nowMs() >= this.isolatedUntilMs) this.endIsolation();
    await this.restartDue();
  }

  private async killOneHost(): Promise<void> {
    this.killed = true;
    const views = this.leader()?.db.state.views;
    const holding = this.running().filter((h) =>
      [...(views?.values() ?? [])].some((v) => v.members.some((m) => m.raftAddress === h.address)),
    );
    const victim = holding[this.env.nextInt(Math.max(1, holding.length))] ?? this.running()[0];
    if (!victim) return;
    victim.dead = true;
    this.stats.hostKills++;
    await this.crashHost(victim, 0, "dies for good");
  }

  private async bounceOneHost(): Promise<void> {
    this.bounced = true;
    const alive = this.running().filter((h) => !h.dead);
    const h = alive[this.env.nextInt(Math.max(1, alive.length))];
    if (!h) return;
    this.stats.hostBounces++;
    await this.crashHost(h, this.swarm.bounceDownMs, "crash and return within the dead timeout");
  }

  private endIsolation(): void {
    if (this.isolated !== null) {
      this.net.unisolate(this.isolated);
      this.log(`isolation of ${this.isolated} ends`);
    }
    this.isolated = null;
  }

  async restartDue(): Promise<void> {
    const now = this.env.nowMs();
    for (const d of this.drummers) {
      if (d.drummer === null && d.restartAtMs <= now) {
        d.restartAtMs = Infinity;
        await this.startDrummer(d);
      }
    }
    for (const h of this.hosts) {
      if (h.nh === null && !h.dead && h.restartAtMs <= now) {
        h.restartAtMs = Infinity;
        await this.startHost(h);
      }
    }
  }

  /** Ends the faults: clean links, no isolation, crashed drummers and NodeHosts back now (the dead one stays dead). */
  async stopFaults(): Promise<void> {
    this.faultsOn = false;
    this.endIsolation();
    this.net.heal();
    this.net.setDefaultLink({ lossRate: 0, duplicateRate: 0, delayMsMin: 1, delayMsMax: 3, reorder: false });
    for (const d of this.drummers) if (d.drummer === null) d.restartAtMs = this.env.nowMs();
    for (const h of this.hosts) if (h.nh === null && !h.dead) h.restartAtMs = this.env.nowMs();
    await this.restartDue();
    this.log("heal: faults stopped");
  }

  // ---- oracles ----

  check(): void {
    if (this.violation) throw this.violation;
    for (const h of this.running()) {
      for (const s of this.shardsOn(h)) {
        const hash = h.nh!.stateHash(s.shardId);
        this.oracles.onStateHash(
          s.shardId,
          hash.appliedIndex,
          hash.hash,
          `replica ${s.replicaId} on host ${h.index}`,
        );
        this.oracles.checkCommitted(h.index, h.logdb, s.shardId, s.replicaId);
      }
    }
    for (const rec of this.applied) this.oracles.checkApplied(rec);
    this.applied = this.applied.filter((r) => !r.closed);
    // DrummerDB's hash encodes its whole state: compared every DRUMMER_CHECK_MS, not every step.
    if (this.env.nowMs() - this.drummerCheckedMs < DRUMMER_CHECK_MS) return;
    this.drummerCheckedMs = this.env.nowMs();
    for (const d of this.drummers) {
      if (!d.drummer) continue;
      const hash = d.drummer.nodehost.stateHash(DRUMMER_SHARD_ID);
      this.drummerOracles.onStateHash(DRUMMER_SHARD_ID, hash.appliedIndex, hash.hash, `drummer ${d.id}`);
      this.checkDrummerCommitted(d);
    }
  }

  private checkDrummerCommitted(d: DrummerSlot): void {
    try {
      this.drummerOracles.checkCommitted(100 + d.id, d.logdb, DRUMMER_SHARD_ID, d.id);
    } catch (e) {
      if (!(e instanceof SimViolation)) throw e;
      this.violation ??= e;
    }
  }

  /** A host's replica applied index of shardId, or null when it does not run it. */
  appliedOn(h: DHostSlot, shardId: number): number | null {
    try {
      return h.nh!.stateHash(shardId).appliedIndex;
    } catch (e) {
      if (e instanceof LongboatError) return null;
      throw e;
    }
  }

  async shutdown(): Promise<void> {
    for (const h of this.hosts) {
      h.master?.stop();
      const nh = h.nh;
      h.nh = null;
      await nh?.stop();
    }
    for (const d of this.drummers) {
      const drummer = d.drummer;
      d.drummer = null;
      await drummer?.stop();
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
