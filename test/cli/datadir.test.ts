/**
 * `longboat nodehost` and `longboat drummer` given a --data-dir they cannot write exit 1 at
 * once with one line naming the path and the cause (src/cli/datadir.ts), before opening
 * anything. The tests run as root, for whom chmod stops no write, so the unwritable places are
 * ones root cannot write either: sysfs (no files can be created in /sys, read-only in
 * containers), and — where this process may mount — a read-only tmpfs and a full tmpfs.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../src/cli/main.ts";
import { PROCESS_TEST_WALL_MS } from "../support/limits.ts";
import { track } from "../support/resources.ts";

const MAIN = join(import.meta.dir, "../../src/cli/main.ts");
const ports = { raft: "127.0.0.1:17401", api: "127.0.0.1:17402" }; // never listened on: refused first

const SERVERS = {
  nodehost: {
    whose: "the NodeHost's data",
    argv: (dir: string) => [
      "nodehost",
      "--raft-address",
      ports.raft,
      "--api-address",
      ports.api,
      "--data-dir",
      dir,
      "--shard",
      `id=1,app=kv,replica=1,members=1@${ports.raft}`,
    ],
  },
  drummer: {
    whose: "the drummer's data",
    argv: (dir: string) => [
      "drummer",
      "--id",
      "1",
      "--peers",
      `1=${ports.raft}`,
      "--api-address",
      ports.api,
      "--data-dir",
      dir,
    ],
  },
} as const;

async function runMain(argv: string[]) {
  let stderr = "";
  const code = await main(argv, { env: {}, stderr: (t) => (stderr += t) });
  return { code, stderr };
}

/** The whole process (source entry), as a user runs it: exit code and stderr. */
async function runProcess(argv: string[]) {
  const p = Bun.spawn([process.execPath, MAIN, ...argv], {
    env: { PATH: process.env.PATH ?? "" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const tracked = track(`longboat ${argv[0]} process`, () => p.kill("SIGKILL"));
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  tracked.release();
  return { code, stdout, stderr };
}

/** The one line a refused --data-dir prints, for the causes `causes` (code and words). */
function refusal(dir: string, whose: string, causes: Record<string, string>): RegExp {
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const alternatives = Object.entries(causes)
    .map(([code, why]) => `${literal(why)} \\(${code}\\)`)
    .join("|");
  return new RegExp(
    `^longboat: --data-dir ${literal(dir)} cannot hold ${literal(whose)}: (${alternatives}); [^\\n]+\\n$`,
  );
}

// sysfs: root may not create a file in an existing directory of /sys (EACCES), nor a directory
// (EPERM); a container mounts /sys read-only (EROFS).
const SYSFS_DIR = { EACCES: "this user may not write there", EROFS: "the file system is read-only" };
const SYSFS_NEW = { EPERM: "this user may not write there", EROFS: "the file system is read-only" };

for (const [name, server] of Object.entries(SERVERS)) {
  describe(`longboat ${name} --data-dir that cannot be written`, () => {
    test("an existing directory no one may write (/sys/fs): exit 1, the path and the cause", async () => {
      const { code, stderr } = await runMain(server.argv("/sys/fs"));
      expect(stderr).toMatch(refusal("/sys/fs", server.whose, SYSFS_DIR));
      expect(code).toBe(1);
    });

    test("a directory that cannot be created (under /sys): exit 1, the path and the cause", async () => {
      const dir = `/sys/longboat-test-${process.pid}/data`;
      const { code, stderr } = await runMain(server.argv(dir));
      expect(stderr).toMatch(refusal(dir, server.whose, SYSFS_NEW));
      expect(code).toBe(1);
    });

    // A process from the source entry loads (transpiles) the server's modules: seconds on a
    // loaded machine, hence the process-test limit.
    test(
      "as a process: one line on stderr, no stack trace, exit 1",
      async () => {
        const { code, stdout, stderr } = await runProcess(server.argv("/sys/fs"));
        expect(stderr).toMatch(refusal("/sys/fs", server.whose, SYSFS_DIR));
        expect(stdout).toBe("");
        expect(code).toBe(1);
      },
      PROCESS_TEST_WALL_MS,
    );
  });
}

// ---- read-only and full file systems (tmpfs), where this process may mount ------------------

const mounts: string[] = [];
afterAll(() => {
  for (const dir of mounts.splice(0)) {
    Bun.spawnSync(["umount", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A tmpfs mounted on a new directory with `options`, or null where mounting is not allowed. */
function mountTmpfs(options: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), "longboat-datadir-"));
  const p = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", options, "longboat-test", dir], {
    stderr: "pipe",
  });
  if (p.exitCode !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  mounts.push(dir);
  return dir;
}

const canMount = mountTmpfs("size=4k") !== null;
if (!canMount) {
  console.warn(
    "datadir.test.ts: mount -t tmpfs is not allowed here; the read-only and full file system cases are skipped",
  );
}

describe.skipIf(!canMount)("--data-dir on a file system that refuses writes (tmpfs)", () => {
  test("read-only: nodehost and drummer exit 1 naming the path and EROFS", async () => {
    const ro = mountTmpfs("ro,size=64k")!;
    for (const server of Object.values(SERVERS)) {
      const dir = join(ro, "data");
      const { code, stderr } = await runMain(server.argv(dir));
      expect(stderr).toMatch(refusal(dir, server.whose, { EROFS: "the file system is read-only" }));
      expect(code).toBe(1);
    }
  });

  test("full: nodehost and drummer exit 1 naming the path and ENOSPC", async () => {
    const full = mountTmpfs("size=64k")!;
    // Fill it: the directories fit (tmpfs gives them no pages), a file's data does not.
    expect(() => writeFileSync(join(full, "filler"), new Uint8Array(128 * 1024))).toThrow(/ENOSPC/);
    for (const [name, server] of Object.entries(SERVERS)) {
      const dir = join(full, name);
      mkdirSync(dir, { recursive: true });
      const { code, stderr } = await runMain(server.argv(dir));
      expect(stderr).toMatch(refusal(dir, server.whose, { ENOSPC: "the disk is full" }));
      expect(code).toBe(1);
    }
  });
});
