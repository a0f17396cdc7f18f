/**
 * The Drummer API's handlers, independent of the wire (src/drummer/api/app.ts serves them).
 * Any drummer answers: writes are proposed to DrummerDB through the local replica (Raft
 * carries them to the leader); a NodeHost's report, and reads that need the leader's live view
 * of NodeHosts, are forwarded to the drummer that leads (a forwarded call is never forwarded
 * again). A bad request is invalid_argument naming the field; DrummerDB is never asked to
 * apply what these checks refuse. A drummer removed from the drummer group answers every call
 * `unavailable`, saying so: its DrummerDB copy is no longer kept, and another drummer may answer.
 */
import { ConnectError, longboatCode } from "../api/errors.ts";
import type { Env } from "../env.ts";
import type { NodeHost } from "../nodehost.ts";
import type { DrummerMethod, DrummerRequest } from "./api/schemas.ts";
import type { DrummerCall } from "./client.ts";
import { DRUMMER_SHARD_ID, type DrummerSettings } from "./config.ts";
import { checkDefinition } from "./db/apply.ts";
import type { DbUpdate } from "./db/codec.ts";
import { DbCode, type DbResult } from "./db/result.ts";
import type { DrummerDB } from "./db/statemachine.ts";
import { nodeHostStatuses, shardStatuses } from "./health.ts";
import type { LeaderLoop } from "./leader.ts";
import type { DrummerMetrics } from "./metrics.ts";
import type { ReportBook } from "./reports.ts";
import type { Decision, RegionCount } from "./types.ts";
import { checkAddress, checkId, checkRegion, checkRegions } from "./validate.ts";

export interface DrummerServiceDeps {
  nodehost: NodeHost;
  db: DrummerDB;
  reports: ReportBook;
  loop: LeaderLoop;
  settings: DrummerSettings;
  env: Env;
  call: DrummerCall;
  metrics: DrummerMetrics;
}

export interface CallContext {
  /** Forwarded by another drummer: answer here or fail, never forward again. */
  forwarded: boolean;
}

type Handlers = { [M in DrummerMethod]: (req: DrummerRequest<M>, ctx: CallContext) => Promise<object> };

const bad = (problem: string | null) => {
  if (problem !== null) throw new ConnectError("invalid_argument", problem);
};

export class DrummerService {
  constructor(private readonly d: DrummerServiceDeps) {}

  handle<M extends DrummerMethod>(method: M, req: DrummerRequest<M>, ctx: CallContext): Promise<object> {
    const removed = this.removedError();
    if (removed) return Promise.reject(removed);
    return (this.handlers[method] as (r: DrummerRequest<M>, c: CallContext) => Promise<object>)(req, ctx);
  }

  /** The answer of a drummer whose DrummerDB replica was removed from the group; null while a member. */
  private removedError(): ConnectError | null {
    try {
      this.d.nodehost.getLeaderId(DRUMMER_SHARD_ID);
      return null;
    } catch (error) {
      if (longboatCode(error) !== "replicaRemoved") return null; // the handlers say what else is wrong
      // unavailable, not failed_precondition: the master client and cmd then ask another drummer.
      return new ConnectError(
        "unavailable",
        `drummer ${this.d.settings.drummerId} was removed from the drummer group (remove-drummer) and serves nothing; ask another drummer`,
      );
    }
  }

