/**
 * Preloaded into every test file (bunfig.toml [test] preload):
 * - after each test — passed, failed or timed out — stops every resource the test registered
 *   and did not stop itself (resources.ts); a resource still busy then (a simulated cluster
 *   inside `until`, i.e. the test timed out or left a loop running) fails the test with what
 *   it was doing and the simulated time it had reached;
 * - after each file, stops what the file registered outside its tests, then checks that
 *   nothing is left: no child process, no listening socket, no open longboat-* temporary file
 *   (leaks.ts). A leak fails the file by name, and leaked children are killed so that they
 *   cannot starve the files after it. (Per file under --parallel or --isolate, as `npm test`
 *   runs; a plain `bun test a b` shares one global and runs this once, after the last file.)
 * - sets the default wall-clock limit of a test for a loaded machine (limits.ts).
 */
import { afterAll, afterEach, beforeEach, setDefaultTimeout } from "bun:test";
import { findLeaks, killTree, type Leak } from "./leaks.ts";
import { TEST_WALL_MS_DEFAULT } from "./limits.ts";
import { releaseAllPorts } from "./ports.ts";
import { enterTest, stopAll } from "./resources.ts";

/** How long the leak check waits for sockets and children that are already closing. */
const LEAK_GRACE_MS = 3_000;
/** Bound on each hook: stopping what is left (STOP_MS_MAX each) must fit a loaded machine. */
const HOOK_MS_MAX = 120_000;

// Bun's 5 s default is an idle machine's; a file or test may set its own (limits.ts).
// In a plain `bun test a b` (no --parallel) Bun keeps this only for the first file and gives
// the later ones 5 s (oven-sh/bun#43787): run several files as `npm test -- a b`, or pass
// `--timeout 60000`, or a busy machine fails them with "timed out after 5000ms".
setDefaultTimeout(TEST_WALL_MS_DEFAULT);

beforeEach(() => {
  enterTest();
});

afterEach(async () => {
  const problems = await stopAll("test");
  if (problems.length > 0) throw new Error(problems.join("\n"));
}, HOOK_MS_MAX);

afterAll(async () => {
  const problems = await stopAll("file");
  const leaks = await leaksAfterGrace();
  for (const leak of leaks) if (leak.pid !== undefined) killTree(leak.pid);
  releaseAllPorts();
  for (const leak of leaks)
    problems.push(`leak: a ${leak.kind} is still open after the file ended: ${leak.what}`);
  if (problems.length > 0) throw new Error(problems.join("\n"));
}, HOOK_MS_MAX);

async function leaksAfterGrace(): Promise<Leak[]> {
  const deadline = performance.now() + LEAK_GRACE_MS;
  for (;;) {
    const leaks = findLeaks();
    if (leaks.length === 0 || performance.now() > deadline) return leaks;
    await Bun.sleep(50);
  }
}
