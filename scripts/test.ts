/**
 * `npm test`: runs `bun test --parallel` (extra arguments pass through, e.g. a path filter),
 * streams its output, and ends with one line `N passed, N failed` (`, N skipped` if any) taken
 * from bun's own summary. Exits non-zero when bun test fails or runs no test.
 *
 *   npm test                    # whole suite, test files spread over one worker per core
 *   npm test -- test/cli        # one folder
 */

export {}; // a module, so top-level await is allowed

/** Only the end of bun's report is kept for parsing: its summary is the last few lines. */
const TAIL_BYTES_MAX = 64 * 1024;

const child = Bun.spawn([process.execPath, "test", "--parallel", ...process.argv.slice(2)], {
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
const skipped = summary.skip > 0 ? `, ${summary.skip} skipped` : "";
console.log(`${summary.pass} passed, ${summary.fail} failed${skipped}`);
if (exitCode !== 0) process.exit(exitCode);
if (summary.pass + summary.fail === 0) process.exit(1);

/** Reads bun's ` N pass`, ` N fail`, ` N skip` lines; undefined when there is no pass line. */
function parseSummary(text: string): { pass: number; fail: number; skip: number } | undefined {
  const count = (word: string) => {
    const matches = [...text.matchAll(new RegExp(`^\\s*(\\d+) ${word}$`, "gm"))];
    const last = matches.at(-1);
    return last === undefined ? undefined : Number(last[1]);
  };
  const pass = count("pass");
  if (pass === undefined) return undefined;
  return { pass, fail: count("fail") ?? 0, skip: count("skip") ?? 0 };
}