  private readonly handlers: Handlers = {
    Report: (req, ctx) => this.report(req, ctx),
    CreateShard: async (req, ctx) => {
      const shard = {
        shardId: req.shardId,
        app: req.app,
        replicaCount: req.replicaCount,
        regions: req.regions,
      };
      bad(requestProblem("CreateShardRequest", checkDefinition(shard)));
      // The app check needs the leader's reports: a follower hands the call to the leader, and
      // proposes it itself (unchecked) only when the leader cannot be reached.
      if (!this.d.loop.leading && !ctx.forwarded) {
        try {
          return await this.forward("CreateShard", req, ctx);
        } catch (error) {
          if (!(error instanceof ConnectError) || error.code !== "unavailable") throw error;
        }
      }
      if (this.d.loop.leading) bad(this.unknownApp(req.app));
      await this.write({ kind: "createShard", shard });
      return { shard: this.d.db.state.shards.get(req.shardId) };
    },
    SetRegions: async (req) => {
      bad(checkId("SetRegionsRequest.shardId", req.shardId));
      const def = this.d.db.state.shards.get(req.shardId);
      if (def) bad(checkRegions("SetRegionsRequest.regions", req.regions, def.replicaCount));
      await this.write({ kind: "setRegions", shardId: req.shardId, regions: req.regions as RegionCount[] });
      return { shard: this.d.db.state.shards.get(req.shardId) };
    },
    Bootstrap: async () => {
      await this.write({ kind: "bootstrap" });
      return { shardCount: this.d.db.state.shards.size };
    },
    GetDeployment: async () => {
      await this.barrier();
      const s = this.d.db.state;
      return {
        deploymentId: s.deploymentId,
        bootstrapped: s.bootstrapped,
        shardCount: s.shards.size,
        leaderDrummerId: this.leaderId(),
      };
    },
    ListNodeHosts: (req, ctx) =>
      this.fromLeader("ListNodeHosts", req, ctx, () => ({
        nodehosts: nodeHostStatuses(this.d.loop.input()),
        fromLeader: true,
        listening: this.listening(),
      })),
    ListShards: (req, ctx) =>
      this.fromLeader("ListShards", req, ctx, () => {
        const known = this.d.db.state.shards;
        const ids = req.shardIds.length > 0 ? req.shardIds : [...known.keys()].sort((a, b) => a - b);
        return {
          shards: shardStatuses(this.d.loop.input(), ids, this.d.loop.problems),
          unknownShardIds: ids.filter((id) => !known.has(id)),
          fromLeader: true,
        };
      }),
    ListDecisions: async (req) => {
      await this.barrier();
      const s = this.d.db.state;
      const mine = (d: Decision) => req.shardId === 0 || d.shardId === req.shardId;
      return {
        inFlight: [...s.inFlight.values()].filter(mine).sort((a, b) => a.decisionId - b.decisionId),
        finished: req.includeFinished ? s.finished.filter(mine) : [],
        repairsStarted: s.counters.repairsStarted,
        repairsDone: s.counters.repairsDone,
        repairsFailed: s.counters.repairsFailed,
        repairsStopped: s.counters.repairsStopped,
      };
    },
    ListDrummers: async () => this.drummers(),
    AddDrummer: async (req) => {
      bad(
        checkId("AddDrummerRequest.drummerId", req.drummerId) ??
          checkAddress("AddDrummerRequest.raftAddress", req.raftAddress),
      );
      const nh = this.d.nodehost;
      const m = await nh.syncGetShardMembership(DRUMMER_SHARD_ID, { timeoutMs: this.timeout(req.timeoutMs) });
      if (m.removed.includes(req.drummerId)) {
        throw new ConnectError(
          "failed_precondition",
          `drummer ${req.drummerId} was removed before; ids never return (use a new id)`,
        );
      }
      const used = [...m.addresses, ...m.nonVotings, ...m.witnesses];
      if (used.some((x) => x.replicaId === req.drummerId)) {
        throw new ConnectError("already_exists", `drummer ${req.drummerId} is a member already`);
      }
      const at = used.find((x) => x.address === req.raftAddress);
      if (at)
        throw new ConnectError("already_exists", `drummer ${at.replicaId} is at ${req.raftAddress} already`);
      const opts = { timeoutMs: this.timeout(req.timeoutMs) };
      await nh.syncRequestAddReplica(
        DRUMMER_SHARD_ID,
        req.drummerId,
        req.raftAddress,
        m.configChangeId,
        opts,
      );
      return this.drummers();
    },
    RemoveDrummer: async (req) => {
      bad(checkId("RemoveDrummerRequest.drummerId", req.drummerId));
      const nh = this.d.nodehost;
      const m = await nh.syncGetShardMembership(DRUMMER_SHARD_ID, { timeoutMs: this.timeout(req.timeoutMs) });
      if (!m.addresses.some((x) => x.replicaId === req.drummerId)) {
        throw new ConnectError("not_found", `drummer ${req.drummerId} is not a member`);
      }
      if (m.addresses.length === 1)
        throw new ConnectError("failed_precondition", `drummer ${req.drummerId} is the only one`);
      const opts = { timeoutMs: this.timeout(req.timeoutMs) };
      await nh.syncRequestDeleteReplica(DRUMMER_SHARD_ID, req.drummerId, m.configChangeId, opts);
      return this.drummers();
    },
  };

