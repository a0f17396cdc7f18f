/**
 * The leader loop. Only the drummer whose replica leads the DrummerDB shard schedules: no
 * lease of its own. On becoming leader in a Raft term it commits LeaderStarted for that term
 * (after which DrummerDB refuses every step of an older term), continues DrummerDB's clock
 * from the last stamped time, and listens for a full dead timeout before it judges anyone
 * dead. Then every pass it runs the scheduler over the committed state and its reports and
 * proposes the step; NodeHosts learn of a decision only once it is committed and applied.
 */
import type { Env, TimerHandle } from "../env.ts";
import type { NodeHost } from "../nodehost.ts";
import { type DbUpdate, encodeUpdate } from "./db/codec.ts";
import { DbCode, type DbResult } from "./db/result.ts";
import type { DrummerDB } from "./db/statemachine.ts";
import { DRUMMER_SHARD_ID, type DrummerSettings } from "./config.ts";
import type { ReportBook } from "./reports.ts";
import { schedule } from "./scheduler/schedule.ts";
import { Focus } from "./focus.ts";
import { DEFAULT_SCHEDULER_CONFIG, type Problem, type SchedulerInput } from "./scheduler/types.ts";

type Log = (event: Record<string, unknown>) => void;

/** A scheduling pass longer than this is logged (it delays the DrummerDB replica's Raft work). */
const SLOW_PASS_MS = 200;
/**
 * The gap before the next pass while the last one left work (a backlog of changed shards,
 * launches beyond its bound): a large placement or a new leader's first look goes in bounded
 * chunks back to back, each letting reports and Raft messages in between, instead of one
 * chunk per pass interval.
 */
export const CATCH_UP_GAP_MS = 20;
const text = new TextDecoder();

export interface LeaderLoopDeps {
  nodehost: NodeHost;
  db: DrummerDB;
  reports: ReportBook;
  env: Env;
  settings: DrummerSettings;
  log: Log;
  /** The deployment ID in DrummerDB differs from this drummer's: it cannot serve. */
  onFatal: (message: string) => void;
}

export class LeaderLoop {
  private phase: "follower" | "starting" | "leading" = "follower";
  private term = 0;
  private offsetMs = 0;
  private listeningSinceMs = 0;
  private timer: TimerHandle | null = null;
  private stopped = false;
  /** The scheduler's last problem per shard (shown by ListShards). */
  readonly problems = new Map<number, Problem>();
  /** Passes run, steps proposed (counters for metrics and tests). */
  readonly counts = { passes: 0, steps: 0, stepsRefused: 0 };
  private focus = new Focus();
  /** The last pass left work: the next one comes after CATCH_UP_GAP_MS. */
  private behind = false;

  constructor(private readonly d: LeaderLoopDeps) {}

  start(): void {
    this.stopped = false;
    this.arm(0);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.stepDown("stopping");
  }

  /** Leading: started as leader in a term, and the DrummerDB replica still leads in that term. */
  get leading(): boolean {
    if (this.phase !== "leading") return false;
    try {
      const l = this.d.nodehost.getLeaderId(DRUMMER_SHARD_ID);
      return l.valid && l.leaderId === this.d.settings.drummerId && l.term === this.term;
    } catch {
      return false;
    }
  }

  get leaderTerm(): number {
    return this.term;
  }

  /** Drummer time: this leader's clock on DrummerDB's timeline. */
  nowMs(): number {
    return this.d.env.nowMs() + this.offsetMs;
  }

  /** The scheduler's input as of now (valid while leading). */
  input(): SchedulerInput {
    const s = this.d.settings;
    return {
      state: this.d.db.state,
      hosts: this.d.reports.hosts,
      nowMs: this.nowMs(),
      listeningSinceMs: this.listeningSinceMs,
      index: this.d.reports.index,
      config: {
        ...DEFAULT_SCHEDULER_CONFIG,
        deadTimeoutMs: s.deadTimeoutMs,
        maxRepairs: s.maxRepairs,
        decisionTimeoutMs: s.decisionTimeoutMs,
        launchesPerPassMax: s.launchesPerPassMax,
      },
    };
  }

  private arm(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.d.env.setTimer(delayMs, () => void this.tick());
  }

  private async tick(): Promise<void> {
    this.behind = false;
    try {
      await this.step();
    } catch (error) {
      this.behind = false;
      this.d.log({ level: "warn", event: "drummer-leader-step-failed", error: String(error) });
    } finally {
      const interval = this.d.settings.passIntervalMs;
      this.arm(this.behind ? Math.min(interval, CATCH_UP_GAP_MS) : interval);
    }
  }

  private async step(): Promise<void> {
    let leader: { leaderId: number; term: number; valid: boolean };
    try {
      leader = this.d.nodehost.getLeaderId(DRUMMER_SHARD_ID);
    } catch {
      return this.stepDown("the DrummerDB replica is not running");
    }
    if (!leader.valid || leader.leaderId !== this.d.settings.drummerId) {
      if (this.phase !== "follower") this.stepDown(`drummer ${leader.leaderId} leads now`);
      return;
    }
    if (this.phase === "follower" || leader.term !== this.term) return this.become(leader.term);
    if (this.phase === "leading") await this.pass();
  }

