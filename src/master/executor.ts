/**
 * Carries out the drummers' decisions on a NodeHost: start a replica (initial member, join, or
 * restore from its local log) from its app name, add or remove a member quoting the ordered
 * config-change index, stop a zombie and remove its data. Each decision runs at most once (by
 * id); decisions of one shard run in order, different shards side by side (a bounded number).
 */
import { type Decision, DecisionKind, describeDecision } from "../drummer/types.ts";
import type { ReplicaConfigInput } from "../engine/config.ts";
import { LongboatError } from "../engine/errors.ts";
import type { NodeHost } from "../nodehost.ts";
import type { Membership } from "../raft/types.ts";
import type { AppRegistry } from "../statemachine/registry.ts";

export interface DecisionResultOut {
  decisionId: number;
  ok: boolean;
  message: string;
}

/** Decision ids remembered as done (the oldest are forgotten first). */
export const EXECUTED_IDS_MAX = 16_384;
/** Results waiting to be reported, at most. */
export const PENDING_RESULTS_MAX = 4_096;
/** Shards whose decisions run at once, at most. */
export const LANES_MAX = 16;

export interface ExecutorOptions {
  nodehost: NodeHost;
  apps: AppRegistry;
  /** Raft settings of the replicas it starts (shard and replica ids are the decision's). */
  replicaConfig: Omit<ReplicaConfigInput, "shardId" | "replicaId">;
  timeoutMs: number;
  log: (event: Record<string, unknown>) => void;
}

export class Executor {
  private readonly executed = new Set<number>();
  private readonly lanes = new Map<number, Decision[]>();
  private readonly waiting: number[] = [];
  private running = 0;
  /** Results not reported yet (taken by the next report). */
  private results: DecisionResultOut[] = [];
  private stopped = false;

  constructor(private readonly o: ExecutorOptions) {}

  /** Queues the decisions not seen before, in the order given. */
  submit(decisions: readonly Decision[]): void {
    for (const d of decisions) {
      if (this.stopped || this.executed.has(d.decisionId)) continue;
      this.remember(d.decisionId);
      const lane = this.lanes.get(d.shardId);
      if (lane) lane.push(d);
      else {
        this.lanes.set(d.shardId, [d]);
        this.waiting.push(d.shardId);
      }
    }
    this.pump();
  }

  /** The results to send with the next report. */
  pendingResults(): DecisionResultOut[] {
    return this.results.slice();
  }

  /** Drops results a drummer has received. */
  acknowledge(sent: readonly DecisionResultOut[]): void {
    const ids = new Set(sent.map((r) => r.decisionId));
    this.results = this.results.filter((r) => !ids.has(r.decisionId));
  }

  /** Decisions queued or running. */
  get busy(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.length;
    return n;
  }

  stop(): void {
    this.stopped = true;
    this.lanes.clear();
    this.waiting.length = 0;
  }

  private remember(id: number): void {
    this.executed.add(id);
    if (this.executed.size > EXECUTED_IDS_MAX) this.executed.delete(this.executed.values().next().value!);
  }

  private pump(): void {
    while (this.running < LANES_MAX && this.waiting.length > 0) {
      const shardId = this.waiting.shift()!;
      this.running++;
      void this.drain(shardId).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async drain(shardId: number): Promise<void> {
    for (;;) {
      const lane = this.lanes.get(shardId);
      const d = lane?.[0];
      if (!lane || d === undefined || this.stopped) return;
      const result = await this.run(d);
      lane.shift();
      if (lane.length === 0) this.lanes.delete(shardId);
      if (this.results.length < PENDING_RESULTS_MAX) this.results.push(result);
      this.o.log({
        level: result.ok ? "info" : "warn",
        event: "master-decision",
        decision: d.decisionId,
        what: describeDecision(d),
        reason: d.reason,
        ok: result.ok,
        message: result.message,
      });
    }
  }

  private async run(d: Decision): Promise<DecisionResultOut> {
    try {
      const message = await this.carryOut(d);
      return { decisionId: d.decisionId, ok: true, message };
    } catch (error) {
      const text =
        error instanceof LongboatError
          ? `${error.code}: ${error.message}`
          : String((error as Error)?.message ?? error);
      return { decisionId: d.decisionId, ok: false, message: text };
    }
  }

  private async carryOut(d: Decision): Promise<string> {
    const nh = this.o.nodehost;
    const opts = { timeoutMs: this.o.timeoutMs };
    switch (d.kind) {
      case DecisionKind.Create:
      case DecisionKind.Join:
      case DecisionKind.Restore:
        return this.start(d);
      case DecisionKind.Add:
        await nh.syncRequestAddReplica(d.shardId, d.replicaId, d.replicaAddress, d.configChangeId, opts);
        return `replica ${d.replicaId} added at ${d.replicaAddress}`;
      case DecisionKind.Remove:
        await nh.syncRequestDeleteReplica(d.shardId, d.replicaId, d.configChangeId, opts);
        return `replica ${d.replicaId} removed`;
      case DecisionKind.Kill:
        return this.kill(d);
    }
    throw new Error(`unknown decision kind ${d.kind}`);
  }

  private async start(d: Decision): Promise<string> {
    const nh = this.o.nodehost;
    const running = nh.getNodeHostInfo({ skipLogInfo: true }).shards.find((s) => s.shardId === d.shardId);
    if (running?.replicaId === d.replicaId) return `replica ${d.replicaId} runs already`;
    if (running) {
      throw new LongboatError(
        "shardAlreadyExist",
        `replica ${running.replicaId} of shard ${d.shardId} runs here`,
      );
    }
    const create = this.o.apps.get(d.app);
    const config = { ...this.o.replicaConfig, shardId: d.shardId, replicaId: d.replicaId };
    if (d.kind === DecisionKind.Restore) {
      const onDisk = nh.getNodeHostInfo().logsOnDisk;
      if (!onDisk.some((k) => k.shardId === d.shardId && k.replicaId === d.replicaId)) {
        throw new LongboatError(
          "shardNotFound",
          `no data of replica ${d.replicaId} of shard ${d.shardId} here to restore`,
        );
      }
    }
    const members: Record<number, string> = {};
    if (d.kind === DecisionKind.Create)
      for (const m of d.initialMembers) members[m.replicaId] = m.raftAddress;
    await nh.startReplica(members, d.kind === DecisionKind.Join, create, config, { app: d.app });
    return `replica ${d.replicaId} started`;
  }

  private async kill(d: Decision): Promise<string> {
    const nh = this.o.nodehost;
    const running = nh.getNodeHostInfo({ skipLogInfo: true }).shards.find((s) => s.shardId === d.shardId);
    if (running?.replicaId === d.replicaId) nh.stopReplica(d.shardId, d.replicaId);
    try {
      await nh.syncRemoveData(d.shardId, d.replicaId, {
        timeoutMs: this.o.timeoutMs,
        membership: membershipOf(d),
      });
    } catch (error) {
      if (!(error instanceof LongboatError) || error.code !== "shardNotFound") throw error;
    }
    return `replica ${d.replicaId} stopped and its data removed`;
  }
}

/** The committed membership a kill decision carries, as a Membership. */
function membershipOf(d: Decision): Membership {
  const addresses = d.currentMembers.map((m) => ({ replicaId: m.replicaId, address: m.raftAddress }));
  return { configChangeId: d.configChangeId, addresses, nonVotings: [], witnesses: [], removed: [] };
}
