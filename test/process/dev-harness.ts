// `longboat dev` as a test harness: the compiled binary runs the managed deployment (3
// drummers, 4 NodeHosts in master mode) on ports from the shared allocator and a temporary
// data directory, and the test talks to it through its pid files, the Drummer API and the
// NodeHost API. It registers itself: dev and every child it started are killed when the test
// (or the file) that made it ends, even if dev itself is gone by then.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DrummerCall, DrummerCallError, drummerCaller } from "../../src/drummer/client.ts";
import type { DrummerMethod } from "../../src/drummer/api/schemas.ts";
import { REAL_WAIT_MS } from "../support/limits.ts";
import { killTree } from "../support/leaks.ts";
import { LISTEN_ATTEMPTS_MAX, freePortRange } from "../support/ports.ts";
import { type Tracked, track } from "../support/resources.ts";
import { BIN, waitFor } from "./harness.ts";

/** dev's ports are base+1 … base+33. */
export const DEV_PORT_SPAN = 33;
export const NODEHOSTS = [1, 2, 3, 4];
export const DRUMMERS = [1, 2, 3];

export const HEALTH_OK = 1;
export const HOST_ALIVE = 1;
export const HOST_DEAD = 2;

export interface DevOptions {
  shards?: number;
  noRestart?: boolean;
  deadTimeout?: string;
  extra?: string[];
}

export interface ShardStatus {
  definition: { shardId: number; replicaCount: number; app: string };
  members: { replicaId: number; raftAddress: string; apiAddress: string; state: number }[];
  health: number;
  reason: string;
}

export interface HostStatus {
  raftAddress: string;
  apiAddress: string;
  state: number;
  replicas: { shardId: number; replicaId: number }[];
}

export class DevDeployment {
  readonly dir = mkdtempSync(join(tmpdir(), "longboat-dev-"));
  base = 0;
  proc: ReturnType<typeof Bun.spawn> | null = null;
  stdout = "";
  stderr = "";
  /** Every pid a pid file named, so that a child left by a killed dev is still killed. */
  private readonly seenPids = new Set<number>();
  private readonly tracked: Tracked;
  private readonly call: DrummerCall = drummerCaller();

  constructor(readonly opts: DevOptions = {}) {
    this.tracked = track(`longboat dev in ${this.dir}`, () => this.kill());
  }

  args(): string[] {
    const a = ["dev", "--data-dir", this.dir, "--base-port", String(this.base)];
    if (this.opts.shards !== undefined) a.push("--shards", String(this.opts.shards));
    if (this.opts.noRestart) a.push("--no-restart");
    // dev's own default (10 s): a shorter one could call a host of a loaded machine dead.
    if (this.opts.deadTimeout !== undefined) a.push("--dead-timeout", this.opts.deadTimeout);
    return [...a, ...(this.opts.extra ?? [])];
  }

  /** Runs dev on fresh ports (again on new ones if a program outside the tests took one). */
  spawn(): void {
    this.base = freePortRange(DEV_PORT_SPAN + 1);
    this.stdout = "";
    this.stderr = "";
    const proc = Bun.spawn([BIN, ...this.args()], { stdout: "pipe", stderr: "pipe" });
    this.proc = proc;
    void this.collect(proc.stdout as ReadableStream<Uint8Array>, (t) => {
      this.stdout += t;
    });
    void this.collect(proc.stderr as ReadableStream<Uint8Array>, (t) => {
      this.stderr += t;
    });
  }

  private async collect(stream: ReadableStream<Uint8Array>, add: (text: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) add(decoder.decode(chunk, { stream: true }));
  }

  /** Starts dev and waits until it says the deployment is healthy. */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.spawn();
      const proc = this.proc!;
      await waitFor(
        () => this.stdout.includes("longboat dev: healthy in") || proc.exitCode !== null,
        // The drummers listen for a dead timeout before they place anything.
        REAL_WAIT_MS * 3,
        `longboat dev healthy (stdout: ${this.stdout.slice(-2000)} stderr: ${this.stderr.slice(-2000)})`,
      );
      this.notePids();
      if (proc.exitCode === null) return;
      await proc.exited;
      if (!/is in use by another program/.test(this.stderr) || attempt >= LISTEN_ATTEMPTS_MAX)
        throw new Error(`longboat dev exited ${proc.exitCode}: ${this.stderr}`);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  nodehostRaft(i: number): string {
    return `127.0.0.1:${this.base + i}`;
  }
  nodehostApi(i: number): string {
    return `127.0.0.1:${this.base + 10 + i}`;
  }
  drummerApi(j: number): string {
    return `127.0.0.1:${this.base + 30 + j}`;
  }
  nodehostApis(): string {
    return NODEHOSTS.map((i) => this.nodehostApi(i)).join(",");
  }
  /** Index of the NodeHost with this raft address. */
  indexOf(raft: string): number {
    return NODEHOSTS.find((i) => this.nodehostRaft(i) === raft) ?? 0;
  }

  /** The pid in <name>.pid, or null when the file is absent (the process is not running). */
  pid(name: string): number | null {
    const path = join(this.dir, `${name}.pid`);
    if (!existsSync(path)) return null;
    const pid = Number(readFileSync(path, "utf8").trim());
    this.seenPids.add(pid);
    return pid;
  }

  notePids(): void {
    for (const j of DRUMMERS) this.pid(`drummer-${j}`);
    for (const i of NODEHOSTS) this.pid(`nodehost-${i}`);
  }

  /** Calls the Drummer API on each drummer in turn until one answers (unavailable: the next). */
  async drummer(
    method: DrummerMethod,
    request: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    let last: unknown;
    for (const j of DRUMMERS) {
      try {
        return await this.call(this.drummerApi(j), method, request, { timeoutMs: 3000 });
      } catch (error) {
        last = error;
        if (!(error instanceof DrummerCallError) || error.code !== "unavailable") throw error;
      }
    }
    throw last;
  }

  async shards(): Promise<ShardStatus[]> {
    const r = await this.drummer("ListShards", { shardIds: [] });
    return (r.shards as ShardStatus[]).map((s) => ({
      ...s,
      definition: { ...s.definition, shardId: Number(s.definition.shardId) },
      members: s.members.map((m) => ({ ...m, replicaId: Number(m.replicaId) })),
    }));
  }

  async hosts(): Promise<HostStatus[]> {
    const r = await this.drummer("ListNodeHosts", {});
    return (r.nodehosts as HostStatus[]).map((h) => ({
      ...h,
      replicas: h.replicas.map((x) => ({ shardId: Number(x.shardId), replicaId: Number(x.replicaId) })),
    }));
  }

  /** SIGTERM to dev; its exit code. */
  async stop(): Promise<number> {
    const proc = this.proc;
    if (!proc) return 0;
    proc.kill("SIGTERM");
    return await proc.exited;
  }

  /** Kills dev, its children and any child it left behind, and removes the data. */
  async kill(): Promise<void> {
    this.tracked.release();
    this.notePids();
    if (this.proc) {
      killTree(this.proc.pid);
      await this.proc.exited;
    }
    for (const pid of this.seenPids) {
      if (!ours(pid, this.dir)) continue; // exited, and the pid may belong to someone else now
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Whether pid runs a longboat process with a data directory under dir. */
export function ours(pid: number, dir: string): boolean {
  try {
    return alive(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
  } catch {
    return false;
  }
}