  private async become(term: number): Promise<void> {
    this.phase = "starting";
    this.term = term;
    this.d.reports.clear();
    this.problems.clear();
    const r = await this.propose({
      kind: "leaderStarted",
      leaderTerm: term,
      drummerId: this.d.settings.drummerId,
    });
    const state = this.d.db.state;
    const mine = state.leaderTerm === term && state.leaderDrummerId === this.d.settings.drummerId;
    if (r.code !== DbCode.Ok && !mine) {
      this.phase = "follower";
      this.d.log({ level: "warn", event: "drummer-leader-start-refused", term, reason: r.message });
      return;
    }
    if (!(await this.checkDeployment())) return;
    this.offsetMs = state.timeMs - this.d.env.nowMs();
    this.listeningSinceMs = this.nowMs();
    this.focus = new Focus();
    this.phase = "leading";
    this.d.log({
      level: "info",
      event: "drummer-leader-started",
      term,
      listeningMs: this.d.settings.deadTimeoutMs,
    });
  }

  /** Writes this drummer's deployment ID when DrummerDB has none; false (and fatal) when it has another. */
  private async checkDeployment(): Promise<boolean> {
    const want = this.d.settings.deploymentId;
    if (this.d.db.state.deploymentId === 0) await this.propose({ kind: "setDeployment", deploymentId: want });
    const have = this.d.db.state.deploymentId;
    if (have === want) return true;
    this.phase = "follower";
    this.d.onFatal(
      `DrummerDB belongs to deployment ${have}, this drummer is configured for ${want} (use --deployment-id ${have} or a new --data-dir)`,
    );
    return false;
  }

  private async pass(): Promise<void> {
    const startMs = this.d.env.nowMs();
    const input = this.input();
    input.focus = this.focus.next(input, this.d.reports);
    // Launches, like planned shards, shrink on a machine where passes run long.
    input.config.launchesPerPassMax = Math.min(input.config.launchesPerPassMax, this.focus.limit);
    const out = schedule(input);
    this.focus.after(input, out);
    this.counts.passes++;
    const passMs = this.d.env.nowMs() - startMs;
    this.focus.took(passMs);
    if (passMs > SLOW_PASS_MS) {
      this.d.log({
        level: "warn",
        event: "drummer-slow-pass",
        ms: Math.round(passMs),
        shards: input.focus.shards.size,
      });
    }
    this.d.reports.prune(input.state.inFlight);
    this.noteProblems(out.problems);
    this.behind = out.more || this.focus.behind;
    const s = out.step;
    const items =
      s.hosts.length +
      s.views.length +
      s.decisions.length +
      s.ends.length +
      s.repairsDoneShardIds.length +
      s.repairsStoppedShardIds.length;
    if (items === 0) return;
    const r = await this.propose({
      kind: "schedulerStep",
      step: { leaderTerm: this.term, nowMs: input.nowMs, maxRepairs: this.d.settings.maxRepairs, ...s },
    });
    this.counts.steps++;
    if (r.code !== DbCode.Ok) {
      this.counts.stepsRefused++;
      this.d.log({ level: "warn", event: "drummer-step-refused", term: this.term, reason: r.message });
      if (r.code === DbCode.Precondition) this.stepDown(r.message);
      return;
    }
    for (const shardId of s.repairsStoppedShardIds) {
      this.d.log({
        level: "warn",
        event: "drummer-repair-stopped",
        term: this.term,
        shard: shardId,
        reason: out.problems.find((p) => p.shardId === shardId)?.message ?? "",
      });
    }
    const level = r.message.includes("skipped") ? "warn" : "debug";
    this.d.log({
      level,
      event: "drummer-step",
      term: this.term,
      decisions: s.decisions.length,
      result: r.message,
    });
  }

  private noteProblems(problems: Problem[]): void {
    const now = new Map(problems.map((p) => [p.shardId, p]));
    for (const [shardId, p] of now) {
      if (this.problems.get(shardId)?.message !== p.message) {
        this.d.log({ level: "warn", event: "drummer-shard-problem", shard: shardId, problem: p.message });
      }
    }
    this.problems.clear();
    for (const [k, v] of now) this.problems.set(k, v);
  }

  private stepDown(why: string): void {
    if (this.phase === "follower") return;
    this.phase = "follower";
    this.d.reports.clear();
    this.d.log({ level: "info", event: "drummer-leader-stopped", term: this.term, why });
  }

  /** Proposes one DrummerDB update and returns its result. */
  async propose(u: DbUpdate): Promise<DbResult> {
    const nh = this.d.nodehost;
    const r = await nh.syncPropose(nh.getNoOpSession(DRUMMER_SHARD_ID), encodeUpdate(u), {
      timeoutMs: this.d.settings.requestTimeoutMs,
    });
    return { code: r.value as DbResult["code"], message: text.decode(r.data) };
  }
}
