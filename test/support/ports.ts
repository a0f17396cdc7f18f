/**
 * Listen ports for tests, below the ephemeral range: in 32768–60999 a stray TIME_WAIT or an
 * outgoing connection of any other program can hold the port we were given and make `listen`
 * fail. A port comes from PORT_MIN…PORT_MAX at random and is
 * - reserved across processes by a lock file in LOCK_DIR (created exclusively, holding our
 *   pid), so concurrent test runs — other workers, other checkouts — never get the same one;
 * - checked by binding it on 127.0.0.1 (a program outside the tests may be listening there);
 * - never handed out twice by one process, and released when the test file ends (setup.ts).
 * What remains racy is a program outside the tests that binds the port between our check and
 * the test's listen: `withFreePort` retries a listen that fails with EADDRINUSE on a new port,
 * and the process harness restarts a cluster whose child could not listen (harness.ts).
 *
 * @example
 *   const port = freePort();                          // one port
 *   const [raft, api] = freePorts(2);
 *   const base = freePortRange(34);                   // base … base+33, all free (longboat dev)
 *   const server = await withFreePort((port) => startServer(port));
 */
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const PORT_MIN = 10_000;
/** The last port below Linux's default ephemeral range (net.ipv4.ip_local_port_range 32768 60999). */
export const PORT_MAX = 32_767;
/** Where reservations live: one file per port, named by the port, holding the owner's pid. */
export const LOCK_DIR = join(tmpdir(), "longboat-test-ports");
/** A reservation whose owner died is removed once it is this old (a crashed or killed run). */
export const STALE_LOCK_MS = 60_000;
/** Random draws before giving up (the range has 22,768 ports; a few hundred are in use at most). */
const DRAWS_MAX = 2_000;
/** Attempts of withFreePort before the EADDRINUSE is passed on. */
export const LISTEN_ATTEMPTS_MAX = 5;

/** Ports this process reserved (never handed out twice; unlinked on release or exit). */
const reserved = new Set<number>();
let exitHookInstalled = false;

/** One free port, reserved for this process. */
export function freePort(): number {
  return freePortRange(1);
}

/** count distinct free ports (not necessarily consecutive). */
export function freePorts(count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(freePort());
  return out;
}

/** The first of count consecutive free ports, all reserved (e.g. `longboat dev --base-port`). */
export function freePortRange(count: number): number {
  if (!Number.isSafeInteger(count) || count < 1 || count > 1000) {
    throw new RangeError(`freePortRange: count must be an integer in 1…1000, got ${count}`);
  }
  for (let draw = 0; draw < DRAWS_MAX; draw++) {
    const base = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN + 2 - count));
    const taken: number[] = [];
    let ok = true;
    for (let port = base; port < base + count; port++) {
      if (!reservePort(port)) {
        ok = false;
        break;
      }
      taken.push(port);
      if (!canListen(port)) {
        ok = false;
        break;
      }
    }
    if (ok) return base;
    // Keep the reservation of a port something else listens on (no other test should try it
    // again soon); give back the others.
    for (const port of taken) if (canListen(port)) release(port);
  }
  throw new Error(
    `no ${count} consecutive free port(s) in ${PORT_MIN}–${PORT_MAX} after ${DRAWS_MAX} draws (see ${LOCK_DIR})`,
  );
}

/**
 * Runs listen(port) on a fresh port; when it fails with EADDRINUSE (a program outside the
 * tests took the port after our check) tries a new one, up to LISTEN_ATTEMPTS_MAX times.
 */
export async function withFreePort<T>(listen: (port: number) => Promise<T> | T): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const port = freePort();
    try {
      return await listen(port);
    } catch (error) {
      if (!isAddressInUse(error) || attempt >= LISTEN_ATTEMPTS_MAX) throw error;
    }
  }
}

/** True for the error a listen on a taken port throws (node:net, Bun.listen, Bun.serve). */
export function isAddressInUse(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (
    code === "EADDRINUSE" || (typeof message === "string" && /EADDRINUSE|address.*in use/i.test(message))
  );
}

/** Gives back every port this process reserved (the preload does it when a test file ends). */
export function releaseAllPorts(): void {
  for (const port of [...reserved]) release(port);
}

/**
 * Reserves this port for the process when no process holds it (its lock file is absent, or
 * stale: removed, the port stays untaken this time); false otherwise. It does not check that
 * the port can be bound: freePort does.
 */
export function reservePort(port: number): boolean {
  if (reserved.has(port)) return false;
  mkdirSync(LOCK_DIR, { recursive: true });
  installExitHook();
  const path = join(LOCK_DIR, String(port));
  let fd: number;
  try {
    fd = openSync(path, "wx");
  } catch (error) {
    if ((error as { code?: string }).code !== "EEXIST") throw error;
    removeIfStale(path);
    return false;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  reserved.add(port);
  return true;
}

function release(port: number): void {
  if (!reserved.delete(port)) return;
  try {
    unlinkSync(join(LOCK_DIR, String(port)));
  } catch {
    // already gone (a janitor removed it as stale): nothing to give back
  }
}

/**
 * Removes a reservation whose owner is dead and that is older than STALE_LOCK_MS. The port is
 * not taken in this draw either way; a later draw may reserve it.
 */
function removeIfStale(path: string): void {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    if (pid === process.pid || isAlive(pid)) return;
    if (Date.now() - statSync(path).mtimeMs < STALE_LOCK_MS) return;
    unlinkSync(path);
  } catch {
    // raced with its owner or another janitor: leave it
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** Binds 127.0.0.1:port and closes it again: false when something listens there. */
function canListen(port: number): boolean {
  try {
    const socket = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.stop(true);
    return true;
  } catch (error) {
    if (isAddressInUse(error)) return false;
    throw error;
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", releaseAllPorts);
}
