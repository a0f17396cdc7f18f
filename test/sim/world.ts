/**
 * The simulated world of one seed: NodeHosts (engine, rsm, in-memory LogDB, simulated
 * transport) in one process on one ManualEnv, the fault injector that drives the swarm's
 * fault mix, and the oracle checks run after every step.
 */
import { join } from "node:path";
import type { PlantedBug } from "../../src/engine/bugs.ts";
import { ManualEnv } from "../../src/env.ts";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";
import type { CreateStateMachine, IStateMachine, SMEntry } from "../../src/statemachine/types.ts";
import type { ReplicaUpdate } from "../../src/logdb/types.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { SimDisk } from "./disk.ts";
import { type AppliedRecord, fnv1a, Oracles, SimViolation } from "./oracles.ts";
import { drawSwarm, type Swarm } from "./swarm.ts";
import { parkIfEnded, type Tracked, track } from "../support/resources.ts";

/** Window and bound of the message storm oracle (a healthy host sends a few hundred). */
export const STORM_WINDOW_MS = 100;
export const STORM_MESSAGES_PER_WINDOW_MAX = 5000;

/** Bound on new-leader events queued between two driver steps. */
export const NEW_LEADER_EVENTS_MAX = 64;

/** What a targeted power loss throws out of saveUpdates (the save itself is durable). */
export class SimulatedPowerLoss extends Error {
  override name = "SimulatedPowerLoss";
  constructor(host: number) {
    super(`simulated power loss on host ${host} right after an fsync`);
  }
}

/** Milliseconds per engine tick in the simulation. */
export const SIM_RTT_MS = 10;

/** Lets every pending promise continuation run (a macrotask boundary drains all microtasks). */
export function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve)); // env-ok: test driver, ordering only
}

/** A promise that never settles: where the driver of a world shut down under it stops for good. */
const PARKED = new Promise<never>(() => {});

/**
 * Awaits p while simulated time goes on: a replica restarting over a snapshot recovers it in
 * steps between engine iterations (env.defer, or the snapshot step latency), which only run
 * when the driver advances the clock — and the driver is the one waiting here. A start that
 * waits for nothing settles before the first advance, so it leaves the trace as it was.
 */
export async function drivenBy<T>(env: ManualEnv, p: Promise<T>, closed: () => boolean): Promise<T> {
  let settled = false;
  const done = () => {
    settled = true;
  };
  p.then(done, done);
  await drain();
  while (!settled) {
    if (closed()) await PARKED;
    env.advance(0);
    await drain();
    if (!settled) {
      env.advance(1);
      await drain();
    }
  }
  return p;
}

export function hostAddress(i: number): string {
  return `10.0.0.${i}:7001`;
}

interface ShardPlacement {
  replicaId: number;
  /** Initial members (replica id → address), or null for a replica that joined. */
  members: Record<number, string> | null;
}

export interface HostSlot {
  index: number;
  address: string;
  logdb: MemoryLogDB;
  /** The machine's disk (snapshot files, received snapshots, the data directory). */
  disk: SimDisk;
  /** Received snapshots (shard → index) not yet seen saved (the power loss after one). */
  receivedSnapshots: Map<number, number>;
  /** A power loss after a saved received snapshot is due at the next step. */
  powerLossDue: boolean;
  nh: NodeHost | null;
  /** Replicas this host runs (or ran before it crashed), by shard. */
  shards: Map<number, ShardPlacement>;
  /** Virtual time at which a crashed host restarts (Infinity: stays down). */
  restartAtMs: number;
  /** The engine stopped itself (disk fault): restart it as a crash. */
  fatal: boolean;
  /** Clients avoid a paused host until this time. */
  pausedUntilMs: number;
  /** A targeted power loss at a first commit stopped the engine (restart it as a crash). */
  lostPower: boolean;
}

export interface WorldStats {
  crashes: number;
  restarts: number;
  diskFaultStops: number;
  partitions: number;
  clogs: number;
  pauses: number;
  transfers: number;
  membershipChanges: number;
  snapshotsCreated: number;
  snapshotsReceived: number;
  newLeaderIsolations: number;
  powerLosses: number;
  slowApplies: number;
  /** Crashes (untargeted) that were power losses: the disk lost what was not synced. */
  powerLossCrashes: number;
  /** Power losses right after a received snapshot was saved and acknowledged. */
  powerLossesAfterSnapshot: number;
  /** Files and directories a power loss took unsynced changes from (with correct code: scratch files only). */
  unsyncedLost: number;
  restartFailures: number;
}

const encoder = new TextEncoder();

