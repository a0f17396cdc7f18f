/**
 * What the leader's next scheduling pass looks at. A full pass over a large deployment (tens
 * of thousands of shards) takes long enough to delay the DrummerDB replica's own Raft work on
 * the same thread, so the leader plans incrementally: shards and hosts whose reports changed,
 * hosts that died or came back since the last pass (and their shards), shards the last pass
 * acted on or had a problem with, shards with decisions in flight (the scheduler adds those),
 * the shards with a member on a never-heard host once the listening period ends, and a
 * rolling sweep over every shard (all of them every SWEEP_PASSES passes) as a safety net.
 */
import type { ReportBook } from "./reports.ts";
import type { SchedulerFocus, SchedulerInput, SchedulerOutput } from "./scheduler/types.ts";

/** Every placed shard is planned at least once per this many passes. */
export const SWEEP_PASSES = 30;
/**
 * Shards a pass plans at most (besides those with decisions in flight): a burst of changes (a
 * new leader hearing every host for the first time) is spread over passes instead of holding
 * the thread — and the DrummerDB replica's heartbeats — for one long pass.
 */
export const PLAN_SHARDS_PER_PASS_MAX = 2048;
/** The fewest shards a pass plans, however slow the machine. */
export const PLAN_SHARDS_PER_PASS_MIN = 64;
/**
 * A pass should hold the thread at most about this long (the DrummerDB replica heartbeats every
 * 2 ticks, 200 ms by default): a slower pass halves the next one's size, a pass under a quarter
 * of it doubles it again. Passes take no time on the simulator's clock, which keeps them whole.
 */
export const PASS_BUDGET_MS = 100;

export class Focus {
  private readonly alive = new Map<string, boolean>();
  private carry = new Set<number>();
  /** Shards a pass could not take (over PLAN_SHARDS_PER_PASS_MAX), planned first next time. */
  private backlog = new Set<number>();
  private listening = true;
  private cursor = 0;
  private sweepIds: number[] = [];
  /**
   * Shards the next pass plans at most (adapted to how long passes take here). A new leader
   * starts small — it may lead because the last one was too slow — and doubles up while passes are quick.
   */
  limit = PLAN_SHARDS_PER_PASS_MIN;

  /** Shards are waiting for a pass (more changed than the last pass could take). */
  get behind(): boolean {
    return this.backlog.size > 0;
  }

  /** Adapts the size of the next passes to how long this one held the thread. */
  took(passMs: number): void {
    if (passMs > PASS_BUDGET_MS) this.limit = Math.max(PLAN_SHARDS_PER_PASS_MIN, Math.floor(this.limit / 2));
    else if (passMs < PASS_BUDGET_MS / 4) this.limit = Math.min(PLAN_SHARDS_PER_PASS_MAX, this.limit * 2);
  }

  /** The focus of the next pass (takes the report book's changes). */
  next(input: SchedulerInput, reports: ReportBook): SchedulerFocus {
    const dirty = reports.takeDirty();
    // At most `limit` shards: carried ones first, then the oldest waiting, then the new ones;
    // the rest wait in the backlog. Only what is taken or added is touched (a backlog of tens
    // of thousands after a new leader's first reports is not copied every pass).
    const now = new Set<number>();
    const add = (id: number) => {
      if (now.has(id)) return;
      if (now.size < this.limit) {
        this.backlog.delete(id);
        now.add(id);
      } else this.backlog.add(id);
    };
    for (const id of this.carry) add(id);
    for (const id of this.backlog) {
      if (now.size >= this.limit) break;
      this.backlog.delete(id);
      now.add(id);
    }
    for (const id of dirty.shards) add(id);
    const hosts = dirty.hosts;
    const deadMs = input.config.deadTimeoutMs;
    for (const h of reports.hosts.values()) {
      const alive = input.nowMs - h.lastReportMs <= deadMs;
      if (this.alive.get(h.raftAddress) === alive) continue;
      this.alive.set(h.raftAddress, alive);
      hosts.add(h.raftAddress);
      for (const r of h.replicas) add(r.shardId);
      for (const k of h.logsOnDisk) add(Number(k.slice(0, k.indexOf(":")))); // "shard:replica"
    }
    const listening = input.nowMs - input.listeningSinceMs < deadMs;
    if (this.listening && !listening) {
      // Nobody was judged dead until now: every shard with a member on a host never heard.
      for (const v of input.state.views.values()) {
        if (v.members.some((m) => !reports.hosts.has(m.raftAddress))) add(v.shardId);
      }
    }
    this.listening = listening;
    if (this.backlog.size === 0) this.sweep(input, now);
    return { shards: now, hosts };
  }

  /** Remembers the shards the pass acted on or could not (looked at again next pass). */
  after(input: SchedulerInput, out: SchedulerOutput): void {
    const carry = new Set<number>();
    for (const d of out.step.decisions) carry.add(d.shardId);
    for (const p of out.problems) carry.add(p.shardId);
    for (const v of out.step.views) carry.add(v.shardId);
    for (const e of out.step.ends) {
      const d = input.state.inFlight.get(e.decisionId);
      if (d) carry.add(d.shardId);
    }
    for (const id of input.state.repairing) carry.add(id);
    this.carry = carry;
  }

  /**
   * The next shards of the rolling sweep, only as many as the pass has room for: the sweep is a
   * safety net, it never makes a backlog (which would make the leader catch up, pass after pass,
   * on a machine where passes are small). All shards are swept every SWEEP_PASSES passes, or
   * every shards/limit passes when the limit is smaller.
   */
  private sweep(input: SchedulerInput, now: Set<number>): void {
    const views = input.state.views;
    if (views.size === 0) return;
    const per = Math.min(Math.ceil(views.size / SWEEP_PASSES), this.limit - now.size);
    if (per <= 0) return;
    // The ids are listed once a round (copying tens of thousands of keys every pass cost more
    // than the pass); a shard placed meanwhile joins the next round.
    if (this.cursor >= this.sweepIds.length) {
      this.sweepIds = [...views.keys()];
      this.cursor = 0;
    }
    const end = Math.min(this.sweepIds.length, this.cursor + per);
    for (let i = this.cursor; i < end; i++) {
      const id = this.sweepIds[i]!;
      if (views.has(id)) now.add(id);
    }
    this.cursor = end;
  }
}
