/**
 * What a test file may not leave behind, read from the operating system rather than from
 * our own bookkeeping (Linux /proc), so it also sees what no harness registered:
 * - processes below this one (a nodehost, a crash child, `longboat dev` and its hosts);
 * - TCP sockets of this process that listen (a transport, an API server, a NodeHost);
 * - open files under the temporary directory named longboat-* (a LogDB or snapshot file of
 *   a NodeHost that was never stopped).
 * Bun's own process.getActiveResourcesInfo() reports nothing, hence /proc.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";

/** One thing left running, described for the failure message. */
export interface Leak {
  kind: "child process" | "listening socket" | "open file";
  what: string;
  /** The pid of a child process (the preload kills it). */
  pid?: number;
}

/** False where /proc is missing (not Linux): the check is skipped, the registry still works. */
export const CAN_CHECK = existsSync("/proc/self/task");

export function findLeaks(): Leak[] {
  if (!CAN_CHECK) return [];
  return [...childProcesses(), ...listeningSockets(), ...openTempFiles()];
}

function childProcesses(): Leak[] {
  return descendants("self").map((pid) => ({
    kind: "child process",
    what: `pid ${pid}: ${commandLine(pid)}`,
    pid,
  }));
}

/** Every process below pid (children, their children…), parents before their children. */
export function descendants(pid: number | "self"): number[] {
  const out: number[] = [];
  const queue: (number | "self")[] = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const tasks = readdirOrEmpty(`/proc/${next}/task`);
    for (const task of tasks) {
      for (const child of readOrEmpty(`/proc/${next}/task/${task}/children`).split(/\s+/).filter(Boolean)) {
        const c = Number(child);
        if (out.includes(c)) continue;
        out.push(c);
        queue.push(c);
      }
    }
  }
  return out;
}

/**
 * SIGKILLs pid and every process below it, parents first (a supervisor such as `longboat dev`
 * must not restart what it sees die). Children a killed parent leaves are found before it dies.
 */
export function killTree(pid: number): void {
  const below = CAN_CHECK ? descendants(pid) : [];
  for (const p of [pid, ...below]) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
}

function commandLine(pid: number): string {
  const text = readOrEmpty(`/proc/${pid}/cmdline`).split("\0").filter(Boolean).join(" ");
  return text.length > 200 ? `${text.slice(0, 200)}…` : text || "(no command line: starting or exited)";
}

/** Inodes of the sockets this process has open. */
function socketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    const target = readlinkOrEmpty(`/proc/self/fd/${fd}`);
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  return inodes;
}

const TCP_LISTEN = "0A";

function listeningSockets(): Leak[] {
  const mine = socketInodes();
  const out: Leak[] = [];
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    for (const line of readOrEmpty(table).split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== TCP_LISTEN || !mine.has(cols[9]!)) continue;
      out.push({ kind: "listening socket", what: `port ${Number.parseInt(cols[1]!.split(":")[1]!, 16)}` });
    }
  }
  return out;
}

function openTempFiles(): Leak[] {
  const prefix = `${tmpdir()}/longboat-`;
  const out: Leak[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    const target = readlinkOrEmpty(`/proc/self/fd/${fd}`);
    if (target.startsWith(prefix) && !target.startsWith(`${tmpdir()}/longboat-test-ports`)) {
      out.push({ kind: "open file", what: target });
    }
  }
  return out;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return ""; // gone meanwhile
  }
}

function readdirOrEmpty(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function readlinkOrEmpty(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}
