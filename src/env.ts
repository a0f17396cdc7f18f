import type { Rng } from "./raft/storage.ts";

/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Time and randomness for everything below src/cli. Production uses realEnv(); the
 * simulator supplies a seeded, virtual-time implementation so any run replays from its seed.
 */
export interface Env extends Rng {
  /** Milliseconds on a monotonic clock. */
  nowMs(): number;
  /** A float in [0, 1). */
  random(): number;
  /** Runs fn after delayMs (≥ 0). */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  /** Runs fn soon, after pending I/O callbacks (the engine schedules its loop with it). */
  defer(fn: () => void): void;
}

/** The real clock and Math.random: the only place below src/cli that reads them. */
export function realEnv(): Env {
  return {
    nowMs: () => performance.now(), // env-ok
    random: () => Math.random(), // env-ok
    nextInt: (maxExclusive: number) => Math.floor(Math.random() * maxExclusive), // env-ok
    setTimer(delayMs: number, fn: () => void): TimerHandle {
      const t = setTimeout(fn, delayMs); // env-ok
      return { cancel: () => clearTimeout(t) };
    },
    defer: (fn: () => void) => {
      setImmediate(fn); // env-ok: ordering, not time
    },
  };
}

/** A deterministic Env for tests and the simulator: sfc32 seeded, virtual time advanced by hand. */
export class ManualEnv implements Env {
  private timeMs = 0;
  private a: number;
  private b: number;
  private c: number;
  private d = 1;
  private seq = 0;
  private readonly timers: { atMs: number; seq: number; fn: () => void; cancelled: boolean }[] = [];

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = seed >>> 0;
    this.d = Math.floor(seed / 2 ** 32) >>> 0;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nowMs(): number {
    return this.timeMs;
  }

  private nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  random(): number {
    return this.nextU32() / 2 ** 32;
  }

  nextInt(maxExclusive: number): number {
    return Math.floor(this.random() * maxExclusive);
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const timer = { atMs: this.timeMs + Math.max(0, delayMs), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  defer(fn: () => void): void {
    this.setTimer(0, fn);
  }

  /** Advances virtual time by ms, firing due timers in (time, creation) order. */
  advance(ms: number): void {
    const endMs = this.timeMs + ms;
    for (;;) {
      let next = -1;
      for (let i = 0; i < this.timers.length; i++) {
        const t = this.timers[i]!;
        if (t.atMs > endMs) continue;
        const best = this.timers[next];
        if (best === undefined || t.atMs < best.atMs || (t.atMs === best.atMs && t.seq < best.seq)) next = i;
      }
      if (next < 0) break;
      const t = this.timers.splice(next, 1)[0]!;
      this.timeMs = t.atMs;
      if (!t.cancelled) t.fn();
    }
    this.timeMs = endMs;
  }
}
