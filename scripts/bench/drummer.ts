// Drummer benchmark: three drummers (each its own process, SQLite log, HTTP/2 transport) and
// N simulated NodeHosts × R replicas reporting at the drummers' report interval. The simulated
// NodeHosts carry out the drummers' decisions at once (a create shows the replica running in
// the next report), so the drummers place N×R/3 shards of 3 replicas, then watch a steady
// deployment. Measured in the steady phase: the leader's CPU (from /proc) and the report
// latency seen by the NodeHosts; also the time to place everything.
//
//   npm run bench -- drummer [--hosts 1000] [--replicas 100] [--seconds 60] [--interval-ms 5000]
//                            [--members alternate|omit|full] [--window-seconds 10] [--settle-seconds 30] [--cpu-prof]
//
// --members: how the simulated NodeHosts send their replicas' members. "omit" as the master
// client does (src/master/report.ts: members the leader acknowledged are left out until it asks
// for them again), "full" every member in every report (before that change), "alternate" (the
// default) switches between the two every --window-seconds, so both are measured side by side
// on the same drummers under the same machine load; the leader's CPU is given per mode and as a
// ratio. The target (issue #14): the leader under 10 % of a core at 1,000 × 100 and 5 s.
//
// --cpu-prof writes each drummer's profile to bench-results/drummer-prof-<date>/drummer-N.cpuprofile
// and prints the profsum command for the leader's steady phase alone (--from/--to, epoch ms).
//
// Prints a table; writes bench-results/drummer-<date>.json.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drummerCaller } from "../../src/drummer/client.ts";
import { toDecision } from "../../src/drummer/db/codec.ts";
import { DecisionKind } from "../../src/drummer/types.ts";
import { MembersSent, type ReportedReplica as ReportReplica } from "../../src/master/report.ts";
import { arg, loadAvg, procCpuMs, procRssMiB, readLine, writeResults } from "./api.ts";
import { Histogram } from "./histogram.ts";

const HOSTS = Number(arg("hosts", "1000"));
const REPLICAS = Number(arg("replicas", "100"));
const SECONDS = Number(arg("seconds", "60"));
const INTERVAL_MS = Number(arg("interval-ms", "5000"));
const MEMBERS = arg("members", "alternate");
if (!["alternate", "omit", "full"].includes(MEMBERS))
  throw new Error(`--members alternate|omit|full, got ${MEMBERS}`);
const WINDOW_MS = Number(arg("window-seconds", "10")) * 1000;
const SETTLE_MS = Number(arg("settle-seconds", "30")) * 1000;
/** --cpu-prof: each drummer writes a Bun CPU profile here; the steady phase's window is printed for profsum. */
const PROF_DIR = process.argv.includes("--cpu-prof")
  ? join("bench-results", `drummer-prof-${new Date().toISOString().replace(/[:.]/g, "-")}`)
  : null;
