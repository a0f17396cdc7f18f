import { expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAN_CHECK, descendants, findLeaks, killTree } from "./leaks.ts";
import { freePort } from "./ports.ts";

test.skipIf(!CAN_CHECK)("a listening server is a leak until it is closed", () => {
  const server = Bun.listen({ hostname: "127.0.0.1", port: freePort(), socket: { data() {} } });
  expect(findLeaks()).toContainEqual({ kind: "listening socket", what: `port ${server.port}` });
  server.stop(true);
  expect(findLeaks().filter((l) => l.kind === "listening socket")).toEqual([]);
});

test.skipIf(!CAN_CHECK)("a child process is a leak until it exited", async () => {
  const child = Bun.spawn(["sleep", "30"]);
  try {
    // Found from the moment it is forked (its command line appears once it has exec'd).
    expect(findLeaks().find((l) => l.pid === child.pid)?.kind).toBe("child process");
  } finally {
    child.kill("SIGKILL");
    await child.exited;
  }
  expect(findLeaks().filter((l) => l.pid === child.pid)).toEqual([]);
});

test.skipIf(!CAN_CHECK)("an open file in a longboat-* temporary directory is a leak until closed", () => {
  const dir = mkdtempSync(join(tmpdir(), "longboat-leak-"));
  const fd = openSync(join(dir, "log.db"), "w");
  try {
    expect(findLeaks()).toContainEqual({ kind: "open file", what: join(dir, "log.db") });
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  expect(findLeaks().filter((l) => l.kind === "open file")).toEqual([]);
});

test.skipIf(!CAN_CHECK)("a grandchild is a leak too, and killTree kills it with its parent", async () => {
  const parent = Bun.spawn(["sh", "-c", "sleep 30 & wait"]);
  let below: number[] = [];
  for (let i = 0; i < 200 && below.length === 0; i++) {
    await Bun.sleep(10);
    below = descendants(parent.pid);
  }
  expect(below.length).toBe(1);
  const leaked = findLeaks().map((l) => l.pid);
  expect(leaked).toContain(parent.pid);
  expect(leaked).toContain(below[0]!);
  killTree(parent.pid);
  await parent.exited;
  for (let i = 0; i < 200 && findLeaks().some((l) => l.pid === below[0]); i++) await Bun.sleep(10);
  expect(findLeaks().filter((l) => l.kind === "child process")).toEqual([]);
});
