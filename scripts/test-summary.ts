/** Reading bun test's report: the counts of its closing summary (used by scripts/test.ts). */

export interface Summary {
  pass: number;
  fail: number;
  skip: number;
  /** Unhandled errors between tests (a rejection nobody awaited, a throw from a timer). */
  errors: number;
}

/** Reads bun's ` N pass`, ` N fail`, ` N skip`, ` N error(s)` lines; undefined without a pass line. */
export function parseSummary(text: string): Summary | undefined {
  const count = (word: string) => {
    const matches = [...text.matchAll(new RegExp(`^\\s*(\\d+) ${word}$`, "gm"))];
    const last = matches.at(-1);
    return last === undefined ? undefined : Number(last[1]);
  };
  const pass = count("pass");
  if (pass === undefined) return undefined;
  return { pass, fail: count("fail") ?? 0, skip: count("skip") ?? 0, errors: count("errors?") ?? 0 };
}

/** The runner's last line: `N passed, N failed` with `, N skipped` and `, N errors` when any. */
export function summaryLine(s: Summary): string {
  const skipped = s.skip > 0 ? `, ${s.skip} skipped` : "";
  const errors = s.errors > 0 ? `, ${s.errors} ${s.errors === 1 ? "error" : "errors"}` : "";
  return `${s.pass} passed, ${s.fail} failed${skipped}${errors}`;
}

/** The run failed: a failed test, an unhandled error, no test at all, or bun's own exit code. */
export function runFailed(s: Summary, bunExitCode: number): boolean {
  return bunExitCode !== 0 || s.fail > 0 || s.errors > 0 || s.pass + s.fail === 0;
}
