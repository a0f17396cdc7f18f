// scripts/test.ts: the summary line and exit code of `npm test`.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { parseSummary, runFailed, summaryLine } from "../../scripts/test-summary.ts";
import { track } from "./resources.ts";

const ROOT = join(import.meta.dir, "../..");

test("bun's summary is read with its unhandled errors, singular or plural", () => {
  expect(parseSummary(" 847 pass\n 2 skip\n 26 fail\n 1 error\n 1234 expect() calls\n")).toEqual({
    pass: 847,
    fail: 26,
    skip: 2,
    errors: 1,
  });
  expect(parseSummary(" 3 pass\n 0 fail\n 2 errors\n")?.errors).toBe(2);
  expect(parseSummary(" 3 pass\n 0 fail\n")?.errors).toBe(0);
  expect(parseSummary("no summary at all")).toBeUndefined();
});

test("the summary line names errors, and errors fail a run whose tests all passed", () => {
  const s = { pass: 5, fail: 0, skip: 1, errors: 2 };
  expect(summaryLine(s)).toBe("5 passed, 0 failed, 1 skipped, 2 errors");
  expect(summaryLine({ ...s, skip: 0, errors: 1 })).toBe("5 passed, 0 failed, 1 error");
  expect(runFailed(s, 0)).toBe(true);
  expect(runFailed({ ...s, errors: 0 }, 0)).toBe(false);
  expect(runFailed({ ...s, errors: 0, pass: 0 }, 0)).toBe(true);
  expect(runFailed({ ...s, errors: 0 }, 1)).toBe(true);
});

test("npm test over a file with an unhandled rejection between tests exits 1 and says so", async () => {
  const proc = Bun.spawn(
    [process.execPath, "scripts/test.ts", "./test/support/fixtures/unhandled.fixture.ts"],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const tracked = track("npm test of a fixture", () => proc.kill("SIGKILL"));
  const [stdout, , code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  tracked.release();
  expect(stdout.trim().split("\n").at(-1)).toBe("1 passed, 0 failed, 1 error");
  expect(code).toBe(1);
});
