// Real processes of the compiled binary on 127.0.0.1: start, kill -9, SIGTERM, SIGSTOP.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "../..");
export const BIN = join(ROOT, "dist/longboat");

/** Builds dist/longboat once when it is missing (CI builds it before the tests). */
export function ensureBinary(): void {
  if (existsSync(BIN)) return;
  const p = Bun.spawnSync(["bun", "build.ts"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`building dist/longboat failed: ${p.stderr.toString()}`);
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await Bun.sleep(50);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}

/** Runs `longboat cmd …` and returns its exit code and output. */
export function cmd(args: string[]): { code: number; stdout: string; stderr: string } {
  const p = Bun.spawnSync([BIN, "cmd", ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

export interface HostSpec {
  index: number;
  raft: string;
  api: string;
  dataDir: string;
}

/** Three NodeHosts sharing `shards` kv shards, each a process of the compiled binary. */
export class ProcessCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "longboat-proc-"));
  readonly hosts: HostSpec[] = [];
  readonly procs = new Map<number, ReturnType<typeof Bun.spawn>>();
  readonly logs = new Map<number, string>();

  constructor(
    readonly shards: number,
    readonly extraArgs: string[] = [],
  ) {}

  async init(): Promise<void> {
    for (const index of [1, 2, 3]) {
      this.hosts.push({
        index,
        raft: `127.0.0.1:${await freePort()}`,
        api: `127.0.0.1:${await freePort()}`,
        dataDir: join(this.dir, `host-${index}`),
      });
    }
  }

  args(h: HostSpec): string[] {
    const members = this.hosts.map((x) => `${x.index}@${x.raft}`).join(";");
    const a = [
      "nodehost",
      "--data-dir",
      h.dataDir,
      "--raft-address",
      h.raft,
      "--api-address",
      h.api,
      "--rtt-ms",
      "20",
    ];
    for (let s = 1; s <= this.shards; s++)
      a.push("--shard", `id=${s},app=kv,replica=${h.index},members=${members}`);
    return [...a, ...this.extraArgs];
  }

  start(index: number): void {
    const h = this.hosts[index - 1]!;
    const proc = Bun.spawn([BIN, ...this.args(h)], { stdout: "ignore", stderr: "pipe" });
    this.procs.set(index, proc);
    this.logs.set(index, "");
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
        this.logs.set(index, (this.logs.get(index) ?? "") + decoder.decode(chunk));
      }
    })();
  }

  async startAll(): Promise<void> {
    for (const i of [1, 2, 3]) this.start(i);
    for (const h of this.hosts) await waitFor(() => this.healthy(h.api), 15_000, `host ${h.index} API`);
    for (let s = 1; s <= this.shards; s++) await this.waitLeader(s);
  }

  async healthy(api: string): Promise<boolean> {
    try {
      return (await fetch(`http://${api}/healthz`)).ok;
    } catch {
      return false;
    }
  }

  api(): string {
    return this.hosts.map((h) => h.api).join(",");
  }

  /** Calls a NodeHost API method with JSON (a Connect client we did not write: plain fetch). */
  async call(
    index: number,
    method: string,
    body: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return fetch(`http://${this.hosts[index - 1]!.api}/longboat.nodehost.v1.NodeHostService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  }

  /** The host index whose replica leads shardId, asking every live host; 0 when none knows. */
  async leaderOf(shardId: number): Promise<number> {
    for (const h of this.hosts) {
      if (!this.procs.has(h.index)) continue;
      try {
        const res = await this.call(h.index, "Status", {});
        if (!res.ok) continue;
        const status = (await res.json()) as {
          shards?: { shardId: string; role?: string; leaderId?: string }[];
        };
        const s = status.shards?.find((x) => Number(x.shardId) === shardId);
        if (s && Number(s.leaderId ?? 0) > 0) return Number(s.leaderId);
      } catch {
        // host down
      }
    }
    return 0;
  }

  async waitLeader(shardId: number, timeoutMs = 15_000): Promise<number> {
    let leader = 0;
    await waitFor(
      async () => {
        leader = await this.leaderOf(shardId);
        return leader !== 0 && this.procs.has(leader);
      },
      timeoutMs,
      `a leader for shard ${shardId}`,
    );
    return leader;
  }

  kill(index: number, signal: NodeJS.Signals | number = "SIGKILL"): Promise<number> {
    const p = this.procs.get(index);
    if (!p) throw new Error(`host ${index} is not running`);
    p.kill(signal);
    if (signal === "SIGSTOP" || signal === "SIGCONT") return Promise.resolve(0);
    this.procs.delete(index);
    return p.exited;
  }

  async stop(): Promise<void> {
    for (const [i, p] of this.procs) {
      p.kill("SIGCONT");
      p.kill("SIGKILL");
      await p.exited;
      this.procs.delete(i);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