const SHARDS = Math.floor((HOSTS * REPLICAS) / 3);
const CONCURRENCY = 64;
const call = drummerCaller();
const uptime = () => execFileSync("uptime", { encoding: "utf8" }).trim();
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
  /** Members the leader acknowledged (as the master client keeps them). */
  readonly sent = new MembersSent();
  /** The last report built (what `sent` learns from once answered). */
  private last: { replicas: ReportReplica[] } = { replicas: [] };

  /** The report; with omit, the members the leader has are left out (as the master client does). */
  report(omit: boolean): Record<string, unknown> {
    const replicas: ReportReplica[] = [];
    for (const r of this.replicas.values()) {
      const leaves = omit && this.sent.has(r.shardId, r.replicaId, 3);
      replicas.push({
        shardId: r.shardId,
        replicaId: r.replicaId,
        app: "kv",
        isLeader: r.members[0]!.raftAddress === this.address,
        leaderReplicaId: r.members[0]!.replicaId,
        configChangeId: 3,
        members: leaves ? [] : r.members,
        appliedIndex: 10,
        pending: false,
      });
    }
    this.last = { replicas };
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
    if (reply.resendMembers === true) resends++;
    this.sent.answered(this.last, reply.resendMembers === true);
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
    const prof = PROF_DIR
      ? ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`, `--cpu-prof-name=drummer-${p.id}.cpuprofile`]
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
async function report(h: SimHost, apis: string[], omit = true): Promise<Record<string, unknown>> {
  for (let attempt = 0; ; attempt++) {
    for (const api of [target, ...apis]) {
      try {
        const reply = await call(api, "Report", h.report(omit), { timeoutMs: 30_000 });
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
let resends = 0;

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

interface Window {
  mode: "omit" | "full";
  leaderCpuPercent: number;
  reports: number;
  latency: Histogram;
}

/**
 * Steady state: each host reports every INTERVAL_MS, spread evenly, for SECONDS, in windows of
 * WINDOW_MS; each window's mode (members left out or not) and the leader's CPU in it.
 */
async function steady(hosts: SimHost[], apis: string[], leaderPid: number): Promise<Window[]> {
  const startMs = performance.now();
  const endMs = startMs + SECONDS * 1000;
  const windows: Window[] = [];
  const modeAt = (i: number): Window["mode"] =>
    MEMBERS === "alternate" ? (i % 2 === 0 ? "omit" : "full") : (MEMBERS as Window["mode"]);
  let current: Window = { mode: modeAt(0), leaderCpuPercent: 0, reports: 0, latency: new Histogram() };
  let cpu0 = procCpuMs(leaderPid);
  let w0 = performance.now();
  const roll = setInterval(() => {
    const cpu = procCpuMs(leaderPid);
    const now = performance.now();
    current.leaderCpuPercent = ((cpu - cpu0) / (now - w0)) * 100;
    windows.push(current);
    process.stdout.write(
      `  window ${windows.length} (${current.mode}): leader ${current.leaderCpuPercent.toFixed(1)} % of a core, ` +
        `${((current.reports * 1000) / (now - w0)).toFixed(0)} reports/s, p99 ${current.latency.summary().p99Ms.toFixed(1)} ms, load ${loadAvg()}\n`,
    );
    current = { mode: modeAt(windows.length), leaderCpuPercent: 0, reports: 0, latency: new Histogram() };
    cpu0 = cpu;
    w0 = now;
  }, WINDOW_MS);
  const perHost = async (h: SimHost, offsetMs: number) => {
    await sleep(offsetMs);
    while (performance.now() < endMs) {
      const t0 = performance.now();
      const w = current;
      try {
        h.apply(await report(h, apis, w.mode === "omit"));
        w.latency.record((performance.now() - t0) * 1000);
        w.reports++;
      } catch (e) {
        process.stderr.write(`report of ${h.address} failed: ${String(e)}\n`);
      }
      await sleep(Math.max(0, INTERVAL_MS - (performance.now() - t0)));
    }
  };
  await Promise.all(hosts.map((h, i) => perHost(h, (i * INTERVAL_MS) / hosts.length)));
  clearInterval(roll);
  return windows;
}

/** Reports at the steady pace (members left out) for ms, unmeasured: the placement's aftermath settles. */
async function steadyFor(hosts: SimHost[], apis: string[], ms: number): Promise<void> {
  const endMs = performance.now() + ms;
  const perHost = async (h: SimHost, offsetMs: number) => {
    await sleep(offsetMs);
    while (performance.now() < endMs) {
      const t0 = performance.now();
      try {
        h.apply(await report(h, apis));
      } catch (e) {
        process.stderr.write(`report of ${h.address} failed: ${String(e)}\n`);
      }
      await sleep(Math.max(0, INTERVAL_MS - (performance.now() - t0)));
    }
  };
  await Promise.all(hosts.map((h, i) => perHost(h, (i * INTERVAL_MS) / hosts.length)));
}

/** The leading drummer's index (asked of every drummer until one names a leader). */
async function currentLeader(apis: string[]): Promise<number> {
  for (let i = 0; i < 600; i++) {
    for (const api of apis) {
      try {
        const dep = await call(api, "GetDeployment", {}, { timeoutMs: 2000 });
        const id = Number(dep.leaderDrummerId);
        if (id > 0) return id - 1;
      } catch {
        // an election, or a busy drummer
      }
    }
    await sleep(100);
  }
  throw new Error("no drummer leader within 60 s");
}

const dir = mkdtempSync(join(tmpdir(), "longboat-bench-drummer-"));
const { pids, apis, procs } = await startDrummers(dir);
try {
  const first = await leaderIndex(apis);
  const api = apis[first]!;
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
    process.stdout.write(
      `  placing: ${placed} of ${SHARDS * 3} replicas running after ${((performance.now() - t1) / 1000).toFixed(0)} s; load ${loadAvg()}\n`,
    );
    await sleep(200);
  }
  await reportRound(hosts, apis); // the last creates' results
  const placeMs = performance.now() - t1;
  console.log(
    `defined ${SHARDS} shards in ${(defineMs / 1000).toFixed(1)} s; placed ${placed} replicas in ${(placeMs / 1000).toFixed(1)} s`,
  );
  // The leader plans every shard once after a placement (all were new to it): settle first.
  await steadyFor(hosts, apis, SETTLE_MS);
  const leader = await currentLeader(apis);
  target = apis[leader]!;
  const loadBefore = loadAvg();
  const uptimeBefore = uptime();
  const followersCpu0 = pids.map(procCpuMs);
  const resends0 = resends;
  const w0 = performance.now();
  const steadyFromMs = Date.now();
  const windows = await steady(hosts, apis, pids[leader]!);
  const wallMs = performance.now() - w0;
  const steadyToMs = Date.now();
  const cpuPct = pids.map((pid, i) => ((procCpuMs(pid) - followersCpu0[i]!) / wallMs) * 100);
  const leaderAfter = await currentLeader(apis);
  const byMode = (mode: Window["mode"]) => {
    const ws = windows.filter((w) => w.mode === mode);
    if (ws.length === 0) return null;
    const hist = new Histogram();
    for (const w of ws) hist.merge(w.latency);
    return {
      windows: ws.length,
      leaderCpuPercentOfCore: ws.map((w) => w.leaderCpuPercent),
      leaderCpuPercentMean: ws.reduce((n, w) => n + w.leaderCpuPercent, 0) / ws.length,
      reports: ws.reduce((n, w) => n + w.reports, 0),
      reportLatency: hist.summary(),
    };
  };
  const omit = byMode("omit");
  const full = byMode("full");
  const result = {
    hosts: HOSTS,
    replicasPerHost: REPLICAS,
    shards: SHARDS,
    reportIntervalMs: INTERVAL_MS,
    members: MEMBERS,
    windowSeconds: WINDOW_MS / 1000,
    defineSeconds: defineMs / 1000,
    placeSeconds: placeMs / 1000,
    steadySeconds: wallMs / 1000,
    leaderChanged: leaderAfter !== leader,
    resendsAsked: resends - resends0,
    leaderCpuPercentOfCore: cpuPct[leader],
    followerCpuPercentOfCore: cpuPct.filter((_, i) => i !== leader),
    leaderRssMiB: procRssMiB(pids[leader]!),
    omit,
    full,
    fullOverOmitCpuRatio: omit && full ? full.leaderCpuPercentMean / omit.leaderCpuPercentMean : null,
    steadyEpochMs: { from: steadyFromMs, to: steadyToMs },
    leaderProfile: PROF_DIR ? join(PROF_DIR, `drummer-${leader + 1}.cpuprofile`) : null,
    uptimeBefore,
    uptimeAfter: uptime(),
    loadAvgBefore: loadBefore,
    loadAvg: loadAvg(),
  };
  console.log(
    `steady ${(wallMs / 1000).toFixed(0)} s: leader CPU ${cpuPct[leader]!.toFixed(1)} % of a core over all windows ` +
      `(followers ${result.followerCpuPercentOfCore.map((c) => c.toFixed(1)).join(", ")} %), RSS ${result.leaderRssMiB.toFixed(0)} MiB` +
      `${result.leaderChanged ? "; THE LEADER CHANGED: not a steady measurement" : ""}`,
  );
  for (const [name, m] of [
    ["members left out", omit],
    ["members sent every time", full],
  ] as const) {
    if (!m) continue;
    console.log(
      `  ${name}: leader ${m.leaderCpuPercentMean.toFixed(1)} % of a core (windows ${m.leaderCpuPercentOfCore.map((c) => c.toFixed(1)).join(", ")}); ` +
        `report latency p50 ${m.reportLatency.p50Ms.toFixed(2)} ms, p99 ${m.reportLatency.p99Ms.toFixed(2)} ms, max ${m.reportLatency.maxMs.toFixed(1)} ms`,
    );
  }
  if (result.fullOverOmitCpuRatio !== null)
    console.log(`  full / omit leader CPU: ${result.fullOverOmitCpuRatio.toFixed(2)}×`);
  console.log(`  ${result.uptimeAfter}`);
  console.log(`wrote ${writeResults("drummer", result)}`);
  if (result.leaderProfile)
    console.log(
      `leader's profile, steady phase (written when the drummers stop): npx bun scripts/bench/profsum.ts ${result.leaderProfile} --from ${steadyFromMs} --to ${steadyToMs}`,
    );
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
}
