// How late this process's timers run: on a busy machine a timer of P ms fires after P + d ms,
// and a process whose clock is a timer (a NodeHost's tick) loses d per tick in the same way.
// A test that bounds a real process's reaction in ticks measures this over the same window and
// adds it, instead of a wall-clock bound that only holds on a quiet machine.

/** Runs a timer of `periodMs` back to back and sums how late each one fired, until stop(). */
export class TimerLateness {
  private lateMs = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly periodMs: number) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const startedMs = performance.now();
      await Bun.sleep(this.periodMs);
      this.lateMs += Math.max(0, performance.now() - startedMs - this.periodMs);
    }
  }

  /** Stops and returns the summed lateness in ms. */
  async stop(): Promise<number> {
    this.running = false;
    await this.done;
    return Math.round(this.lateMs);
  }
}