/** Replica configuration every simulated shard uses (snapshot settings come from the swarm). */
function replicaConfig(swarm: Swarm, shardId: number, replicaId: number, seed: number) {
  return {
    // Every other seed replicates in small messages (a few entries each), leader-churn seeds
    // in single entries, so followers acknowledge partial ranges: the situation the Raft
    // §5.4.2 commit rule exists for. Derived from the seed, not drawn, so the swarm's other
    // draws stay as they were.
    maxEntryBytesPerMessage: swarm.oneEntryPerMessage ? 1 : seed % 2 === 0 ? 400 : 8 * 1024 * 1024,
    shardId,
    replicaId,
    electionRtt: 10,
    heartbeatRtt: 1,
    checkQuorum: true,
    preVote: true,
    snapshotEntries: swarm.snapshotEntries,
    compactionOverhead: swarm.compactionOverhead,
  };
}

export class World {
  readonly env: ManualEnv;
  readonly swarm: Swarm;
  readonly net: SimNetwork;
  readonly hosts: HostSlot[] = [];
  readonly oracles = new Oracles();
  /** Directory of each host's data on its simulated disk. */
  readonly root = "/sim";
  readonly stats: WorldStats = {
    crashes: 0,
    restarts: 0,
    diskFaultStops: 0,
    partitions: 0,
    clogs: 0,
    pauses: 0,
    transfers: 0,
    membershipChanges: 0,
    snapshotsCreated: 0,
    snapshotsReceived: 0,
    newLeaderIsolations: 0,
    powerLosses: 0,
    slowApplies: 0,
    powerLossCrashes: 0,
    powerLossesAfterSnapshot: 0,
    unsyncedLost: 0,
    restartFailures: 0,
  };
  /** shard id → replica ids in its current membership (as the simulator asked for). */
  readonly shardMembers = new Map<number, Set<number>>();
  /** The first violation an event callback saw (callbacks must not throw into the engine). */
  violation: SimViolation | null = null;
  faultsOn = true;
  /** A membership change is in flight (the heal phase waits for it). */
  membershipBusy = false;
  /** Set at shutdown: background tasks stop. */
  closed = false;
  /** What the driver is running (a phase), for the report of a test that ended under it. */
  activity: string | null = null;
  private readonly tracked: Tracked;
  private nextReplicaId = 100;
  /** Replicas that just became leader (the workload probes them with a read at once). */
  newLeaders: { host: HostSlot; shardId: number }[] = [];
  private stormWindowStartMs = 0;
  private readonly sentAtWindowStart = new WeakMap<NodeHost, number>();
  private partitionUntilMs = -1;
  private readonly unclogAt = new Map<number, number>();
  /** Host index → end of its targeted isolation. */
  private readonly isolatedUntil = new Map<number, number>();
  /**
   * `${host}:${shard}:${replica}` → the term a replica leads and its durable commit index
   * when it became leader (the power loss at its first commit watches for a higher one).
   */
  private readonly freshLeaders = new Map<string, { term: number; commit: number }>();
  /** Randomness of the targeted faults (a stream of its own: see drawSwarm). */
  private readonly targetedRng: ManualEnv;
  /** Randomness of the log writer's latency (a stream of its own). */
  private readonly writerRng: ManualEnv;
  /** Randomness of the power-loss faults (a stream of its own: see drawSwarm). */
  private readonly durabilityRng: ManualEnv;
  private readonly kv: CreateStateMachine;
  /** What every state machine instance applied (for the session oracle). */
  private applied: AppliedRecord[] = [];
  /** Virtual time of each step of a snapshot write on every host (none on half the seeds). */
  private readonly snapshotStepLatencyMs: (() => number) | undefined;

