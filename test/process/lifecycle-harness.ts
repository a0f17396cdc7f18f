// Helpers of the data lifecycle process tests: ports below 32768, NodeHost processes of the
// compiled binary by host number, the binary's subcommands run to completion.
import { join } from "node:path";
import { NodeHostClient } from "../../src/api/client.ts";
import { freePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { BIN, ROOT, waitFor } from "./harness.ts";

/**
 * A free port below the ephemeral range from the shared allocator (test/support/ports.ts:
 * reserved across concurrent test runs); also added to taken.
 */
export async function lowPort(taken: Set<number>): Promise<number> {
  const port = freePort();
  taken.add(port);
  return port;
}

export interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled binary (or, with source, src/cli/main.ts under bun) to completion. */
export async function longboat(
  args: string[],
  opts: { env?: Record<string, string>; source?: boolean; killAfterMs?: number } = {},
): Promise<Run> {
  const cmd = opts.source ? [process.execPath, join(ROOT, "src/cli/main.ts"), ...args] : [BIN, ...args];
  const p = Bun.spawn(cmd, {
    env: { ...(process.env as Record<string, string>), ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = opts.killAfterMs === undefined ? null : setTimeout(() => p.kill("SIGKILL"), opts.killAfterMs);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  if (timer) clearTimeout(timer);
  return { code: p.exitCode, signal: p.signalCode === null ? null : String(p.signalCode), stdout, stderr };
}

export interface Host {
  n: number;
  raft: string;
  api: string;
  dataDir: string;
}

/** NodeHost processes by host number, each with its own ports and data directory under root. */
export class Hosts {
  readonly hosts = new Map<number, Host>();
  readonly procs = new Map<number, ReturnType<typeof Bun.spawn>>();
  readonly logs = new Map<number, string>();
  private readonly taken = new Set<number>();

  constructor(readonly root: string) {
    // Every process is killed when the test (or file) that made these hosts ends, however it ends.
    track(`lifecycle Hosts in ${root}`, () => this.stopAll());
  }

  async add(n: number): Promise<Host> {
    const h = {
      n,
      raft: `127.0.0.1:${await lowPort(this.taken)}`,
      api: `127.0.0.1:${await lowPort(this.taken)}`,
      dataDir: join(this.root, `host-${n}`),
    };
    this.hosts.set(n, h);
    return h;
  }

  get(n: number): Host {
    const h = this.hosts.get(n);
    if (!h) throw new Error(`no host ${n}`);
    return h;
  }

  /** `id@raft;…` of hosts, as --shard members takes it. */
  members(ns: number[], sep = ";"): string {
    return ns.map((n) => `${n}@${this.get(n).raft}`).join(sep);
  }

  /** Starts host n's NodeHost with these --shard specs; resolves once its API answers. */
  async start(n: number, shards: string[], extra: string[] = []): Promise<void> {
    const h = this.get(n);
    const args = ["nodehost", "--data-dir", h.dataDir, "--raft-address", h.raft, "--api-address", h.api];
    args.push("--rtt-ms", "20", ...shards.flatMap((s) => ["--shard", s]), ...extra);
    const p = Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: "pipe" });
    this.procs.set(n, p);
    this.logs.set(n, "");
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of p.stderr as ReadableStream<Uint8Array>) {
        this.logs.set(n, ((this.logs.get(n) ?? "") + decoder.decode(chunk)).slice(-20_000));
      }
    })();
    await waitFor(
      async () => {
        if (p.exitCode !== null) throw new Error(`host ${n} exited ${p.exitCode}: ${this.logs.get(n)}`);
        try {
          return (await fetch(`http://${h.api}/healthz`)).ok;
        } catch {
          return false;
        }
      },
      60_000,
      `host ${n}'s API`,
    );
  }

  async kill(n: number, signal: "SIGKILL" | "SIGTERM" = "SIGKILL"): Promise<void> {
    const p = this.procs.get(n);
    if (!p) return;
    p.kill(signal);
    await p.exited;
    this.procs.delete(n);
  }

  client(ns: number[], timeoutMs = 3000): NodeHostClient {
    return new NodeHostClient({ addresses: ns.map((n) => this.get(n).api), timeoutMs });
  }

  /** Resolves once shardId answers a linearizable read through one of hosts ns. */
  async waitLeader(shardId: number, ns: number[]): Promise<void> {
    await waitFor(
      async () => {
        try {
          await this.client(ns, 2000).members(shardId);
          return true;
        } catch {
          return false;
        }
      },
      60_000,
      `shard ${shardId} with a leader among hosts ${ns.join(", ")}`,
    );
  }

  async stopAll(): Promise<void> {
    for (const n of [...this.procs.keys()]) await this.kill(n);
  }
}
