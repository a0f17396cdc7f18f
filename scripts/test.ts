/**
 * `npm test`: runs `bun test --parallel` (extra arguments pass through, e.g. a path filter),
 * streams its output, and ends with one line `N passed, N failed` (`, N skipped` and
 * `, N errors` if any) taken from bun's own summary. Exits non-zero when a test fails, when
 * an error escapes between tests (bun's "N errors": a rejection nobody awaited, a throw from
 * a timer — it is a bug even when every test passed), or when no test ran.
 *
 *   npm test                    # whole suite, test files spread over one worker per core
 *   npm test -- test/cli        # one folder
 *
 * It builds dist/longboat first: the process tests run that binary, and one left over from an
 * older checkout would test old code (they build it only when it is missing).
 */

import { TEST_WALL_MS_DEFAULT } from "../test/support/limits.ts";
import { parseSummary, runFailed, summaryLine } from "./test-summary.ts";

/** Only the end of bun's report is kept for parsing: its summary is the last few lines. */
const TAIL_BYTES_MAX = 64 * 1024;

const build = Bun.spawnSync([process.execPath, "build.ts"], { stdout: "inherit", stderr: "inherit" });
if (build.exitCode !== 0) {
  console.log("0 passed, 0 failed (building dist/longboat failed)");
  process.exit(build.exitCode ?? 1);
}

// --timeout as well as the preload's setDefaultTimeout: outside --parallel (or --isolate) Bun
// keeps a preload's default only for the first file and gives every later one 5 s
// (oven-sh/bun#43787); the flag is every file's starting point in any mode.
const args = ["test", "--parallel", `--timeout=${TEST_WALL_MS_DEFAULT}`, ...process.argv.slice(2)];
const child = Bun.spawn([process.execPath, ...args], {
  stdin: "inherit",
  stdout: "inherit",
  stderr: "pipe",
});

// bun test writes its report to stderr: pass it through and keep the tail.
let tail = "";
const decoder = new TextDecoder();
for await (const chunk of child.stderr) {
  process.stderr.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-TAIL_BYTES_MAX);
}
const exitCode = await child.exited;

const summary = parseSummary(tail);
if (summary === undefined) {
  console.log("0 passed, 0 failed (no summary from bun test)");
  process.exit(exitCode === 0 ? 1 : exitCode);
}
console.log(summaryLine(summary));
if (runFailed(summary, exitCode)) process.exit(exitCode === 0 ? 1 : exitCode);