  constructor(
    readonly seed: number,
    readonly trace: ((line: string) => void) | null,
    laterFaults = true,
    /** The planted bug every NodeHost runs with (the simulator's self-test), or null. */
    readonly bug: PlantedBug | null = null,
  ) {
    this.env = new ManualEnv(seed);
    this.targetedRng = new ManualEnv(seed + 2 ** 32);
    this.writerRng = new ManualEnv(seed + 3 * 2 ** 32);
    this.durabilityRng = new ManualEnv(seed + 4 * 2 ** 32);
    // Half the seeds run a slow log writer (each batch 0–1..20 ms), so the orderings only a
    // slow writer produces (replicas stepping while their Update syncs, batches queueing
    // behind one another, a crash with batches queued) are tested.
    const writerLatencyMsMax = this.writerRng.random() < 0.5 ? 0 : 1 + this.writerRng.nextInt(20);
    // Half the seeds write snapshots slowly (each step — a chunk, the fsync — 1..1–60 ms), so
    // the orderings only a slow snapshot produces are tested: the replica asked to snapshot
    // again, receiving a snapshot, removed, or its host stopped while the file is written.
    const snapshotRng = new ManualEnv(seed + 6 * 2 ** 32);
    const snapshotLatencyMsMax = snapshotRng.random() < 0.5 ? 0 : 1 + snapshotRng.nextInt(60);
    this.snapshotStepLatencyMs =
      snapshotLatencyMsMax === 0 ? undefined : () => 1 + snapshotRng.nextInt(snapshotLatencyMsMax);
    this.swarm = {
      ...drawSwarm(this.env, this.targetedRng, this.durabilityRng, laterFaults),
      writerLatencyMsMax,
      snapshotLatencyMsMax,
    };
    // What a power loss keeps of unsynced data: a stream of its own, drawn only at power losses.
    const diskRng = new ManualEnv(seed + 5 * 2 ** 32);
    this.net = new SimNetwork(this.env);
    this.kv = builtinApps().get("kv");
    const s = this.swarm;
    this.net.setDefaultLink({
      lossRate: s.lossRate,
      duplicateRate: s.duplicateRate,
      delayMsMin: s.delayMsMin,
      delayMsMax: s.delayMsMax,
      reorder: s.reorder,
    });
    for (let i = 1; i <= s.hostCount; i++) {
      const address = hostAddress(i);
      const logdb = new MemoryLogDB({
        identity: { raftAddress: address, deploymentId: 1, formatVersion: 1 },
        rng: this.env,
        writer: {
          nowMs: () => this.env.nowMs(),
          setTimer: (ms, fn) => this.env.setTimer(ms, fn),
          latencyMs: () => (writerLatencyMsMax === 0 ? 0 : this.writerRng.nextInt(writerLatencyMsMax + 1)),
        },
      });
      const h: HostSlot = {
        index: i,
        address,
        logdb,
        disk: new SimDisk(diskRng),
        receivedSnapshots: new Map(),
        powerLossDue: false,
        nh: null,
        shards: new Map(),
        restartAtMs: Infinity,
        fatal: false,
        pausedUntilMs: 0,
        lostPower: false,
      };
      logdb.afterSave = (updates) => this.afterSave(h, updates);
      this.hosts.push(h);
    }
    // Shut down after the test however it ends; a driver still running then (the test timed
    // out) stops at its next step instead of running on beside the next tests.
    this.tracked = track(`World(seed ${seed})`, () => this.shutdown(), {
      busy: () => this.activity && `in ${this.activity} at simulated ${this.env.nowMs()} ms`,
    });
  }

  /**
   * Advances simulated time by ms, then lets every continuation it made runnable run. Never
   * returns once the world is shut down or the test that took `token` (resources.ts) ended.
   */
  async step(ms: number, token: number): Promise<void> {
    this.env.advance(ms);
    await drain();
    if (this.closed) await PARKED;
    await parkIfEnded(token);
  }

  /** FNV-1a over every trace line: equal for two runs of one seed (the determinism test). */
  traceDigest = 0x811c9dc5;

  log(line: string): void {
    const text = `${String(this.env.nowMs()).padStart(6)}ms ${line}`;
    this.traceDigest = fnv1a(encoder.encode(text), this.traceDigest);
    this.trace?.(text);
  }

