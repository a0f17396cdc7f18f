/**
 * Simulated clients: each one loops put / get / cas / session-protected put or increment
 * (kv `add` on a counter key) on random keys of random shards through a random running NodeHost, and records every operation in the
 * history with virtual-clock timestamps. A write whose outcome is unknown (timeout, crash)
 * stays uncompleted in the history: the checker lets it take effect anywhere after its call,
 * or never. A failed read is left out (it has no effect).
 */
import { LongboatError } from "../../src/engine/errors.ts";
import type { Session } from "../../src/engine/session.ts";
import { longboat } from "../../src/pb/longboat.js";
import { HistoryRecorder } from "./history.ts";
import type { KvInput, KvOutput } from "./linearizability.ts";
import { commandDigest } from "./oracles.ts";
import type { ManualEnv } from "../../src/env.ts";
import type { NodeHost } from "../../src/nodehost.ts";
import type { Oracles } from "./oracles.ts";
import type { Swarm } from "./swarm.ts";

/** A host as the clients use it (world.ts's HostSlot, or a drummer world's host). */
export interface WorkloadHost {
  index: number;
  nh: NodeHost | null;
  fatal: boolean;
}

/** What the clients need of a world (World, or the drummer world of drummer-world.ts). */
export interface WorkloadWorld {
  readonly env: ManualEnv;
  readonly swarm: Pick<Swarm, "clientCount" | "shardCount" | "keyCount" | "thinkMsMax">;
  readonly oracles: Pick<Oracles, "onAcked">;
  newLeaders: { host: WorkloadHost; shardId: number }[];
  rand(): number;
  pickHostFor(shardId: number): WorkloadHost | undefined;
  log(line: string): void;
}

const kvpb = longboat.nodehost.v1;
const text = new TextEncoder();
const untext = new TextDecoder();

/** Client id of the new-leader prober in the history. */
export const PROBE_CLIENT_ID = 0;

/** Counter keys per shard (`<shard>/n<i>`), written only by session-protected increments. */
export const COUNTER_KEY_COUNT = 2;

/** Session-protected proposals retry this many times with the same series id. */
export const SESSION_RETRY_COUNT_MAX = 3;

export interface WorkloadStats {
  invoked: number;
  completed: number;
  failed: number;
  sessionRetries: number;
}

export class Workload {
  readonly history = new HistoryRecorder<KvInput, KvOutput>();
  readonly stats: WorkloadStats = { invoked: 0, completed: 0, failed: 0, sessionRetries: 0 };
  stopped = false;
  private running = 0;
  private readonly sessions = new Map<string, Session>();
  /** Shard → the key of the latest acknowledged write. */
  private readonly lastWritten = new Map<number, string>();

  constructor(private readonly world: WorkloadWorld) {}

  start(): void {
    for (let c = 1; c <= this.world.swarm.clientCount; c++) {
      this.running++;
      void this.loop(c).finally(() => this.running--);
    }
  }

