// Drummer benchmark: three drummers (each its own process, SQLite log, HTTP/2 transport) and
// N simulated NodeHosts × R replicas reporting at the drummers' report interval. The simulated
// NodeHosts carry out the drummers' decisions at once (a create shows the replica running in
// the next report), so the drummers place N×R/3 shards of 3 replicas, then watch a steady
// deployment. Measured in the steady phase: the leader's CPU (from /proc) and the report
// latency seen by the NodeHosts; also the time to place everything.
//
//   npm run bench -- drummer [--hosts 1000] [--replicas 100] [--seconds 30] [--interval-ms 5000] [--cpu-prof]
//
// --cpu-prof writes each drummer's profile to bench-results/drummer-prof/ (scripts/bench/profsum.ts reads it).
//
// Prints a table; writes bench-results/drummer-<date>.json.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drummerCaller } from "../../src/drummer/client.ts";
import { toDecision } from "../../src/drummer/db/codec.ts";
import { DecisionKind } from "../../src/drummer/types.ts";
import { arg, loadAvg, procCpuMs, procRssMiB, readLine, writeResults } from "./api.ts";
import { Histogram } from "./histogram.ts";

const HOSTS = Number(arg("hosts", "1000"));
const REPLICAS = Number(arg("replicas", "100"));
const SECONDS = Number(arg("seconds", "30"));
const INTERVAL_MS = Number(arg("interval-ms", "5000"));
const SHARDS = Math.floor((HOSTS * REPLICAS) / 3);
const CONCURRENCY = 64;
const call = drummerCaller();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Replica {
  shardId: number;
  replicaId: number;
  members: { replicaId: number; raftAddress: string }[];
}

/** A NodeHost as the drummers see it: a report, and decisions carried out at once. */
class SimHost {
  readonly replicas = new Map<number, Replica>();
  results: { decisionId: number; ok: boolean; message: string }[] = [];
  constructor(readonly index: number) {}
  get address(): string {
    return `host-${this.index}.bench:7001`;
  }
  report(): Record<string, unknown> {
    const replicas = [...this.replicas.values()].map((r) => ({
      shardId: r.shardId,
      replicaId: r.replicaId,
      app: "kv",
      isLeader: r.members[0]!.raftAddress === this.address,
      leaderReplicaId: r.members[0]!.replicaId,
      configChangeId: 3,
      members: r.members,
      appliedIndex: 10,
      pending: false,
    }));
    const logsOnDisk = replicas.map((r) => ({ shardId: r.shardId, replicaId: r.replicaId }));
    return {
      raftAddress: this.address,
      apiAddress: `host-${this.index}.bench:8001`,
      region: `r${this.index % 3}`,
      deploymentId: 1,
      replicas,
      logsOnDisk,
      results: this.results,
    };
  }
  apply(reply: Record<string, unknown>): void {
    this.results = [];
    for (const raw of (reply.requests as Record<string, unknown>[]) ?? []) {
      const d = toDecision(raw);
      if (d.kind === DecisionKind.Create)
        this.replicas.set(d.shardId, {
          shardId: d.shardId,
          replicaId: d.replicaId,
          members: d.initialMembers,
        });
      this.results.push({ decisionId: d.decisionId, ok: true, message: "done" });
    }
  }
}