  rand(): number {
    return this.env.random();
  }

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.env.nextInt(items.length)];
  }

  // ---- setup ----

  async setup(): Promise<void> {
    const s = this.swarm;
    for (let shardId = 1; shardId <= s.shardCount; shardId++) {
      const all = this.hosts.map((h) => h.index);
      const chosen: number[] = [];
      while (chosen.length < s.replicasPerShard) {
        const i = all.splice(this.env.nextInt(all.length), 1)[0]!;
        chosen.push(i);
      }
      chosen.sort((a, b) => a - b);
      const members: Record<number, string> = {};
      for (const i of chosen) members[i] = hostAddress(i);
      for (const i of chosen) this.hosts[i - 1]!.shards.set(shardId, { replicaId: i, members });
      this.shardMembers.set(shardId, new Set(chosen));
      this.log(`shard ${shardId} on hosts ${chosen.join(",")}`);
    }
    for (const h of this.hosts) await this.startHost(h);
  }

  private async startHost(h: HostSlot): Promise<boolean> {
    const wf = this.faultsOn ? this.swarm.writeFaultP : 0;
    const rf = this.faultsOn ? this.swarm.readFaultP : 0;
    h.logdb.setWriteFault(0);
    h.logdb.setReadFault(0);
    const nh = new NodeHost({
      nodeHostDir: join(this.root, `host-${h.index}`),
      raftAddress: h.address,
      rttMs: SIM_RTT_MS,
      env: this.env,
      log: (event) => {
        if (event.event === "engine-fatal") {
          h.fatal = true;
          this.log(`host ${h.index} engine stopped: ${String(event.error).split("\n")[0]}`);
        }
      },
      expert: {
        logdb: h.logdb,
        fs: h.disk,
        transport: (registry) =>
          this.net.transport(h.address, 1, registry, {
            snapshotDir: join(this.root, `host-${h.index}`, "incoming"),
            fs: h.disk,
          }),
        // In the engine loop, where the targeted faults must strike (a fresh leader at once).
        engineListener: (e) => {
          if (e.kind === "leaderUpdated") this.onLeader(h, e.shardId, e.replicaId, e.leaderId, e.term);
          else if (e.kind === "snapshotReceived") {
            this.stats.snapshotsReceived++;
            h.receivedSnapshots.set(e.shardId, e.index);
          } else if (e.kind === "snapshotCreated") this.stats.snapshotsCreated++;
        },
        ...(this.bug === null ? {} : { plantedBug: this.bug }),
        ...(this.snapshotStepLatencyMs === undefined
          ? {}
          : { snapshotStepLatencyMs: this.snapshotStepLatencyMs }),
      },
    });
    // The role oracle listens as an application would: through subscribe(), off the engine loop
    // (deliveries are ManualEnv timers that draw no randomness, so schedules stay as they were).
    nh.subscribe(
      (e) => {
        if (e.kind !== "roleChanged") return;
        try {
          this.oracles.onRole(e.shardId, e.replicaId, e.role, e.term, this.env.nowMs());
        } catch (err) {
          if (!(err instanceof SimViolation)) throw err;
          this.violation ??= err;
        }
      },
      { kinds: ["roleChanged"], name: "role-oracle", queueMax: 65536 },
    );
    h.nh = nh;
    h.fatal = false;
    await nh.ready;
    for (const [shardId, p] of h.shards) {
      const cfg = replicaConfig(this.swarm, shardId, p.replicaId, this.seed);
      await this.driven(
        nh.startReplica(p.members ?? {}, p.members === null, this.recording(h), cfg, { app: "kv" }),
      );
    }
    h.logdb.setWriteFault(wf);
    h.logdb.setReadFault(rf);
    return true;
  }

  private driven<T>(p: Promise<T>): Promise<T> {
    return drivenBy(this.env, p, () => this.closed);
  }

  /** The kv app, wrapped to record what each instance applies (the session and applied oracles). */
  private recording(h: HostSlot): CreateStateMachine {
    return (shardId, replicaId) => {
      const sm = this.kv(shardId, replicaId) as IStateMachine;
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
      const wrapped: IStateMachine = {
        update: (entries: SMEntry[]) => {
          for (const e of entries) {
            try {
              this.oracles.onApply(rec, e.index, e.cmd);
            } catch (err) {
              // Called inside the engine: keep the first violation for the next check.
              if (!(err instanceof SimViolation)) throw err;
              this.violation ??= err;
            }
          }
          this.maybeSlowApply(h);
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
        // The kv's recovery in steps (the engine's path for it), forgetting the record at finish.
        recoverInSteps: () => {
          const steps = sm.recoverInSteps!();
          return {
            write: (chunk) => steps.write(chunk),
            finish: () => {
              steps.finish();
              rec.seen.clear();
              rec.pending = [];
              rec.lastApplied = 0;
            },
            abort: () => steps.abort?.(),
          };
        },
        hash: () => sm.hash(),
        close: () => {
          rec.closed = true;
          sm.close();
        },
      };
      return wrapped;
    };
  }

  /** Slow apply: this apply takes 5–slowApplyMsMax ms, so the host's engine stalls that long. */
  private maybeSlowApply(h: HostSlot): void {
    const s = this.swarm;
    if (!this.faultsOn || s.slowApplyP <= 0 || h.nh === null || this.rand() >= s.slowApplyP) return;
    const ms = 5 + this.env.nextInt(s.slowApplyMsMax - 4);
    h.nh.stallForTest(ms);
    this.stats.slowApplies++;
    this.log(`slow apply on host ${h.index}: ${ms}ms`);
  }

  private onLeader(h: HostSlot, shardId: number, replicaId: number, leaderId: number, term: number): void {
    this.log(`host ${h.index} shard ${shardId} replica ${replicaId}: leader ${leaderId} term ${term}`);
    if (leaderId === replicaId && this.newLeaders.length < NEW_LEADER_EVENTS_MAX)
      this.newLeaders.push({ host: h, shardId });
    if (leaderId === replicaId && this.faultsOn) this.targetFreshLeader(h, shardId, replicaId, term);
    try {
      this.oracles.onLeader(shardId, replicaId, leaderId, term);
    } catch (e) {
      if (e instanceof SimViolation && this.violation === null) this.violation = e;
    }
  }

  // ---- targeted faults (called from inside an engine iteration) ----

  /**
   * A replica has just become leader (its no-op was sent and saved this iteration): arm the
   * power loss at its first commit, and maybe cut it off before the no-op arrives anywhere.
   */
  private targetFreshLeader(h: HostSlot, shardId: number, replicaId: number, term: number): void {
    const s = this.swarm;
    if (s.powerLossAtFirstCommitP > 0) {
      const restore = this.faultsOff(h);
      try {
        const log = h.logdb.readLogState({ shardId, replicaId });
        // Only a leader that inherited uncommitted entries (beyond its own no-op): its first
        // commit is where Raft §5.4.2 decides what those older entries become.
        if (log.lastIndex - 1 > log.state.commit)
          this.freshLeaders.set(`${h.index}:${shardId}:${replicaId}`, { term, commit: log.state.commit });
      } finally {
        restore();
      }
    }
    if (
      s.isolateNewLeaderP > 0 &&
      !this.isolatedUntil.has(h.index) &&
      this.targetedRng.random() < s.isolateNewLeaderP
    ) {
      const durationMs = 100 + this.targetedRng.nextInt(900);
      this.net.isolate(h.address);
      this.isolatedUntil.set(h.index, this.env.nowMs() + durationMs);
      this.stats.newLeaderIsolations++;
      this.log(
        `isolate host ${h.index} for ${durationMs}ms: replica ${replicaId} just became leader of shard ${shardId} in term ${term}`,
      );
    }
  }

  /**
   * After each durable save of h: a fresh leader whose durable commit index first rose in its
   * term may lose power right here, before anything the iteration does next (messages that
   * carry the commit, applying, answering clients) and with its unreceived frames lost.
   */
  private afterSave(h: HostSlot, updates: readonly ReplicaUpdate[]): void {
    if (!this.faultsOn) return;
    if (h.receivedSnapshots.size > 0) this.afterSnapshotSaved(h, updates);
    if (this.freshLeaders.size === 0) return;
    for (const u of updates) {
      if (u.state === null) continue;
      const key = `${h.index}:${u.shardId}:${u.replicaId}`;
      const fresh = this.freshLeaders.get(key);
      if (fresh === undefined) continue;
      if (u.state.term !== fresh.term) {
        this.freshLeaders.delete(key);
        continue;
      }
      if (u.state.commit <= fresh.commit) continue;
      this.freshLeaders.delete(key);
      if (this.targetedRng.random() >= this.swarm.powerLossAtFirstCommitP) continue;
      this.net.loseInFlight(h.address);
      h.lostPower = true;
      this.stats.powerLosses++;
      this.log(
        `power loss on host ${h.index}: replica ${u.replicaId} of shard ${u.shardId}, leader in term ${fresh.term}, ` +
          `has just made its first commit durable (${fresh.commit} -> ${u.state.commit})`,
      );
      throw new SimulatedPowerLoss(h.index);
    }
  }

  /**
   * A received snapshot was just saved (the log database records it, the log before it is
   * gone, the acknowledgement leaves in this iteration): the machine may lose power at the
   * next step, which takes from its disk whatever it did not fsync.
   */
  private afterSnapshotSaved(h: HostSlot, updates: readonly ReplicaUpdate[]): void {
    for (const u of updates) {
      if (u.snapshot === null || h.receivedSnapshots.get(u.shardId) !== u.snapshot.index) continue;
      h.receivedSnapshots.delete(u.shardId);
      if (this.swarm.powerLossAfterSnapshotP <= 0) continue;
      if (this.durabilityRng.random() >= this.swarm.powerLossAfterSnapshotP) continue;
      h.powerLossDue = true;
      this.log(
        `host ${h.index} saved the snapshot at index ${u.snapshot.index} of shard ${u.shardId} it received: power loss at the next step`,
      );
    }
  }

  running(): HostSlot[] {
    return this.hosts.filter((h) => h.nh !== null && !h.fatal);
  }

  /**
   * A running, unpaused host that runs shardId, for a client request: half the time the one
   * a random replica believes leads (clients that track the leader), else any.
   */
  pickHostFor(shardId: number): HostSlot | undefined {
    const now = this.env.nowMs();
    const candidates = this.running().filter((h) => h.shards.has(shardId) && h.pausedUntilMs <= now);
    const asked = this.pick(candidates);
    if (asked === undefined || this.rand() < 0.5) return asked;
    const leaderId = this.leaderOn(asked, shardId);
    return candidates.find((h) => h.shards.get(shardId)!.replicaId === leaderId) ?? asked;
  }

  private leadsAny(h: HostSlot): boolean {
    for (const [shardId, p] of h.shards) if (this.leaderOn(h, shardId) === p.replicaId) return true;
    return false;
  }

  /** The leader host h's replica of shardId knows of (0: none, or the replica is gone). */
  private leaderOn(h: HostSlot, shardId: number): number {
    try {
      return h.nh!.getLeaderId(shardId).leaderId;
    } catch (e) {
      if (!(e instanceof LongboatError)) throw e;
      return 0; // removed from the shard, or the host stopped
    }
  }

  // ---- crash and restart ----

  /**
   * Stops host h and restarts it downMs later over what its log database and disk kept. A
   * process crash keeps the disk's page cache; a power loss (powerLoss) loses what was not
   * synced. The log database keeps exactly what saveUpdates returned either way (each return
   * is an fsync).
   */
  async crash(h: HostSlot, reason: string, downMs: number, powerLoss = false): Promise<void> {
    const nh = h.nh;
    if (nh === null) return;
    h.nh = null;
    h.restartAtMs = this.env.nowMs() + downMs;
    h.powerLossDue = false;
    h.receivedSnapshots.clear();
    this.log(`crash host ${h.index} (${reason}${powerLoss ? ", power lost" : ""}), restart in ${downMs}ms`);
    try {
      await nh.stop();
    } catch {
      // a host stopped by a disk fault may fail to close; its durable data is what counts
    }
    h.logdb.crash();
    if (powerLoss) {
      const before = h.disk.stats.filesTruncated + h.disk.stats.dirsReverted;
      h.disk.powerLoss();
      const lost = h.disk.stats.filesTruncated + h.disk.stats.dirsReverted - before;
      this.stats.unsyncedLost += lost;
      if (lost > 0)
        this.log(`host ${h.index}: the power loss took unsynced changes from ${lost} files or directories`);
    }
    // What it made durable counts now, not only once it restarts (a commit saved right before
    // a power loss); its data does not change while it is down, so one check is enough. A
    // violation waits for the next check(): crash() also runs in background tasks.
    const restore = this.faultsOff(h);
    try {
      for (const [shardId, p] of h.shards) {
        this.oracles.checkCommitted(h.index, h.logdb, shardId, p.replicaId);
        this.oracles.checkRestartable(h.index, h.logdb, shardId, p.replicaId);
      }
    } catch (e) {
      if (!(e instanceof SimViolation)) throw e;
      this.violation ??= e;
    } finally {
      restore();
    }
  }

  async restartDue(): Promise<void> {
    const now = this.env.nowMs();
    for (const h of this.hosts) {
      if (h.nh !== null || h.restartAtMs > now) continue;
      h.restartAtMs = Infinity;
      this.stats.restarts++;
      this.log(`restart host ${h.index}`);
      try {
        await this.startHost(h);
      } catch (e) {
        // Faults are off while a host starts: a restart that fails means the host cannot
        // start over its own durable data (a snapshot file a power loss truncated, a
        // directory it lost), which no acknowledged state may depend on.
        this.stats.restartFailures++;
        const message = (e as Error).message;
        this.log(`restart of host ${h.index} failed: ${message}`);
        this.violation ??= new SimViolation(
          "restart",
          `host ${h.index} cannot restart over its durable data: ${message}`,
        );
        await this.crash(h, "restart failed", 50);
      }
    }
  }

  // ---- faults ----

  /** Draws this step's faults from the swarm's per-second rates. */
  async injectFaults(stepMs: number): Promise<void> {
    const now = this.env.nowMs();
    for (const h of this.hosts) {
      if (h.nh !== null && h.fatal) {
        if (h.lostPower) {
          h.lostPower = false;
          await this.crash(h, "power loss", 200 + this.targetedRng.nextInt(1300), true);
          continue;
        }
        this.stats.diskFaultStops++;
        await this.crash(h, "disk fault", 5 + this.env.nextInt(100));
      }
    }
    for (const h of this.hosts) {
      if (h.nh === null || !h.powerLossDue) continue;
      this.stats.powerLossesAfterSnapshot++;
      await this.crash(
        h,
        "power loss after a received snapshot",
        200 + this.durabilityRng.nextInt(1300),
        true,
      );
    }
    for (const [i, at] of [...this.isolatedUntil]) {
      if (at <= now) {
        this.isolatedUntil.delete(i);
        this.net.unisolate(hostAddress(i));
        this.log(`isolation of host ${i} ends`);
      }
    }
    await this.restartDue();
    for (const [i, at] of [...this.unclogAt]) {
      if (at <= now) {
        this.unclogAt.delete(i);
        this.net.unclog(hostAddress(i));
        this.log(`unclog host ${i}`);
      }
    }
    if (this.partitionUntilMs >= 0 && this.partitionUntilMs <= now) {
      this.partitionUntilMs = -1;
      this.net.heal();
      for (const i of this.isolatedUntil.keys()) this.net.isolate(hostAddress(i));
      this.log("partition healed");
    }
    if (!this.faultsOn) return;
    const s = this.swarm;
    const chance = (perSecond: number) => perSecond > 0 && this.rand() < (perSecond * stepMs) / 1000;
    if (this.partitionUntilMs < 0 && chance(s.partitionPerSecond))
      this.partition(100 + this.env.nextInt(900));
    if (chance(s.clogPerSecond)) this.clog(20 + this.env.nextInt(200), "clog");
    if (chance(s.pausePerSecond)) this.clog(200 + this.env.nextInt(1500), "pause");
    if (chance(s.crashPerSecond)) {
      // Half the crashes hit a leader: that is where acknowledged state is most at risk.
      const leaders = this.running().filter((h) => this.leadsAny(h));
      const h = this.rand() < 0.5 && leaders.length > 0 ? this.pick(leaders) : this.pick(this.running());
      if (h) {
        this.stats.crashes++;
        const downMs = 30 + this.env.nextInt(1000);
        const power = s.powerLossCrashShare > 0 && this.durabilityRng.random() < s.powerLossCrashShare;
        if (power) this.stats.powerLossCrashes++;
        await this.crash(h, power ? "power loss" : "process crash", downMs, power);
      }
    }
    if (chance(s.transferPerSecond)) this.transfer();
    if (!this.membershipBusy && chance(s.membershipPerSecond)) void this.changeMembership();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.env.setTimer(ms, resolve));
  }

  /**
   * Replaces one replica of a random shard by a new one on a host without that shard:
   * remove, then add, then start it (join). Each step retries until the membership (read
   * through ReadIndex) shows it done, so an unknown outcome (timeout) is resolved by looking.
   */
  private async changeMembership(): Promise<void> {
    const shardId = 1 + this.env.nextInt(this.swarm.shardCount);
    const members = this.shardMembers.get(shardId)!;
    const target = this.pick(this.hosts.filter((h) => !h.shards.has(shardId)));
    const victimId = this.pick([...members]);
    if (target === undefined || victimId === undefined) return;
    const victim = this.hosts.find((h) => h.shards.get(shardId)?.replicaId === victimId)!;
    const newId = this.nextReplicaId++;
    this.membershipBusy = true;
    this.stats.membershipChanges++;
    this.log(
      `membership shard ${shardId}: remove ${victimId} (host ${victim.index}), then add ${newId} on host ${target.index}`,
    );
    try {
      const removed = await this.untilMembership(
        shardId,
        victimId,
        (m) => !m.includes(victimId),
        (nh, ccId) => nh.syncRequestDeleteReplica(shardId, victimId, ccId, { timeoutMs: 1000 }),
      );
      if (!removed) return;
      members.delete(victimId);
      victim.shards.delete(shardId);
      try {
        victim.nh?.stopShard(shardId);
      } catch {
        // already removed itself, or the host is down
      }
      this.log(`membership shard ${shardId}: replica ${victimId} removed`);
      const added = await this.untilMembership(
        shardId,
        victimId,
        (m) => m.includes(newId),
        (nh, ccId) => nh.syncRequestAddReplica(shardId, newId, target.address, ccId, { timeoutMs: 1000 }),
      );
      if (!added) return;
      members.add(newId);
      target.shards.set(shardId, { replicaId: newId, members: null });
      this.log(`membership shard ${shardId}: replica ${newId} added on host ${target.index}`);
      if (target.nh !== null && !target.fatal) {
        // Disk faults stay off while the replica starts, as in a restart (startHost); a start
        // that fails anyway crashes the host, whose restart starts the replica.
        const cfg = replicaConfig(this.swarm, shardId, newId, this.seed);
        const restore = this.faultsOff(target);
        try {
          await target.nh.startReplica({}, true, this.recording(target), cfg, { app: "kv" });
        } catch (e) {
          this.log(
            `start of joining replica ${newId} on host ${target.index} failed: ${(e as Error).message}`,
          );
          await this.crash(target, "joining replica failed to start", 20);
        } finally {
          restore();
        }
      }
    } finally {
      this.membershipBusy = false;
    }
  }

  /** Retries change until done(membership ids) holds; false when the world closed first. */
  private async untilMembership(
    shardId: number,
    avoidReplicaId: number,
    done: (replicaIds: number[]) => boolean,
    change: (nh: NodeHost, configChangeId: number) => Promise<void>,
  ): Promise<boolean> {
    while (!this.closed) {
      const h = this.pick(
        this.running().filter(
          (x) => x.shards.has(shardId) && x.shards.get(shardId)!.replicaId !== avoidReplicaId,
        ),
      );
      if (h) {
        try {
          const m = await h.nh!.syncGetShardMembership(shardId, { timeoutMs: 500 });
          if (done(m.addresses.map((a) => a.replicaId))) return true;
          await change(h.nh!, m.configChangeId);
        } catch (e) {
          if (!(e instanceof LongboatError)) throw e;
        }
      }
      await this.sleep(20 + this.env.nextInt(50));
    }
    return false;
  }

  private partition(durationMs: number): void {
    const s = this.swarm;
    const addrs = this.hosts.map((h) => h.address);
    const mode = this.env.nextInt(2);
    const side = new Set<string>();
    if (mode === 0) side.add(this.pick(addrs)!);
    else for (const a of addrs) if (this.rand() < 0.5) side.add(a);
    if (side.size === 0 || side.size === addrs.length) return;
    for (const a of side) {
      for (const b of addrs) if (!side.has(b)) this.net.partition(a, b, s.partitionOneWay);
    }
    this.partitionUntilMs = this.env.nowMs() + durationMs;
    this.stats.partitions++;
    this.log(`partition ${[...side].join(",")} ${s.partitionOneWay ? "->" : "|"} rest for ${durationMs}ms`);
  }

  private clog(durationMs: number, kind: "clog" | "pause"): void {
    const h = this.pick(this.hosts);
    if (!h || this.unclogAt.has(h.index)) return;
    this.net.clog(h.address);
    this.unclogAt.set(h.index, this.env.nowMs() + durationMs);
    if (kind === "pause") {
      h.pausedUntilMs = this.env.nowMs() + durationMs;
      h.nh?.stallForTest(durationMs);
      this.stats.pauses++;
    } else this.stats.clogs++;
    this.log(`${kind} host ${h.index} for ${durationMs}ms`);
  }

  private transfer(): void {
    const shardId = 1 + this.env.nextInt(this.swarm.shardCount);
    for (const h of this.running()) {
      const nh = h.nh!;
      const p = h.shards.get(shardId);
      if (!p) continue;
      if (this.leaderOn(h, shardId) !== p.replicaId) continue;
      const targets = [...(this.shardMembers.get(shardId) ?? [])].filter((r) => r !== p.replicaId);
      const target = this.pick(targets);
      if (target === undefined) return;
      try {
        nh.requestLeaderTransfer(shardId, target);
        this.stats.transfers++;
        this.log(`leader transfer shard ${shardId}: ${p.replicaId} -> ${target}`);
      } catch (e) {
        this.log(`leader transfer shard ${shardId} refused: ${(e as Error).message}`);
      }
      return;
    }
  }

  /** Ends every fault: links clean, partitions and clogs gone, crashed hosts restart now. */
  async stopFaults(): Promise<void> {
    this.faultsOn = false;
    this.net.heal();
    this.partitionUntilMs = -1;
    for (const i of [...this.unclogAt.keys()]) this.net.unclog(hostAddress(i));
    this.unclogAt.clear();
    this.isolatedUntil.clear();
    this.freshLeaders.clear();
    this.net.setDefaultLink({ lossRate: 0, duplicateRate: 0, delayMsMin: 1, delayMsMax: 5, reorder: false });
    const now = this.env.nowMs();
    for (const h of this.hosts) {
      h.logdb.setWriteFault(0);
      h.logdb.setReadFault(0);
      h.pausedUntilMs = 0;
      h.powerLossDue = false;
      if (h.nh !== null && h.fatal)
        await this.crash(h, h.lostPower ? "power loss" : "disk fault", 0, h.lostPower);
      h.lostPower = false;
      if (h.nh === null) h.restartAtMs = now;
    }
    await this.restartDue();
    this.log("heal: all faults stopped");
  }

  // ---- oracles ----

  /** Runs the per-step oracles over every running host (LogDB faults off while they read). */
  check(): void {
    if (this.violation) throw this.violation;
    this.checkStorm();
    for (const h of this.running()) {
      const nh = h.nh!;
      const wf = this.faultsOff(h);
      try {
        for (const [shardId, p] of h.shards) {
          let hash: { appliedIndex: number; hash: string };
          try {
            hash = nh.stateHash(shardId);
          } catch {
            continue; // the replica was removed or is not running
          }
          this.oracles.onStateHash(
            shardId,
            hash.appliedIndex,
            hash.hash,
            `replica ${p.replicaId} on host ${h.index}`,
          );
          this.oracles.checkCommitted(h.index, h.logdb, shardId, p.replicaId);
          this.oracles.checkRestartable(h.index, h.logdb, shardId, p.replicaId);
        }
      } finally {
        wf();
      }
    }
    this.checkApplied();
  }

  /**
   * Message storm oracle: a host sending more than STORM_MESSAGES_PER_WINDOW_MAX messages in
   * one STORM_WINDOW_MS window is stuck in a send loop (and would also make the run crawl).
   */
  private checkStorm(): void {
    const now = this.env.nowMs();
    if (now - this.stormWindowStartMs < STORM_WINDOW_MS) return;
    this.stormWindowStartMs = now;
    for (const h of this.running()) {
      const sent = h.nh!.stats.sentMessages;
      const before = this.sentAtWindowStart.get(h.nh!) ?? 0;
      this.sentAtWindowStart.set(h.nh!, sent);
      if (sent - before > STORM_MESSAGES_PER_WINDOW_MAX) {
        throw new SimViolation(
          "storm",
          `host ${h.index} sent ${sent - before} messages in ${STORM_WINDOW_MS}ms (bound ${STORM_MESSAGES_PER_WINDOW_MAX})`,
        );
      }
    }
  }

  /** Session oracle over every state machine instance; forgets closed ones once matched. */
  checkApplied(): void {
    for (const rec of this.applied) this.oracles.checkApplied(rec);
    this.applied = this.applied.filter((r) => !r.closed);
  }

  /** Turns a host's LogDB faults off (the oracles read it); returns the function that restores them. */
  private faultsOff(h: HostSlot): () => void {
    h.logdb.setWriteFault(0);
    h.logdb.setReadFault(0);
    return () => {
      if (!this.faultsOn) return;
      h.logdb.setWriteFault(this.swarm.writeFaultP);
      h.logdb.setReadFault(this.swarm.readFaultP);
    };
  }

  /** Stops every host (once; the registry may call it too). Its files live on the simulated disk. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tracked.release();
    for (const h of this.hosts) {
      const nh = h.nh;
      h.nh = null;
      if (nh === null) continue;
      try {
        await nh.stop();
      } catch {
        // already stopped by a fault
      }
    }
    await drain();
  }
}
