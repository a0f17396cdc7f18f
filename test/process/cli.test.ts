// The compiled binary as a user meets it: output through pipes, exit codes, messages.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, cmd, ensureBinary, freePort, waitFor } from "./harness.ts";

beforeAll(() => ensureBinary());

/** One NodeHost process with one single-member kv shard (shard 1). */
class OneHost {
  readonly dir = mkdtempSync(join(tmpdir(), "longboat-cli-"));
  raft = "";
  api = "";
  proc: ReturnType<typeof Bun.spawn> | undefined;
  log = "";

  async start(extra: string[] = []): Promise<void> {
    this.raft = `127.0.0.1:${await freePort()}`;
    this.api = `127.0.0.1:${await freePort()}`;
    const args = [
      "nodehost",
      "--data-dir",
      join(this.dir, "data"),
      "--raft-address",
      this.raft,
      "--api-address",
      this.api,
      "--rtt-ms",
      "20",
      "--shard",
      `id=1,app=kv,replica=1,members=1@${this.raft}`,
      ...extra,
    ];
    const proc = Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: "pipe" });
    this.proc = proc;
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) this.log += decoder.decode(chunk);
    })();
    await waitFor(
      async () => (await fetch(`http://${this.api}/readyz`).catch(() => null))?.ok === true,
      30_000,
      "the NodeHost ready",
    );
  }

  async stop(): Promise<void> {
    this.proc?.kill("SIGKILL");
    await this.proc?.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs the binary with its stdout into a pipe that a shell reader leaves unread until the
 * binary has exited (or `readAfterMs` passed): a process that exits before its output has
 * drained loses what did not fit the pipe (64 KiB). The reader is a shell, not this test:
 * Bun reads a child's pipe at once, whether the test reads it or not.
 */
async function runIntoSlowReader(args: string[], readAfterMs = 3000) {
  const dir = mkdtempSync(join(tmpdir(), "longboat-pipe-"));
  const codeFile = join(dir, "code");
  const polls = Math.ceil(readAfterMs / 50);
  const script = `f=$1; shift; { "$@"; echo $? > "$f"; } | { i=0; while [ ! -s "$f" ] && [ $i -lt ${polls} ]; do sleep 0.05; i=$((i+1)); done; cat; }`;
  try {
    const proc = Bun.spawn(["sh", "-c", script, "sh", codeFile, BIN, ...args], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr] = await Promise.all([
      new Response(proc.stdout).arrayBuffer(),
      new Response(proc.stderr).text(),
    ]);
    await proc.exited;
    const code = Number((await Bun.file(codeFile).text()).trim());
    return { code, stdout: new Uint8Array(stdout), stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `runs` runs at once (most of each is waiting for the reader). */
function concurrently<T>(runs: number, fn: (run: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: runs }, (_, run) => fn(run)));
}

describe("cmd output through a pipe", () => {
  const host = new OneHost();
  const value = "v".repeat(119_999); // with the newline 120,000 bytes: more than a pipe holds
  beforeAll(async () => {
    await host.start();
    expect(cmd(["put", "--nodehost", host.api, "--shard", "1", "big", value]).code).toBe(0);
  }, 60_000);
  afterAll(() => host.stop());

  test("cmd get of a 120,000-byte value delivers every byte to a slow reader, run after run", async () => {
    const runs = await concurrently(4, async (run) => {
      const got = await runIntoSlowReader(["cmd", "get", "--nodehost", host.api, "--shard", "1", "big"]);
      return { run, code: got.code, stderr: got.stderr, bytes: got.stdout.byteLength };
    });
    expect(runs).toEqual([0, 1, 2, 3].map((run) => ({ run, code: 0, stderr: "", bytes: 120_000 })));
  }, 60_000);

  test("cmd get --json of a 120,000-byte value delivers the whole JSON line, run after run", async () => {
    const runs = await concurrently(4, (run) =>
      runIntoSlowReader(["cmd", "get", "--json", "--nodehost", host.api, "--shard", "1", "big"]).then(
        (got) => ({
          run,
          code: got.code,
          bytes: got.stdout.byteLength,
          text: new TextDecoder().decode(got.stdout),
        }),
      ),
    );
    const line = `${JSON.stringify({ ok: true, found: true, value })}\n`;
    for (const r of runs)
      expect({ run: r.run, code: r.code, bytes: r.bytes }).toEqual({
        run: r.run,
        code: 0,
        bytes: line.length,
      });
    for (const r of runs) expect(r.text).toBe(line);
  }, 60_000);
});