  private async report(req: DrummerRequest<"Report">, ctx: CallContext): Promise<object> {
    bad(
      checkAddress("ReportRequest.raftAddress", req.raftAddress) ??
        (req.apiAddress === "" ? null : checkAddress("ReportRequest.apiAddress", req.apiAddress)) ??
        checkRegion("ReportRequest.region", req.region) ??
        checkId("ReportRequest.deploymentId", req.deploymentId),
    );
    if (!this.d.loop.leading) return this.forward("Report", req, ctx);
    const startMs = this.d.env.nowMs();
    const deployment = this.d.db.state.deploymentId;
    if (deployment !== 0 && req.deploymentId !== deployment) {
      throw new ConnectError(
        "failed_precondition",
        `NodeHost ${req.raftAddress} belongs to deployment ${req.deploymentId}, these drummers to ${deployment}`,
      );
    }
    const recorded = this.d.reports.record(req, this.d.loop.nowMs());
    if (recorded === "full") {
      throw new ConnectError(
        "resource_exhausted",
        `the drummers track ${this.d.reports.hosts.size} NodeHosts, the most they can`,
      );
    }
    let requests = this.requestsFor(req.raftAddress);
    if (requests.length > 0) {
      // Confirm leadership before telling a NodeHost to act (a deposed leader never acts alone).
      await this.barrier();
      requests = this.requestsFor(req.raftAddress);
    }
    this.d.metrics.reportSeconds.observe({}, (this.d.env.nowMs() - startMs) / 1000);
    return {
      requests,
      leaderDrummerId: this.d.settings.drummerId,
      leaderApiAddress: this.d.settings.apiAddress,
      reportIntervalMs: this.d.settings.reportIntervalMs,
      drummerApiAddresses: [...this.d.db.state.drummers.values()].map((x) => x.apiAddress).sort(),
      resendMembers: recorded === "resend",
    };
  }

  /**
   * `CreateShardRequest.app "nope" is run by no NodeHost (known: kv, noop)` when live NodeHosts
   * listed their apps and none lists this one; null when one does, or none said.
   */
  private unknownApp(app: string): string | null {
    const known = new Set<string>();
    const since = this.d.loop.nowMs() - this.d.settings.deadTimeoutMs;
    for (const h of this.d.reports.hosts.values()) {
      if (h.lastReportMs < since) continue;
      for (const a of h.apps ?? []) known.add(a);
    }
    if (known.size === 0 || known.has(app)) return null;
    return `CreateShardRequest.app ${JSON.stringify(app)} is run by no NodeHost (known: ${[...known].sort().join(", ")})`;
  }

  /** Set when DrummerDB applied an entry: the requests index is rebuilt on next use. */
  stale = true;
  private byExecutor = new Map<string, Decision[]>();

  /** Decisions in flight that a host must carry out, in decision order. */
  private requestsFor(address: string): Decision[] {
    if (this.stale) {
      this.byExecutor = new Map();
      for (const d of this.d.db.state.inFlight.values()) {
        const list = this.byExecutor.get(d.executorAddress);
        if (list) list.push(d);
        else this.byExecutor.set(d.executorAddress, [d]);
      }
      for (const list of this.byExecutor.values()) list.sort((a, b) => a.decisionId - b.decisionId);
      this.stale = false;
    }
    return this.byExecutor.get(address) ?? [];
  }

