// Runs docs/operations.md: every ```sh block of the page, verbatim and in order, against real
// NodeHost processes of the compiled binary, so the page and the binary cannot drift apart.
//
// The page's conventions (see its source):
//   ```sh variables   the shell variables the commands use; the test sets each one itself
//   ```sh background  one long-running command per line (a NodeHost), started and kept running
//   ```sh             commands run with bash -euo pipefail; the block must exit 0
//   <!-- doc-test: kill N | stop N | wipe N | leader N… | caught-up N | output TEXT -->
//                     what happens between blocks (kill -9 of host N, SIGTERM, deleting its
//                     data directory), what to wait for, and text the last block printed.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeHostClient } from "../../src/api/client.ts";
import { ensureBinary, ROOT, waitFor } from "./harness.ts";
import { lowPort } from "./lifecycle-harness.ts";

setDefaultTimeout(600_000);

type Step =
  | { kind: "run"; code: string; line: number }
  | { kind: "background"; commands: string[]; line: number }
  | { kind: "directive"; verb: string; args: string; line: number };

const DOC = join(ROOT, "docs/operations.md");
const HOSTS = [1, 2, 3, 4, 5, 6, 7];
/** Every wait of the test (a NodeHost up, a leader, a catch-up) is bounded by this. */
const WAIT_MS = 60_000;

/** Splits the page into its steps, in order; returns the variables block's names apart. */
export function parseDoc(text: string): { steps: Step[]; variables: string[] } {
  const steps: Step[] = [];
  let variables: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const directive = /<!--\s*doc-test:\s*(\S+)\s*(.*?)\s*-->/.exec(lines[i]!);
    if (directive) {
      steps.push({ kind: "directive", verb: directive[1]!, args: directive[2]!, line: i + 1 });
      continue;
    }
    const fence = /^\s*```sh\b\s*(\S*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const body: string[] = [];
    const start = i + 1;
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!.trim());
    const tag = fence[1]!;
    if (tag === "variables")
      variables = body.flatMap((l) => [...l.matchAll(/\b([A-Z][A-Z0-9]*)=/g)].map((m) => m[1]!));
    else if (tag === "background")
      steps.push({ kind: "background", commands: body.filter((l) => l !== ""), line: start });
    else if (tag === "") steps.push({ kind: "run", code: body.join("\n"), line: start });
    else throw new Error(`docs/operations.md:${start}: unknown block tag "${tag}"`);
  }
  return { steps, variables };
}

const dir = mkdtempSync(join(tmpdir(), "longboat-opsdoc-"));
const env: Record<string, string> = {};
const procs = new Map<number, ReturnType<typeof Bun.spawn>>();
const logs = new Map<number, string>();

beforeAll(async () => {
  ensureBinary();
  const taken = new Set<number>();
  for (const n of HOSTS) {
    env[`RAFT${n}`] = `127.0.0.1:${await lowPort(taken)}`;
    env[`API${n}`] = `127.0.0.1:${await lowPort(taken)}`;
    env[`DATA${n}`] = join(dir, `host-${n}`);
  }
});

afterAll(async () => {
  for (const p of procs.values()) {
    p.kill("SIGKILL");
    await p.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

function shellEnv(): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    ...env,
    PATH: `${join(ROOT, "dist")}:${process.env.PATH ?? ""}`,
    // Faster elections than the default 100 ms tick; the page's commands stay as written.
    LONGBOAT_RTT_MS: "20",
  };
}

function hostOf(command: string, where: string): number {
  const m = /--api-address \$API(\d)\b/.exec(command);
  if (!m) throw new Error(`${where}: a background command without --api-address $APIn: ${command}`);
  return Number(m[1]);
}

async function healthy(api: string): Promise<boolean> {
  try {
    return (await fetch(`http://${api}/healthz`)).ok;
  } catch {
    return false;
  }
}

function startHost(command: string, where: string): void {
  const n = hostOf(command, where);
  if (procs.has(n)) throw new Error(`${where}: host ${n} is already running`);
  const p = Bun.spawn(["bash", "-c", `exec ${command}`], {
    cwd: dir,
    env: shellEnv(),
    stdout: "ignore",
    stderr: "pipe",
  });
  procs.set(n, p);
  logs.set(n, "");
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of p.stderr as ReadableStream<Uint8Array>) {
      logs.set(n, ((logs.get(n) ?? "") + decoder.decode(chunk)).slice(-20_000));
    }
  })();
}

