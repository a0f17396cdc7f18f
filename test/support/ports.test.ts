import { expect, test } from "bun:test";
import { existsSync, readFileSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  freePort,
  freePortRange,
  freePorts,
  isAddressInUse,
  LOCK_DIR,
  LISTEN_ATTEMPTS_MAX,
  PORT_MAX,
  PORT_MIN,
  releaseAllPorts,
  reservePort,
  STALE_LOCK_MS,
  withFreePort,
} from "./ports.ts";

const lockOf = (port: number) => join(LOCK_DIR, String(port));

test("ports are distinct, below the ephemeral range, and reserved by a lock file holding our pid", () => {
  const ports = freePorts(50);
  expect(new Set(ports).size).toBe(50);
  for (const port of ports) {
    expect(port).toBeGreaterThanOrEqual(PORT_MIN);
    expect(port).toBeLessThanOrEqual(PORT_MAX);
    expect(readFileSync(lockOf(port), "utf8").trim()).toBe(String(process.pid));
  }
});

test("a port range is consecutive, and each port of it can be bound", () => {
  const base = freePortRange(14);
  expect(base + 13).toBeLessThanOrEqual(PORT_MAX);
  for (let port = base; port < base + 14; port++) {
    expect(existsSync(lockOf(port))).toBe(true);
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
  }
});

test("a port reserved by a live process is not reserved again, by it or another", () => {
  const port = freePort();
  expect(reservePort(port)).toBe(false);
  const other = Bun.spawnSync([
    process.execPath,
    "-e",
    `import { reservePort } from "${join(import.meta.dir, "ports.ts")}"; process.exit(reservePort(${port}) ? 0 : 3);`,
  ]);
  expect(other.exitCode).toBe(3);
});

test("a stale reservation (dead owner, older than a minute) is removed and the port reserved later", () => {
  const port = freePort();
  releaseAllPorts();
  const dead = Bun.spawnSync(["true"]).pid; // exited and reaped: no process has this pid now
  writeFileSync(lockOf(port), `${dead}\n`);
  const old = (Date.now() - STALE_LOCK_MS - 1000) / 1000;
  utimesSync(lockOf(port), old, old);
  expect(reservePort(port)).toBe(false); // this draw removes it
  expect(existsSync(lockOf(port))).toBe(false);
  expect(reservePort(port)).toBe(true);
});

test("a recent reservation of a dead owner is left alone (its children may still listen)", () => {
  const port = freePort();
  releaseAllPorts();
  writeFileSync(lockOf(port), `${Bun.spawnSync(["true"]).pid}\n`);
  expect(reservePort(port)).toBe(false);
  expect(existsSync(lockOf(port))).toBe(true);
  unlinkSync(lockOf(port));
});

test("releaseAllPorts removes this process's reservations", () => {
  const ports = freePorts(3);
  releaseAllPorts();
  for (const port of ports) expect(existsSync(lockOf(port))).toBe(false);
});

test("withFreePort retries a listen that finds its port taken, on another port", async () => {
  const tried: number[] = [];
  const port = await withFreePort((p) => {
    tried.push(p);
    if (tried.length < 3) throw Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE" });
    return p;
  });
  expect(tried.length).toBe(3);
  expect(new Set(tried).size).toBe(3);
  expect(port).toBe(tried[2]!);
});

test("withFreePort gives up after its attempts and passes other errors on at once", async () => {
  let calls = 0;
  const inUse = () => {
    calls++;
    throw Object.assign(new Error("in use"), { code: "EADDRINUSE" });
  };
  await expect(withFreePort(inUse)).rejects.toThrow("in use");
  expect(calls).toBe(LISTEN_ATTEMPTS_MAX);
  calls = 0;
  await expect(
    withFreePort(() => {
      calls++;
      throw new Error("permission denied");
    }),
  ).rejects.toThrow("permission denied");
  expect(calls).toBe(1);
});

test("isAddressInUse recognises node, Bun.listen and Bun.serve errors", () => {
  const held = Bun.listen({ hostname: "127.0.0.1", port: freePort(), socket: { data() {} } });
  try {
    let error: unknown;
    try {
      Bun.serve({ hostname: "127.0.0.1", port: held.port, fetch: () => new Response("") });
    } catch (e) {
      error = e;
    }
    expect(isAddressInUse(error)).toBe(true);
    expect(isAddressInUse(new Error("ECONNREFUSED"))).toBe(false);
  } finally {
    held.stop(true);
  }
});

test("freePortRange refuses a count outside 1…1000", () => {
  expect(() => freePortRange(0)).toThrow("count must be an integer in 1…1000, got 0");
});
