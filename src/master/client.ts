/**
 * The master client of a NodeHost in master mode: it reports to the drummers on schedule,
 * to whichever drummer answers (the leader's address comes back in every reply, so it goes
 * there next), and hands each reply's decisions to the executor. While no drummer answers it
 * keeps trying and the NodeHost keeps serving its replicas as they are.
 *
 * ```ts
 * const master = new MasterClient({ nodehost: nh, masters: ["d1:9001", "d2:9001"], apps: builtinApps(),
 *   apiAddress: "h1:8001", region: "eu" });
 * master.start();
 * ```
 */
import type { FetchLike } from "../api/types.ts";
import {
  type DrummerCall,
  DrummerCallError,
  type DrummerSecurity,
  drummerCaller,
} from "../drummer/client.ts";
import { toDecision } from "../drummer/db/codec.ts";
import type { ReplicaConfigInput } from "../engine/config.ts";
import { type Env, realEnv, type TimerHandle } from "../env.ts";
import type { NodeHost } from "../nodehost.ts";
import type { AppRegistry } from "../statemachine/registry.ts";
import { Executor } from "./executor.ts";
import { HostFigures, type LiveSamples } from "./host-figures.ts";
import { buildReport, MembersSent } from "./report.ts";

export interface MasterClientOptions {
  nodehost: NodeHost;
  /** Drummer API addresses (host:port). */
  masters: string[];
  /** The apps this NodeHost can run (built-in and plugins), by name. */
  apps: AppRegistry;
  /** This NodeHost's API address, for the drummers' listings and clients. */
  apiAddress: string;
  region: string;
  /** Raft settings of the replicas the drummers have it start. Default: the engine's defaults. */
  replicaConfig?: Omit<ReplicaConfigInput, "shardId" | "replicaId">;
  /** Timeout of one report call and of one config change. Default 5000. */
  timeoutMs?: number;
  /** Report interval until a drummer says another. Default 5000. */
  reportIntervalMs?: number;
  env?: Env;
  log?: (event: Record<string, unknown>) => void;
  /** How calls reach the drummers. Default globalThis.fetch (the simulator routes in process). */
  fetch?: FetchLike;
  /** The drummers' API token and TLS (`nodehost --master-token`, `--master-tls-*`). */
  security?: DrummerSecurity;
  /** This NodeHost's API metrics (nodeHostSamples): each report then carries live figures for the dashboard. */
  liveSamples?: LiveSamples;
}

/** Drummer addresses learned from replies, at most. */
export const LEARNED_ADDRESSES_MAX = 16;

export class MasterClient {
  readonly executor: Executor;
  private readonly env: Env;
  private readonly log: (event: Record<string, unknown>) => void;
  private readonly call: DrummerCall;
  private readonly timeoutMs: number;
  private intervalMs: number;
  private leader: string | null = null;
  private learned: string[] = [];
  private timer: TimerHandle | null = null;
  private stopped = true;
  private failing = false;
  private failingReason = "";
  /** Reports answered and not, answers asking for every member again, and the last error (for tests and metrics). */
  readonly counts = { answered: 0, unanswered: 0, membersResent: 0 };
  lastError = "";
  private lastErrorCode = "";
  /** Replicas whose members the leading drummer has (left out of the next report). */
  readonly membersSent = new MembersSent();
  private readonly figures: HostFigures | undefined;

  constructor(private readonly o: MasterClientOptions) {
    if (o.masters.length === 0) throw new Error("MasterClient needs at least one drummer address");
    this.env = o.env ?? realEnv();
    this.log = o.log ?? (() => {});
    this.call = drummerCaller(o.fetch, this.env, o.security);
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.intervalMs = o.reportIntervalMs ?? 5000;
    this.figures = o.liveSamples ? new HostFigures(o.liveSamples, () => this.env.nowMs()) : undefined;
    this.executor = new Executor({
      nodehost: o.nodehost,
      apps: o.apps,
      replicaConfig: o.replicaConfig ?? {},
      timeoutMs: this.timeoutMs,
      log: this.log,
    });
  }

  /** Reports now, then every report interval. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.arm(0);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.executor.stop();
  }

  /** The report interval in force (the drummers' when they said one). */
  get reportIntervalMs(): number {
    return this.intervalMs;
  }

  private arm(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.env.setTimer(delayMs, () => void this.tick());
  }

  private async tick(): Promise<void> {
    try {
      await this.reportOnce();
    } catch (error) {
      this.log({ level: "warn", event: "master-report-failed", error: String(error) });
    } finally {
      this.arm(this.intervalMs);
    }
  }

  /** One report to the first drummer that answers; true when one did. */
  async reportOnce(): Promise<boolean> {
    const results = this.executor.pendingResults();
    // Members the leader has are left out; it asks for them again when it lacks them.
    const request = buildReport(this.o.nodehost, {
      apiAddress: this.o.apiAddress,
      region: this.o.region,
      results,
      apps: this.o.apps.names(),
      members: this.membersSent,
      figures: this.figures?.next(),
    });
    for (const address of this.targets()) {
      if (this.stopped) return false;
      try {
        const reply = await this.call(address, "Report", request, { timeoutMs: this.timeoutMs });
        this.executor.acknowledge(results);
        if (reply.resendMembers === true) this.counts.membersResent++;
        this.membersSent.answered(request, reply.resendMembers === true);
        this.answered(reply);
        return true;
      } catch (error) {
        this.lastError = error instanceof DrummerCallError ? error.message : String(error);
        this.lastErrorCode = error instanceof DrummerCallError ? error.code : "unknown";
        if (error instanceof DrummerCallError && refusal(error.code)) break; // every drummer would say so
        if (this.leader === address) this.leader = null;
      }
    }
    this.counts.unanswered++;
    // Logged when the drummers stop answering, and again when the reason changes (a drummer
    // that did not listen yet, then one refusing the token, say): once per reason, not per report.
    const reason = this.lastErrorCode;
    if (!this.failing || reason !== this.failingReason) {
      this.log({ level: "warn", event: "master-unreachable", error: this.lastError });
    }
    this.failing = true;
    this.failingReason = reason;
    return false;
  }

  private answered(reply: Record<string, unknown>): void {
    this.counts.answered++;
    if (this.failing) this.log({ level: "info", event: "master-reachable-again" });
    this.failing = false;
    const leader = reply.leaderApiAddress;
    if (typeof leader === "string" && leader !== "") this.leader = leader;
    const interval = reply.reportIntervalMs;
    if (typeof interval === "number" && interval > 0) this.intervalMs = interval;
    const addresses = reply.drummerApiAddresses;
    if (Array.isArray(addresses))
      this.learned = addresses.filter((a) => typeof a === "string").slice(0, LEARNED_ADDRESSES_MAX);
    const requests = Array.isArray(reply.requests) ? reply.requests : [];
    this.executor.submit(requests.map((r) => toDecision(r as Record<string, unknown>)));
  }

  /** The leader first, then the configured drummers, then the ones learned from replies. */
  private targets(): string[] {
    const all = [...(this.leader ? [this.leader] : []), ...this.o.masters, ...this.learned];
    return [...new Set(all)];
  }
}

/** Codes every drummer would answer alike (a bad report, another deployment): no point asking the next. */
function refusal(code: string): boolean {
  return code === "invalid_argument" || code === "failed_precondition" || code === "resource_exhausted";
}