  private async forward<M extends DrummerMethod>(
    method: M,
    req: DrummerRequest<M>,
    ctx: CallContext,
  ): Promise<object> {
    const me = this.d.settings.drummerId;
    if (ctx.forwarded)
      throw new ConnectError("unavailable", `drummer ${me} does not lead the drummers (any more); retry`);
    const leaderId = this.leaderId();
    if (leaderId === 0 || leaderId === me) {
      throw new ConnectError("unavailable", "the drummers have no leader ready yet; retry");
    }
    const address = this.d.db.state.drummers.get(leaderId)?.apiAddress;
    if (!address)
      throw new ConnectError(
        "unavailable",
        `leader drummer ${leaderId} has not registered its API address yet; retry`,
      );
    try {
      return await this.d.call(address, method, req as Record<string, unknown>, {
        timeoutMs: this.d.settings.requestTimeoutMs,
        forwarded: true,
      });
    } catch (error) {
      const e = error as { code?: string; detail?: string };
      if (typeof e.code === "string" && e.code !== "unavailable" && e.code !== "unknown") {
        throw new ConnectError(e.code as ConnectError["code"], e.detail ?? "");
      }
      throw new ConnectError(
        "unavailable",
        `forwarding to leader drummer ${leaderId} at ${address} failed: ${e.detail ?? String(error)}`,
      );
    }
  }

  /** Answers from the leader's live view; forwards when not leading; falls back to committed records. */
  private async fromLeader<M extends "ListNodeHosts" | "ListShards">(
    method: M,
    req: DrummerRequest<M>,
    ctx: CallContext,
    local: () => object,
  ): Promise<object> {
    if (this.d.loop.leading) return local();
    try {
      return await this.forward(method, req, ctx);
    } catch (error) {
      if (ctx.forwarded) throw error;
      await this.barrier();
      const answer = local() as Record<string, unknown>;
      return { ...answer, fromLeader: false };
    }
  }

  private async write(u: DbUpdate): Promise<DbResult> {
    const r = await this.d.loop.propose(u);
    if (r.code === DbCode.Ok) return r;
    const code =
      r.code === DbCode.Invalid
        ? "invalid_argument"
        : r.code === DbCode.Exists
          ? "already_exists"
          : "failed_precondition";
    throw new ConnectError(code, r.message);
  }

  /** Waits until this drummer's DrummerDB has applied everything committed before the call. */
  private async barrier(): Promise<void> {
    await this.d.nodehost.syncGetShardMembership(DRUMMER_SHARD_ID, {
      timeoutMs: this.d.settings.requestTimeoutMs,
    });
  }

  private async drummers(): Promise<object> {
    const m = await this.d.nodehost.syncGetShardMembership(DRUMMER_SHARD_ID, {
      timeoutMs: this.d.settings.requestTimeoutMs,
    });
    const leader = this.leaderId();
    const records = this.d.db.state.drummers;
    return {
      drummers: m.addresses.map((x) => ({
        drummerId: x.replicaId,
        raftAddress: x.address,
        apiAddress: records.get(x.replicaId)?.apiAddress ?? "",
        isLeader: x.replicaId === leader,
      })),
      leaderDrummerId: leader,
      configChangeId: m.configChangeId,
    };
  }

  private leaderId(): number {
    try {
      const l = this.d.nodehost.getLeaderId(DRUMMER_SHARD_ID);
      return l.valid ? l.leaderId : 0;
    } catch {
      return 0;
    }
  }

  private listening(): boolean {
    const input = this.d.loop.input();
    return input.nowMs - input.listeningSinceMs < input.config.deadTimeoutMs;
  }

  private timeout(requested: number): number {
    return requested > 0 ? requested : this.d.settings.requestTimeoutMs;
  }
}

/** A DrummerDB field problem (`shard.app …`) as the request's field (`CreateShardRequest.app …`). */
function requestProblem(message: string, problem: string | null): string | null {
  return problem === null ? null : problem.replace(/^shard\./, `${message}.`);
}