async function startDrummers(
  dir: string,
): Promise<{ pids: number[]; apis: string[]; procs: ReturnType<typeof Bun.spawn>[] }> {
  const base = 20000 + Math.floor(Math.random() * 5000);
  const peers = [1, 2, 3].map((id) => ({ id, address: `127.0.0.1:${base + id}` }));
  const procs = [];
  const pids: number[] = [];
  const apis: string[] = [];
  for (const p of peers) {
    const job = {
      id: p.id,
      peers,
      apiPort: base + 10 + p.id,
      dataDir: join(dir, `d${p.id}`),
      reportIntervalMs: INTERVAL_MS,
      deadTimeoutMs: Math.max(60_000, INTERVAL_MS * 3),
      launchesPerPassMax: 1024,
    };
    const prof = process.argv.includes("--cpu-prof")
      ? ["--cpu-prof", `--cpu-prof-dir=${join("bench-results", "drummer-prof")}`]
      : [];
    const proc = Bun.spawn(["bun", ...prof, join(import.meta.dir, "drummer-host.ts"), JSON.stringify(job)], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const line = await readLine(proc.stdout.getReader(), { buf: "" }, `drummer ${p.id}`);
    pids.push((JSON.parse(line) as { pid: number }).pid);
    apis.push(`127.0.0.1:${job.apiPort}`);
    procs.push(proc);
  }
  return { pids, apis, procs };
}

async function leaderIndex(apis: string[]): Promise<number> {
  for (let i = 0; i < 600; i++) {
    try {
      const dep = await call(apis[0]!, "GetDeployment", {}, { timeoutMs: 2000 });
      const id = Number(dep.leaderDrummerId);
      if (id > 0) {
        const ds = await call(apis[id - 1]!, "ListDrummers", {}, { timeoutMs: 2000 });
        if ((ds.drummers as unknown[]).length === 3) return id - 1;
      }
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error("no drummer leader within 60 s");
}

async function defineShards(api: string): Promise<void> {
  let next = 1;
  const worker = async () => {
    while (next <= SHARDS) {
      const shardId = next++;
      await retried(() =>
        call(api, "CreateShard", { shardId, app: "kv", replicaCount: 3 }, { timeoutMs: 30_000 }),
      );
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await retried(() => call(api, "Bootstrap", {}, { timeoutMs: 10_000 }));
}

/**
 * Runs a DrummerDB write until it is done: "unavailable" (not applied: no leader yet, a dropped
 * proposal) is retried; "already_exists"/"failed_precondition" after a retry means an earlier
 * attempt whose answer was lost did apply.
 */
async function retried(write: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await write();
      return;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (attempt > 0 && (code === "already_exists" || code === "failed_precondition")) return;
      if (code !== "unavailable" || attempt >= 100) throw e;
      await sleep(100);
    }
  }
}

/** Reports for h to whichever drummer answers, the leader the last reply named first (as MasterClient does). */
async function report(h: SimHost, apis: string[]): Promise<Record<string, unknown>> {
  for (let attempt = 0; ; attempt++) {
    for (const api of [target, ...apis]) {
      try {
        const reply = await call(api, "Report", h.report(), { timeoutMs: 30_000 });
        target = String(reply.leaderApiAddress || api);
        return reply;
      } catch (e) {
        if (attempt >= 100) throw e;
      }
    }
    await sleep(100);
  }
}
let target = "";

/** Every host reports once, CONCURRENCY at a time; returns how many replicas run in all. */
async function reportRound(hosts: SimHost[], apis: string[]): Promise<number> {
  let i = 0;
  const worker = async () => {
    while (i < hosts.length) {
      const h = hosts[i++]!;
      h.apply(await report(h, apis));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return hosts.reduce((n, h) => n + h.replicas.size, 0);
}

/** Steady state: each host reports every INTERVAL_MS, spread evenly; for SECONDS. */
async function steady(hosts: SimHost[], apis: string[], hist: Histogram): Promise<number> {
  const endMs = performance.now() + SECONDS * 1000;
  let reports = 0;
  const perHost = async (h: SimHost, offsetMs: number) => {
    await sleep(offsetMs);
    while (performance.now() < endMs) {
      const t0 = performance.now();
      try {
        h.apply(await report(h, apis));
        hist.record((performance.now() - t0) * 1000);
        reports++;
      } catch (e) {
        process.stderr.write(`report of ${h.address} failed: ${String(e)}\n`);
      }
      await sleep(Math.max(0, INTERVAL_MS - (performance.now() - t0)));
    }
  };
  await Promise.all(hosts.map((h, i) => perHost(h, (i * INTERVAL_MS) / hosts.length)));
  return reports;
}

const dir = mkdtempSync(join(tmpdir(), "longboat-bench-drummer-"));
const { pids, apis, procs } = await startDrummers(dir);
try {
  const leader = await leaderIndex(apis);
  const api = apis[leader]!;
  target = api;
  console.log(
    `drummer bench: ${HOSTS} NodeHosts × ${REPLICAS} replicas = ${SHARDS} shards of 3; report interval ${INTERVAL_MS} ms; load ${loadAvg()}`,
  );
  const t0 = performance.now();
  await defineShards(api);
  const defineMs = performance.now() - t0;
  const hosts = Array.from({ length: HOSTS }, (_, i) => new SimHost(i + 1));
  const t1 = performance.now();
  let placed = 0;
  for (let round = 0; placed < SHARDS * 3 && round < 600; round++) {
    placed = await reportRound(hosts, apis);
    await sleep(200);
  }
  await reportRound(hosts, apis); // the last creates' results
  const placeMs = performance.now() - t1;
  console.log(
    `defined ${SHARDS} shards in ${(defineMs / 1000).toFixed(1)} s; placed ${placed} replicas in ${(placeMs / 1000).toFixed(1)} s`,
  );
  await sleep(2000);
  const hist = new Histogram();
  const cpu0 = pids.map(procCpuMs);
  const w0 = performance.now();
  const reports = await steady(hosts, apis, hist);
  const wallMs = performance.now() - w0;
  const cpuPct = pids.map((pid, i) => ((procCpuMs(pid) - cpu0[i]!) / wallMs) * 100);
  const latency = hist.summary();
  const result = {
    hosts: HOSTS,
    replicasPerHost: REPLICAS,
    shards: SHARDS,
    reportIntervalMs: INTERVAL_MS,
    defineSeconds: defineMs / 1000,
    placeSeconds: placeMs / 1000,
    steadySeconds: wallMs / 1000,
    reportsPerSecond: reports / (wallMs / 1000),
    leaderCpuPercentOfCore: cpuPct[leader],
    followerCpuPercentOfCore: cpuPct.filter((_, i) => i !== leader),
    leaderRssMiB: procRssMiB(pids[leader]!),
    reportLatency: latency,
    loadAvg: loadAvg(),
  };
  console.log(
    `steady ${(wallMs / 1000).toFixed(0)} s: ${result.reportsPerSecond.toFixed(0)} reports/s; leader CPU ${cpuPct[leader]!.toFixed(1)} % of a core ` +
      `(followers ${result.followerCpuPercentOfCore.map((c) => c.toFixed(1)).join(", ")} %), RSS ${result.leaderRssMiB.toFixed(0)} MiB; ` +
      `report latency p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms, max ${latency.maxMs.toFixed(1)} ms`,
  );
  console.log(`wrote ${writeResults("drummer", result)}`);
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
}
