import type { LeaderRole } from "../engine/events.ts";
import type { Env, TimerHandle } from "../env.ts";

/**
 * The ordering rules of leader-change hooks (docs/leader-hooks.md), without any I/O: the CLI
 * supplies the runner that spawns a command or POSTs a webhook.
 *
 * Per shard: one notification at a time, in the order the events came (their terms never
 * decrease; an event with a lower term than one already taken is dropped as stale); while one
 * runs or waits to be retried, a newer event replaces the one queued (superseded: only the
 * latest state matters, and it is never delivered before an older one). A run that exceeds
 * timeoutMs is aborted; if it does not settle within abandonAfterMs after that, the shard moves
 * on anyway. A failed run is retried with exponential backoff (with jitter) up to maxAttempts,
 * unless a newer event supersedes it first.
 *
 * ```ts
 * const q = new HookQueue({ name: "webhook", env, timeoutMs: 5000, maxAttempts: 10, run, log });
 * nh.subscribe((e) => { if (e.kind === "roleChanged") q.offer(e); }, { kinds: ["roleChanged"] });
 * ```
 */

/** What a hook is told: this host's replica of shardId now has role in term, leader leaderId. */
export interface LeaderChange {
  shardId: number;
  replicaId: number;
  term: number;
  /** The leader acted on: the replica itself when role is leader, 0 when role is none. */
  leaderId: number;
  role: LeaderRole;
}

/** How one run ended; retry asks for another attempt (a transient failure). */
export type HookOutcome =
  | { ok: true; detail?: Record<string, unknown> }
  | { ok: false; retry: boolean; detail: Record<string, unknown> };

/** Runs one notification; must settle soon after signal aborts (the timeout). */
export type HookRunner = (change: LeaderChange, attempt: number, signal: AbortSignal) => Promise<HookOutcome>;

export interface HookQueueOptions {
  /** Names the hook in logs ("command", "webhook"). */
  name: string;
  env: Pick<Env, "nowMs" | "setTimer" | "random">;
  /** Longest one run may take before it is aborted, in milliseconds. */
  timeoutMs: number;
  /** Runs per change, the first included (1: never retried). */
  maxAttempts: number;
  /** First retry delay; each retry doubles it up to backoffMsMax, ±25 % jitter. Default 200. */
  backoffMsInitial?: number;
  /** Default 30 000. */
  backoffMsMax?: number;
  /** After an abort, how long to wait for the run to settle before moving on. Default 2000. */
  abandonAfterMs?: number;
  run: HookRunner;
  log: (event: Record<string, unknown>) => void;
}

interface ShardState {
  running: LeaderChange | null;
  /** Aborts the running notification (close()). */
  abort: (() => void) | null;
  /** The newest change waiting for the running one (or for a retry delay) to end. */
  pending: LeaderChange | null;
  /** A change waiting for its retry delay, and the timer. */
  retry: { change: LeaderChange; attempt: number; timer: TimerHandle } | null;
  /** Highest term taken for this shard: a lower one is stale. */
  term: number;
}

export interface HookQueueStats {
  started: number;
  succeeded: number;
  failed: number;
  timedOut: number;
  superseded: number;
  stale: number;
}

/** Upper bound of maxAttempts. */
export const HOOK_ATTEMPTS_MAX = 1000;

export class HookQueue {
  private readonly shards = new Map<number, ShardState>();
  private readonly backoffMsInitial: number;
  private readonly backoffMsMax: number;
  private readonly abandonAfterMs: number;
  private idleWaiters: (() => void)[] = [];
  readonly stats: HookQueueStats = {
    started: 0,
    succeeded: 0,
    failed: 0,
    timedOut: 0,
    superseded: 0,
    stale: 0,
  };

  constructor(private readonly opts: HookQueueOptions) {
    positive("timeoutMs", opts.timeoutMs);
    if (
      !Number.isSafeInteger(opts.maxAttempts) ||
      opts.maxAttempts < 1 ||
      opts.maxAttempts > HOOK_ATTEMPTS_MAX
    ) {
      throw new RangeError(
        `HookQueue: maxAttempts must be an integer in 1..${HOOK_ATTEMPTS_MAX}, got ${opts.maxAttempts}`,
      );
    }
    this.backoffMsInitial = positive("backoffMsInitial", opts.backoffMsInitial ?? 200);
    this.backoffMsMax = positive("backoffMsMax", opts.backoffMsMax ?? 30_000);
    this.abandonAfterMs = positive("abandonAfterMs", opts.abandonAfterMs ?? 2000);
  }

  private closed = false;

  /** Takes a leader change of this host's replica; runs it now, or after the one running. */
  offer(change: LeaderChange): void {
    if (this.closed) return;
    const st = this.state(change.shardId);
    if (change.term < st.term) {
      this.stats.stale++;
      this.logChange("info", "hook-stale", change, { newestTerm: st.term });
      return;
    }
    st.term = change.term;
    if (st.retry !== null) {
      // A newer state supersedes the one waiting to be retried: run the newer one now.
      st.retry.timer.cancel();
      this.stats.superseded++;
      this.logChange("info", "hook-superseded", st.retry.change, { by: summary(change) });
      st.retry = null;
      this.start(st, change, 1);
      return;
    }
    if (st.running !== null) {
      if (st.pending !== null) {
        this.stats.superseded++;
        this.logChange("info", "hook-superseded", st.pending, { by: summary(change) });
      }
      st.pending = change;
      return;
    }
    this.start(st, change, 1);
  }

