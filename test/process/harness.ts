// Real processes of the compiled binary on 127.0.0.1: start, kill -9, SIGTERM, SIGSTOP.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LISTEN_ATTEMPTS_MAX, freePort as allocatePort, freePorts } from "../support/ports.ts";
import { REAL_WAIT_MS } from "../support/limits.ts";
import { currentTest, parkIfEnded, type Tracked, track } from "../support/resources.ts";

export const ROOT = join(import.meta.dir, "../..");
export const BIN = join(ROOT, "dist/longboat");

/** Builds dist/longboat once when it is missing (CI builds it before the tests). */
export function ensureBinary(): void {
  if (existsSync(BIN)) return;
  const p = Bun.spawnSync(["bun", "build.ts"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`building dist/longboat failed: ${p.stderr.toString()}`);
}

/**
 * A free TCP port on 127.0.0.1, below the ephemeral range and reserved across test processes
 * (test/support/ports.ts; kept async for the callers written before it).
 */
export async function freePort(): Promise<number> {
  return allocatePort();
}

/**
 * Polls cond every 50 ms until it holds; throws after timeoutMs. Never returns once the test
 * that called it has ended (a test that timed out must not act on the cluster after it).
 */
export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const token = currentTest();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await Bun.sleep(50);
    await parkIfEnded(token);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}

/** What a nodehost prints when its raft or API port is taken (node:net, Bun.serve). */
const ADDRESS_IN_USE = /EADDRINUSE|address already in use|Is port \d+ in use/;

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

/**
 * Three NodeHosts sharing `shards` kv shards, each a process of the compiled binary. It
 * registers itself (test/support/resources.ts): the processes are killed when the test, or
 * the file, that made it ends, whatever stop() calls the test makes.
 */
export class ProcessCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "longboat-proc-"));
  readonly hosts: HostSpec[] = [];
  readonly procs = new Map<number, ReturnType<typeof Bun.spawn>>();
  readonly logs = new Map<number, string>();
  private readonly tracked: Tracked;

  constructor(
    readonly shards: number,
    readonly extraArgs: string[] = [],
  ) {
    this.tracked = track(`ProcessCluster(${shards} shards, ${this.dir})`, () => this.stop());
  }

  /** Picks the hosts' ports (fresh ones on every call) and data directories. */
  async init(): Promise<void> {
    this.hosts.length = 0;
    for (const index of [1, 2, 3]) {
      const [raft, api] = freePorts(2);
      this.hosts.push({
        index,
        raft: `127.0.0.1:${raft}`,
        api: `127.0.0.1:${api}`,
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

  /**
   * Starts the three hosts and waits for their APIs and every shard's leader. A host that
   * could not listen (a program outside the tests took its port after the allocator checked
   * it) makes the whole cluster start again on fresh ports, before any data was written.
   */
  async startAll(): Promise<void> {
    await this.startHosts();
    for (let s = 1; s <= this.shards; s++) await this.waitLeader(s);
  }

  /** Starts the three hosts and waits for their APIs (startAll without the leaders). */
  async startHosts(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      for (const i of [1, 2, 3]) this.start(i);
      const busy = await this.waitHealthyOrAddressInUse();
      if (busy === null) break;
      if (attempt >= LISTEN_ATTEMPTS_MAX)
        throw new Error(`host ${busy} could not listen: ${this.logs.get(busy)}`);
      await this.killAll();
      for (const h of this.hosts) rmSync(h.dataDir, { recursive: true, force: true });
      await this.init();
    }
  }

  /** Waits for every host's API; returns the index of a host that exited unable to listen. */
  private async waitHealthyOrAddressInUse(): Promise<number | null> {
    let busy: number | null = null;
    for (const h of this.hosts) {
      await waitFor(
        async () => {
          const p = this.procs.get(h.index);
          if (p !== undefined && p.exitCode !== null && ADDRESS_IN_USE.test(this.logs.get(h.index) ?? ""))
            busy = h.index;
          return busy !== null || (await this.healthy(h.api));
        },
        REAL_WAIT_MS,
        `host ${h.index} API`,
      );
      if (busy !== null) return busy;
    }
    return null;
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

  async waitLeader(shardId: number, timeoutMs = REAL_WAIT_MS): Promise<number> {
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

  /** Kills every host (SIGCONT first: a stopped process cannot die) and removes the data. */
  async stop(): Promise<void> {
    this.tracked.release();
    await this.killAll();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async killAll(): Promise<void> {
    for (const [i, p] of this.procs) {
      p.kill("SIGCONT");
      p.kill("SIGKILL");
      await p.exited;
      this.procs.delete(i);
    }
  }
}

/** One Connect JSON call to a drummer's or NodeHost's API; a non-200 answer throws, naming the method and address. */
export async function connectJson(
  api: string,
  service: "drummer" | "nodehost",
  method: string,
  body: unknown = {},
): Promise<Record<string, unknown>> {
  const path =
    service === "drummer" ? "longboat.drummer.v1.DrummerService" : "longboat.nodehost.v1.NodeHostService";
  const res = await fetch(`http://${api}/${path}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`${method} at ${api}: ${JSON.stringify(json)}`);
  return json;
}