function client(hosts: number[]): NodeHostClient {
  return new NodeHostClient({ addresses: hosts.map((n) => env[`API${n}`]!), timeoutMs: 2000 });
}

/** Shard 1 answers a linearizable read through one of hosts. */
async function waitLeader(hosts: number[], where: string): Promise<void> {
  await waitFor(
    async () => {
      try {
        await client(hosts).members(1);
        return true;
      } catch {
        return false;
      }
    },
    WAIT_MS,
    `${where}: shard 1 with a leader among hosts ${hosts.join(", ")}`,
  );
}

/** Host n's replica of shard 1 has applied what the shard had committed when the wait began. */
async function waitCaughtUp(n: number, where: string): Promise<void> {
  const leaders = HOSTS.filter((h) => h !== n && procs.has(h));
  const committed = Number(
    (await client(leaders).status()).shards.find((s) => Number(s.shardId) === 1)?.commitIndex ?? 0,
  );
  await waitFor(
    async () => {
      try {
        const s = (await client([n]).status()).shards.find((x) => Number(x.shardId) === 1);
        return s !== undefined && Number(s.appliedIndex) >= committed;
      } catch {
        return false;
      }
    },
    WAIT_MS,
    `${where}: host ${n} applying up to ${committed}`,
  );
}

async function runBlock(code: string, where: string): Promise<string> {
  const p = Bun.spawn(["bash", "-euo", "pipefail", "-c", code], {
    cwd: dir,
    env: shellEnv(),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (exitCode !== 0) {
    const hostLogs = [...logs].map(([n, l]) => `--- host ${n}\n${l.slice(-3000)}`).join("\n");
    throw new Error(
      `${where}: exited ${exitCode}\n${code}\nstdout:\n${stdout}\nstderr:\n${stderr}\n${hostLogs}`,
    );
  }
  return stdout;
}

async function directive(step: Extract<Step, { kind: "directive" }>, lastOutput: string): Promise<void> {
  const where = `docs/operations.md:${step.line}`;
  const hosts = step.args
    .split(/\s+/)
    .filter((x) => x !== "")
    .map(Number);
  switch (step.verb) {
    case "kill":
    case "stop": {
      const p = procs.get(hosts[0]!);
      if (!p) throw new Error(`${where}: host ${hosts[0]} is not running`);
      p.kill(step.verb === "kill" ? "SIGKILL" : "SIGTERM");
      await p.exited;
      procs.delete(hosts[0]!);
      return;
    }
    case "wipe":
      rmSync(env[`DATA${hosts[0]}`]!, { recursive: true, force: true });
      return;
    case "leader":
      return waitLeader(hosts, where);
    case "caught-up":
      return waitCaughtUp(hosts[0]!, where);
    case "output":
      expect(lastOutput, `${where}: the block before prints "${step.args}"`).toContain(step.args);
      return;
    default:
      throw new Error(`${where}: unknown doc-test directive "${step.verb}"`);
  }
}

test("the page defines the variables the test sets, and has commands for every section", () => {
  const { steps, variables } = parseDoc(readFileSync(DOC, "utf8"));
  expect(variables.sort()).toEqual(Object.keys(env).sort());
  const commands = steps.flatMap((s) =>
    s.kind === "run" ? [s.code] : s.kind === "background" ? s.commands : [],
  );
  for (const word of [
    "longboat backup",
    "longboat restore",
    "remove-replica",
    "add-replica",
    "remove-data",
    "cmd compact",
    "cmd log",
  ]) {
    expect(commands.some((c) => c.includes(word))).toBe(true);
  }
});

test("every command of docs/operations.md works as written: backup, replacing and moving replicas, restore after losing 2 of 3 hosts, compaction", async () => {
  const { steps } = parseDoc(readFileSync(DOC, "utf8"));
  let lastOutput = "";
  for (const step of steps) {
    const where = `docs/operations.md:${step.line}`;
    if (step.kind === "run") lastOutput = await runBlock(step.code, where);
    else if (step.kind === "background") {
      for (const c of step.commands) startHost(c, where);
      for (const c of step.commands) {
        const api = env[`API${hostOf(c, where)}`]!;
        await waitFor(() => healthy(api), WAIT_MS, `${where}: ${api} healthy`);
      }
    } else await directive(step, lastOutput);
  }
});