  /**
   * Stops: queued changes and retries are dropped, running notifications aborted (a command is
   * killed); later offers are ignored. whenIdle() resolves once the aborted runs settle.
   */
  close(): void {
    this.closed = true;
    for (const st of [...this.shards.values()]) {
      st.pending = null;
      if (st.retry !== null) {
        st.retry.timer.cancel();
        const change = st.retry.change;
        st.retry = null;
        this.finished(
          st,
          change,
          this.opts.maxAttempts,
          { ok: false, retry: false, detail: { error: "closed" } },
          0,
        );
        continue;
      }
      st.abort?.();
    }
  }

  /** True when no notification runs, waits or is queued. */
  get idle(): boolean {
    return this.shards.size === 0;
  }

  /** Resolves once idle (shutdown waits for the last "none"); the caller bounds the wait. */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private state(shardId: number): ShardState {
    let st = this.shards.get(shardId);
    if (st === undefined) {
      st = { running: null, abort: null, pending: null, retry: null, term: this.lastTerms.get(shardId) ?? 0 };
      this.shards.set(shardId, st);
    }
    return st;
  }

  /** Highest term per shard of shards with nothing in flight (their state is dropped when idle). */
  private readonly lastTerms = new Map<number, number>();

  private start(st: ShardState, change: LeaderChange, attempt: number): void {
    st.running = change;
    this.stats.started++;
    this.logChange("info", "hook-start", change, { attempt });
    const controller = new AbortController();
    st.abort = () => controller.abort();
    const startedMs = this.opts.env.nowMs();
    let settled = false;
    let abandonTimer: TimerHandle | null = null;
    const timeoutTimer = this.opts.env.setTimer(this.opts.timeoutMs, () => {
      this.stats.timedOut++;
      this.logChange("warn", "hook-timeout", change, { attempt, timeoutMs: this.opts.timeoutMs });
      controller.abort();
      abandonTimer = this.opts.env.setTimer(this.abandonAfterMs, () =>
        done({ ok: false, retry: true, detail: { error: "did not stop after the timeout; abandoned" } }),
      );
    });
    const done = (outcome: HookOutcome) => {
      if (settled) return;
      settled = true;
      timeoutTimer.cancel();
      abandonTimer?.cancel();
      this.finished(st, change, attempt, outcome, this.opts.env.nowMs() - startedMs);
    };
    let promise: Promise<HookOutcome>;
    try {
      promise = this.opts.run(change, attempt, controller.signal);
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(done, (error: unknown) =>
      done({ ok: false, retry: true, detail: { error: String(error) } }),
    );
  }

  private finished(
    st: ShardState,
    change: LeaderChange,
    attempt: number,
    outcome: HookOutcome,
    durationMs: number,
  ): void {
    st.running = null;
    st.abort = null;
    if (outcome.ok) this.stats.succeeded++;
    else this.stats.failed++;
    const level = outcome.ok ? "info" : "warn";
    this.logChange(level, outcome.ok ? "hook-done" : "hook-failed", change, {
      attempt,
      durationMs,
      ...(outcome.detail ?? {}),
    });
    if (st.pending !== null) {
      const next = st.pending;
      st.pending = null;
      this.start(st, next, 1);
      return;
    }
    if (!outcome.ok && outcome.retry && attempt < this.opts.maxAttempts && !this.closed) {
      const delayMs = this.backoff(attempt);
      const timer = this.opts.env.setTimer(delayMs, () => {
        st.retry = null;
        this.start(st, change, attempt + 1);
      });
      st.retry = { change, attempt, timer };
      return;
    }
    if (!outcome.ok && outcome.retry && this.opts.maxAttempts > 1)
      this.logChange("error", "hook-gave-up", change, { attempts: attempt });
    this.lastTerms.set(change.shardId, st.term);
    this.shards.delete(change.shardId);
    if (this.idle) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Delay before attempt + 1: initial·2^(attempt−1), at most backoffMsMax, ±25 % jitter. */
  private backoff(attempt: number): number {
    const base = Math.min(this.backoffMsMax, this.backoffMsInitial * 2 ** Math.min(attempt - 1, 30));
    return Math.round(base * (0.75 + 0.5 * this.opts.env.random()));
  }

  private logChange(
    level: string,
    event: string,
    change: LeaderChange,
    extra: Record<string, unknown>,
  ): void {
    this.opts.log({ level, event, hook: this.opts.name, ...summary(change), ...extra });
  }
}

function summary(c: LeaderChange): Record<string, unknown> {
  return { shard: c.shardId, replica: c.replicaId, term: c.term, role: c.role, leader: c.leaderId };
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`HookQueue: ${name} must be a positive number, got ${value}`);
  return value;
}
