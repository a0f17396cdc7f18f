/**
 * The registry of live test resources: every harness that starts something (NodeHosts, a
 * simulated cluster or world, servers, transports, child processes) registers itself here,
 * and the preload (setup.ts) stops whatever is still registered when a test ends — passed,
 * failed or timed out — so nothing a test started can run on into the tests after it.
 *
 * A resource registered while a test runs (its body or a beforeEach) belongs to that test and
 * is stopped by the afterEach; one registered outside a test (beforeAll, module top level)
 * belongs to the file and is stopped at its end.
 *
 * @example
 *   const server = serveApi(app, { hostname: "127.0.0.1", port });
 *   const tracked = track(`API server on ${port}`, () => server.stop());
 *   …
 *   await server.stop();
 *   tracked.release(); // stopped by its owner: nothing left for the afterEach
 */

/** A registered resource. */
export interface Tracked {
  /** The owner stopped the resource itself: the registry forgets it. */
  release(): void;
}

export interface TrackOptions {
  /**
   * What the resource is busy with right now (e.g. a simulated cluster inside `until(…)` and
   * its simulated time), or null when idle. A resource still busy when its test ended was
   * left running by the test (a timeout, or an un-awaited loop): the afterEach fails the test
   * with this description.
   */
  busy?: () => string | null;
}

type Scope = "test" | "file";

interface Entry {
  readonly name: string;
  readonly scope: Scope;
  readonly stop: () => unknown;
  readonly busy: () => string | null;
}

/** Bound on one resource's stop (a stop that hangs must not hang the run). */
export const STOP_MS_MAX = 30_000;

const live = new Set<Entry>();
let scope: Scope = "file";
/** Counts the tests that ended: a loop compares it with the value it started under. */
let endedTests = 0;
/** A promise that never settles: where a loop of a test that has ended stops for good. */
const PARKED = new Promise<never>(() => {});

/** Registers a resource; stop() is called (once) when its test or file ends, unless released first. */
export function track(name: string, stop: () => unknown, opts: TrackOptions = {}): Tracked {
  const entry: Entry = { name, scope, stop, busy: opts.busy ?? (() => null) };
  live.add(entry);
  return { release: () => void live.delete(entry) };
}

/** Names of the resources still registered (the leak check reports them). */
export function liveResources(): string[] {
  return [...live].map((e) => e.name);
}

/**
 * A token for the running test (or the hooks between tests). A loop that waits in real or
 * simulated time takes one when it starts and calls parkIfEnded(token) between steps.
 */
export function currentTest(): number {
  return endedTests;
}

/**
 * Never returns once the test that took `token` has ended: a loop left running by a test
 * that timed out (Bun cannot cancel it) stops at its next step, instead of acting on a
 * shared cluster, or the next test's, beside the tests after it.
 */
export async function parkIfEnded(token: number): Promise<void> {
  if (token !== endedTests) await PARKED;
}

/** Called by the preload: resources registered from now on belong to the running test. */
export function enterTest(): void {
  scope = "test";
}

/**
 * Stops every resource of the ending test (or, with "file", every resource left at the end of
 * the file), newest first. Returns what was still busy when its test ended (see busy()) and
 * every stop that failed; the preload fails the test with them.
 */
export async function stopAll(which: Scope): Promise<string[]> {
  if (which === "test") {
    scope = "file";
    endedTests++;
  }
  const problems: string[] = [];
  const entries = [...live].filter((e) => which === "file" || e.scope === "test").reverse();
  for (const e of entries) {
    live.delete(e);
    const busy = e.busy();
    if (busy !== null) problems.push(`the test ended while ${e.name} was ${busy}; it was stopped`);
    const failure = await stopWithin(e);
    if (failure !== null) problems.push(failure);
  }
  return problems;
}

async function stopWithin(e: Entry): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`stopping ${e.name} took over ${STOP_MS_MAX} ms`), STOP_MS_MAX);
  });
  try {
    const stopped = Promise.resolve()
      .then(e.stop)
      .then(() => null);
    return await Promise.race([stopped, timedOut]);
  } catch (error) {
    return `stopping ${e.name} failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    clearTimeout(timer);
  }
}
