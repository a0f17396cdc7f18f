// The preload (setup.ts) as a test run sees it: bun test over fixture files in a child process.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { track } from "./resources.ts";

const ROOT = join(import.meta.dir, "../..");

async function runFixture(name: string): Promise<{ code: number; output: string }> {
  const proc = Bun.spawn([process.execPath, "test", "--isolate", `./test/support/fixtures/${name}`], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const tracked = track(`bun test ${name}`, () => proc.kill("SIGKILL"));
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  tracked.release();
  return { code, output: stdout + stderr };
}

test("a test that times out in simulated time fails naming the simulated ms it reached, and stops", async () => {
  const { code, output } = await runFixture("timeout.fixture.ts");
  expect(code).toBe(1);
  expect(output).toMatch(
    /the test ended while SimCluster\(seed 5\) was in until\(something that never happens\) at simulated \d+ ms \(\d+ of at most 10000000 simulated ms into it\); it was stopped/,
  );
  expect(output).toContain("(pass) runs after it on a quiet cluster");
  expect(output).not.toContain("error between tests");
});

test("a test that times out with proposals pending fails once, with no unhandled 'shard closed' after it", async () => {
  // Before the registry this printed "Unhandled error between tests: shard closed: the NodeHost
  // is stopping": the timed-out test's own await, failed when its cluster was closed after it.
  const { code, output } = await runFixture("pending.fixture.ts");
  expect(code).toBe(1);
  expect(output).toMatch(
    /the test ended while SimCluster\(seed 9\) was in settling a promise at simulated \d+ ms/,
  );
  expect(output).not.toContain("shard closed");
  expect(output).not.toMatch(/\d+ errors?\n/);
  expect(output).toContain("(pass) the next test");
});

test("a file that leaves a child process or a listening socket fails, naming them", async () => {
  const { code, output } = await runFixture("leak.fixture.ts");
  expect(code).toBe(1);
  expect(output).toMatch(/leak: a child process is still open after the file ended: pid \d+: sleep 60/);
  expect(output).toMatch(/leak: a listening socket is still open after the file ended: port \d+/);
});
