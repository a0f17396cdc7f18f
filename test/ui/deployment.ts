/**
 * A real deployment of the compiled binary for the dashboard's browser test and
 * `npm run screenshots`: three `longboat drummer` processes and four `longboat nodehost
 * --master` processes in two regions on 127.0.0.1, with shards created and placed. Every
 * process is killed when the test file ends (or by stop()).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, connectJson, ensureBinary, waitFor } from "../process/harness.ts";
import { freePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";

export interface Proc {
  name: string;
  proc: ReturnType<typeof Bun.spawn> | null;
}

export interface Host {
  raft: string;
  api: string;
  region: string;
  proc: Proc;
}

export class Deployment {
  readonly dir = mkdtempSync(join(tmpdir(), "longboat-ui-"));
  readonly procs: Proc[] = [];
  readonly drummerApis: string[] = [];
  readonly hosts: Host[] = [];
  private readonly tracked = track("dashboard deployment", () => this.stop());

  constructor(readonly shardIds: number[] = [1, 2, 3, 4, 5, 6]) {}

  private start(name: string, args: string[]): Proc {
    const log = Bun.file(join(process.env.LONGBOAT_PROC_LOGS ?? this.dir, `${name.replace(" ", "-")}.log`));
    const p: Proc = { name, proc: Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: log }) };
    this.procs.push(p);
    return p;
  }

  /** Starts the processes, creates the shards and waits until every one is placed and healthy. */
  async up(timeoutMs = 120_000): Promise<void> {
    ensureBinary();
    const peers: string[] = [];
    for (const id of [1, 2, 3]) {
      peers.push(`${id}=127.0.0.1:${freePort()}`);
      this.drummerApis.push(`127.0.0.1:${freePort()}`);
    }
    for (const id of [1, 2, 3]) {
      this.start(`drummer ${id}`, [
        "drummer",
        "--id",
        String(id),
        "--peers",
        peers.join(","),
        "--api-address",
        this.drummerApis[id - 1]!,
        "--data-dir",
        join(this.dir, `drummer-${id}`),
        "--rtt-ms",
        "20",
        "--dead-timeout",
        "3s",
        "--report-interval",
        "500ms",
      ]);
    }
    for (const i of [1, 2, 3, 4]) {
      const raft = `127.0.0.1:${freePort()}`;
      const api = `127.0.0.1:${freePort()}`;
      const region = i <= 2 ? "eu-west" : "us-east";
      const proc = this.start(`nodehost ${i}`, [
        "nodehost",
        "--raft-address",
        raft,
        "--api-address",
        api,
        "--data-dir",
        join(this.dir, `host-${i}`),
        "--region",
        region,
        "--rtt-ms",
        "20",
        "--master",
        this.drummerApis.join(","),
      ]);
      this.hosts.push({ raft, api, region, proc });
    }
    await waitFor(
      async () => {
        const dep = await this.drummers("GetDeployment").catch(() => undefined);
        return Number(dep?.leaderDrummerId ?? 0) > 0;
      },
      timeoutMs,
      "a drummer leader",
    );
    for (const shardId of this.shardIds) {
      await this.drummers("CreateShard", { shardId, app: "kv", replicaCount: 3 });
    }
    await this.drummers("Bootstrap");
    await waitFor(() => this.allOk(), timeoutMs, "every shard placed and healthy");
  }

  /** One Connect JSON call. */
  rpc(api: string, service: "drummer" | "nodehost", method: string, body: unknown = {}) {
    return connectJson(api, service, method, body);
  }

  /** Asks each drummer in turn until one answers. */
  async drummers(method: string, body: unknown = {}): Promise<Record<string, unknown>> {
    let last: unknown;
    for (const api of this.drummerApis) {
      try {
        return await this.rpc(api, "drummer", method, body);
      } catch (e) {
        last = e;
      }
    }
    throw last;
  }

  /** Every shard healthy, none with a member on `exclude`. */
  async allOk(exclude?: string): Promise<boolean> {
    try {
      const list = ((await this.drummers("ListShards")).shards ?? []) as {
        health: string;
        members: { raftAddress: string }[];
      }[];
      return (
        list.length === this.shardIds.length &&
        list.every((s) => s.health === "SHARD_HEALTH_OK" && s.members.every((m) => m.raftAddress !== exclude))
      );
    } catch {
      return false;
    }
  }

  /** kill -9 of one NodeHost. */
  async kill(host: Host): Promise<void> {
    host.proc.proc?.kill("SIGKILL");
    await host.proc.proc?.exited;
    host.proc.proc = null;
  }

  async stop(): Promise<void> {
    for (const p of this.procs) {
      p.proc?.kill("SIGKILL");
      await p.proc?.exited;
      p.proc = null;
    }
    this.tracked.release();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Debian's chromium (or another Chromium-based browser) on this machine, if any. */
export function findChromium(): string | undefined {
  const candidates = [
    process.env.LONGBOAT_CHROMIUM,
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
  ];
  return candidates.find((p): p is string => p !== undefined && p !== "" && existsSync(p));
}