  get idle(): boolean {
    return this.running === 0;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.world.env.setTimer(ms, resolve));
  }

  private async loop(clientId: number): Promise<void> {
    const w = this.world;
    let seq = 0;
    let readBack: { shardId: number; key: string } | null = null;
    while (!this.stopped) {
      await this.sleep(1 + w.env.nextInt(w.swarm.thinkMsMax + 1));
      if (this.stopped) return;
      let shardId = 1 + w.env.nextInt(w.swarm.shardCount);
      let key = `${shardId}/k${w.env.nextInt(w.swarm.keyCount)}`;
      const value = `c${clientId}.${++seq}`;
      let roll = w.rand();
      let counter = false;
      if (readBack !== null) {
        // Read your write: right after a write, read it back half the time.
        ({ shardId, key } = readBack);
        roll = 0;
        readBack = null;
      } else {
        // Half the session-protected writes increment a counter: a retry applied twice shows
        // as a count off by its delta.
        if (roll >= 0.85 && w.rand() < 0.5) {
          counter = true;
          key = `${shardId}/n${w.env.nextInt(COUNTER_KEY_COUNT)}`;
        }
        if (roll >= 0.4 && w.rand() < 0.5) readBack = { shardId, key };
      }
      try {
        if (roll < 0.4) await this.get(clientId, shardId, key);
        else if (roll < 0.65) await this.put(clientId, shardId, key, value, false);
        else if (roll < 0.85) await this.cas(clientId, shardId, key, value);
        else if (counter) await this.add(clientId, shardId, key, 1 + w.env.nextInt(5));
        else await this.put(clientId, shardId, key, value, true);
      } catch (e) {
        if (!(e instanceof LongboatError)) throw e;
        this.stats.failed++;
      }
    }
  }

  private timeoutMs(): number {
    return 200 + this.world.env.nextInt(800);
  }

  /**
   * A client redirected to a new leader reads at once the key last written on its shard:
   * the moment a leader that has not yet committed in its term could serve stale data.
   */
  probeNewLeaders(): void {
    const events = this.world.newLeaders;
    this.world.newLeaders = [];
    if (this.stopped) return;
    for (const { host, shardId } of events) {
      const key = this.lastWritten.get(shardId);
      if (key === undefined || host.nh === null || host.fatal) continue;
      void this.get(PROBE_CLIENT_ID, shardId, key, host).catch((e) => {
        if (!(e instanceof LongboatError)) throw e;
      });
    }
  }

  private async get(clientId: number, shardId: number, key: string, via?: WorkloadHost): Promise<void> {
    const h = via ?? this.world.pickHostFor(shardId);
    if (!h) return;
    const callMs = this.world.env.nowMs();
    const query = kvpb.KvQuery.encode({ get: { key } }).finish();
    const bytes = await h.nh!.syncRead(shardId, query, { timeoutMs: this.timeoutMs() });
    const r = kvpb.KvQueryResult.decode(bytes);
    const value = r.found ? untext.decode(r.value) : null;
    const id = this.history.invoke(clientId, { op: "get", key }, callMs);
    this.history.complete(id, { value }, this.world.env.nowMs());
    this.stats.invoked++;
    this.stats.completed++;
    this.world.log(`client ${clientId} get ${key} -> ${value} via host ${h.index}`);
  }

  private async cas(clientId: number, shardId: number, key: string, value: string): Promise<void> {
    // Expect what a recent read saw half the time (a likely success), else absence.
    const expected =
      this.world.rand() < 0.5
        ? null
        : `c${1 + this.world.env.nextInt(this.world.swarm.clientCount)}.${this.world.env.nextInt(20)}`;
    const cmd = kvpb.KvCommand.encode({
      cas: {
        key,
        expected: text.encode(expected ?? ""),
        expectedAbsent: expected === null,
        value: text.encode(value),
      },
    }).finish();
    await this.propose(clientId, shardId, { op: "cas", key, expected, value }, cmd, false);
  }

  private async put(
    clientId: number,
    shardId: number,
    key: string,
    value: string,
    withSession: boolean,
  ): Promise<void> {
    const cmd = kvpb.KvCommand.encode({ put: { key, value: text.encode(value) } }).finish();
    await this.propose(clientId, shardId, { op: "put", key, value }, cmd, withSession);
  }

  /** A session-protected increment of a counter key. */
  private async add(clientId: number, shardId: number, key: string, delta: number): Promise<void> {
    const cmd = kvpb.KvCommand.encode({ add: { key, delta } }).finish();
    await this.propose(clientId, shardId, { op: "add", key, delta }, cmd, true);
  }

  private async session(clientId: number, shardId: number): Promise<Session | null> {
    const k = `${clientId}:${shardId}`;
    const have = this.sessions.get(k);
    if (have) return have;
    const h = this.world.pickHostFor(shardId);
    if (!h) return null;
    const s = await h.nh!.getNewSession(shardId, { timeoutMs: this.timeoutMs() });
    this.world.log(`client ${clientId} registered session ${s.clientId} on shard ${shardId}`);
    this.sessions.set(k, s);
    return s;
  }

  /** Proposes cmd (retrying with the same series id when session-protected); records the op. */
  private async propose(
    clientId: number,
    shardId: number,
    input: KvInput,
    cmd: Uint8Array,
    withSession: boolean,
  ): Promise<void> {
    const w = this.world;
    const session = withSession ? await this.session(clientId, shardId) : null;
    if (withSession && session === null) return;
    // Recorded lazily: a proposal the local core dropped (never appended) or the session
    // manager rejected (applied as a no-op) has no effect and stays out of the history.
    let callMs = -1;
    let unknown = false;
    const attempts = session ? SESSION_RETRY_COUNT_MAX + 1 : 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const h = w.pickHostFor(shardId);
      if (!h) {
        await this.sleep(20);
        continue;
      }
      const nh = h.nh!;
      const s = session ?? nh.getNoOpSession(shardId);
      let state: ReturnType<typeof nh.propose>;
      try {
        state = nh.propose(s, cmd, { timeoutMs: this.timeoutMs() });
      } catch (e) {
        if (!(e instanceof LongboatError)) throw e;
        await this.sleep(10);
        continue; // refused before it was queued: not proposed
      }
      if (callMs < 0) {
        callMs = w.env.nowMs();
        this.stats.invoked++;
      } else this.stats.sessionRetries++;
      const result = await state.result;
      if (result.code === "completed") {
        const output: KvOutput =
          input.op === "cas"
            ? { ok: result.value === 1 }
            : input.op === "add"
              ? { value: untext.decode(result.data) }
              : {};
        this.history.complete(this.history.invoke(clientId, input, callMs), output, w.env.nowMs());
        this.stats.completed++;
        const what =
          input.op === "add"
            ? `client ${clientId} add ${input.key}+${input.delta} -> ${output.value}`
            : `client ${clientId} ${input.op} ${input.key}=${"value" in input ? input.value : ""}`;
        w.oracles.onAcked(shardId, result.index, commandDigest(s.clientId, s.seriesId, cmd), what);
        this.lastWritten.set(shardId, input.key);
        w.log(
          `${what} acked at index ${result.index} via host ${h.index}${input.op === "cas" ? ` ok=${output.ok}` : ""}`,
        );
        session?.proposalCompleted();
        return;
      }
      w.log(`client ${clientId} ${input.op} ${input.key} via host ${h.index}: ${result.code}`);
      if (result.code !== "dropped" && result.code !== "rejected") unknown = true;
      if (session && result.code === "rejected") this.sessions.delete(`${clientId}:${shardId}`);
      if (!session || result.code === "rejected") break;
    }
    // Outcome unknown (timeout, crash): the op stays uncompleted, it may take effect or not.
    if (unknown) this.history.invoke(clientId, input, callMs);
    if (session) {
      // The session moves on to a new series id either way.
      session.proposalCompleted();
    }
    this.stats.failed++;
  }
}
