// API benchmark: three NodeHost processes on loopback (SQLite with fsync, HTTP/2 transport),
// 48 kv shards with leadership spread evenly, driven through the public NodeHost API (Connect
// unary, application/proto, over h2c) by a separate load generator process (loadgen.ts). Each
// request goes to the API of the host leading its shard (learned from Status), so no forwarding.
//
//   npm run bench -- api [--shards 48] [--seconds 5] [--warmup 1] [--concurrency 1,16,64,256]
//        [--reads 64] [--connections 4] [--loadgens 2] [--rate 0] [--protocol h2|h1] [--cpu-prof]
//
// --connections is per endpoint (3 endpoints), shared out among the --loadgens processes. --rate N > 0 runs open loop at N requests/s
// (latency from the scheduled start). --cpu-prof writes Bun CPU profiles of the hosts to
// bench-results/prof-<date>/ (summarise with scripts/bench/profsum.ts).
// Prints a table and writes bench-results/api-<date>.json.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { longboat } from "../../src/pb/longboat.js";
import type { ApiHostJob } from "./api-host.ts";
import { Histogram } from "./histogram.ts";
import { connect, h2request, type LoadJob, type LoadResult } from "./loadgen.ts";

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** A comma-separated list of positive integers (0 or nothing: an empty list). */
export function positiveList(name: string, fallback: string): number[] {
  return arg(name, fallback)
    .split(",")
    .map(Number)
    .filter((c) => c > 0);
}

export const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");

/** CPU time (user + system) a process has used so far, from /proc/<pid>/stat, in ms. */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Resident memory of a process in MiB, from /proc/<pid>/status. */
export function procRssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

export function loadAvg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

export async function readLine(
  reader: { read(): Promise<{ value?: Uint8Array; done: boolean }> },
  state: { buf: string },
  what: string,
): Promise<string> {
  const decoder = new TextDecoder();
  for (;;) {
    const i = state.buf.indexOf("\n");
    if (i >= 0) {
      const line = state.buf.slice(0, i);
      state.buf = state.buf.slice(i + 1);
      return line;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error(`${what} ended before answering`);
    state.buf += decoder.decode(value);
  }
}

export interface Cluster {
  endpoints: string[];
  pids: number[];
  /** Endpoint index leading shard s is leaderOf[s - 1]. */
  leaderOf: number[];
  /** Engine counters of each host (EngineStats). */
  stats(): Promise<Record<string, number>[]>;
  stop(): Promise<void>;
}

/** What runPoint samples around a run: the server processes, and engine counters when known. */
export interface Servers {
  pids: number[];
  stats?: () => Promise<Record<string, number>[]>;
}

/** Starts three api-host processes and waits until every shard has a leader. */
export async function startLongboat(opts: {
  shards: number;
  protocol: "h2" | "h1";
  cpuProfDir?: string;
}): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), "longboat-bench-api-"));
  const base = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral range (32768+)
  const raftAddresses = [1, 2, 3].map((i) => `127.0.0.1:${base + i}`);
  const apiPorts = [1, 2, 3].map((i) => base + 10 + i);
  const procs = raftAddresses.map((_, index) => {
    const job: ApiHostJob = {
      index,
      raftAddresses,
      apiPorts,
      dataDir: join(dir, `host-${index + 1}`),
      shards: opts.shards,
      rttMs: 50,
      protocol: opts.protocol,
    };
    const prof = opts.cpuProfDir
      ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=host-${index + 1}.cpuprofile`]
      : [];
    return Bun.spawn(["bun", ...prof, join(import.meta.dir, "api-host.ts"), JSON.stringify(job)], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
  });
  const readers = procs.map((p) => ({ reader: p.stdout.getReader(), state: { buf: "" } }));
  for (const r of readers) {
    const line = await readLine(r.reader, r.state, "api host");
    const ready = JSON.parse(line) as { settled: boolean; host: number };
    if (!ready.settled) process.stderr.write(`  warning: host ${ready.host} did not settle leadership\n`);
  }
  const endpoints = apiPorts.map((p) => `http://127.0.0.1:${p}`);
  const leaderOf = await leaders(endpoints, opts.shards, opts.protocol);
  return {
    endpoints,
    pids: procs.map((p) => p.pid),
    leaderOf,
    async stats() {
      for (const p of procs) p.stdin.write("stats\n");
      const out: Record<string, number>[] = [];
      for (const r of readers) out.push(JSON.parse(await readLine(r.reader, r.state, "api host")).stats);
      return out;
    },
    async stop() {
      for (const p of procs) p.stdin.write("exit\n");
      await Promise.all(procs.map((p) => p.exited));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Which endpoint leads each shard, from every host's Status (bounded: 100 tries of 100 ms). */
async function leaders(endpoints: string[], shards: number, protocol: "h2" | "h1"): Promise<number[]> {
  const pb = longboat.nodehost.v1;
  const body = pb.StatusRequest.encode({}).finish();
  for (let attempt = 0; attempt < 100; attempt++) {
    const leaderOf = new Array<number>(shards).fill(-1);
    for (let e = 0; e < endpoints.length; e++) {
      let bytes: Uint8Array;
      const path = "/longboat.nodehost.v1.NodeHostService/Status";
      if (protocol === "h2") {
        const s = await connect(endpoints[e]!);
        bytes = (await h2request(s, path, "application/proto", body, 5000)).body;
        s.close();
      } else {
        const res = await fetch(endpoints[e] + path, {
          method: "POST",
          headers: { "content-type": "application/proto" },
          body,
        });
        bytes = new Uint8Array(await res.arrayBuffer());
      }
      for (const sh of pb.StatusResponse.decode(bytes).shards) {
        if (Number(sh.leaderId) === Number(sh.replicaId) && Number(sh.shardId) <= shards) {
          leaderOf[Number(sh.shardId) - 1] = e;
        }
      }
    }
    if (leaderOf.every((l) => l >= 0)) return leaderOf;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("not every shard has a leader after 10 s");
}

export interface Point {
  system: string;
  op: string;
  concurrency: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  errors: number;
  firstError: string;
  /** Client CPU summed over the load generator processes (200 % = two cores). */
  clientCpuPercent: number;
  loadgens: number;
  serverCpuPercent: number[];
  /** Per request, summed over the hosts: engine-thread CPU (µs), messages sent, engine turns. */
  perOp?: { mainCpuUs: number; messages: number; iterations: number };
  /** Per host over the run: fsyncs/s, entries per fsync, % of wall time inside saveUpdates. */
  engine?: {
    fsyncsPerSec: number;
    entriesPerFsync: number;
    saveTimePercent: number;
    iterationsPerSec: number;
    /** % of wall time the log writer spent in appends and moves (their fsyncs included). */
    writerBusyPercent: number;
    /** Milliseconds per append (BEGIN to COMMIT) and moves per second. */
    appendMs: number;
    movesPerSec: number;
    /** Engine-thread CPU per engine round (one batch to the writer), ms; its % of wall waiting for a CPU. */
    mainCpuMsPerRound: number;
    mainRunqPercent: number;
  }[];
  loadAvg: string;
}

/**
 * Splits a job over `processes` load generators: concurrency, connections and rate are shared
 * out (each process gets at least one worker and one connection per endpoint).
 */
export function splitJob(job: LoadJob, processes: number): LoadJob[] {
  const n = Math.max(1, Math.min(processes, job.concurrency));
  return Array.from({ length: n }, (_, i) => {
    const concurrency = Math.floor(job.concurrency / n) + (i < job.concurrency % n ? 1 : 0);
    return {
      ...job,
      label: n > 1 ? `${job.label} [${i + 1}/${n}]` : job.label,
      concurrency,
      connectionsPerEndpoint: Math.max(1, Math.min(concurrency, Math.round(job.connectionsPerEndpoint / n))),
      ratePerSec: job.ratePerSec / n,
    };
  });
}

/** Merges the results of the load generator processes of one point. */
export function mergeResults(results: LoadResult[]): LoadResult {
  const hist = new Histogram();
  for (const r of results) hist.merge(Histogram.fromJSON(r.latency));
  const elapsedMs = Math.max(...results.map((r) => r.elapsedMs));
  return {
    label: results[0]!.label,
    ops: hist.total,
    opsPerSec: results.reduce((a, r) => a + r.opsPerSec, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
    firstError: results.find((r) => r.firstError)?.firstError ?? "",
    elapsedMs,
    clientCpuMs: results.reduce((a, r) => a + r.clientCpuMs, 0),
    latency: hist.toJSON(),
  };
}

/**
 * Runs one point with `loadgens` load generator processes (the job split among them) and
 * measures the servers' CPU over the same time.
 */
export async function runPoint(job: LoadJob, servers: Servers, loadgens = 1): Promise<Point> {
  const serverPids = servers.pids;
  const procs = splitJob(job, loadgens).map((j) =>
    Bun.spawn(["bun", join(import.meta.dir, "loadgen.ts"), JSON.stringify(j)], {
      stdout: "pipe",
      stderr: "inherit",
    }),
  );
  // Server CPU is sampled from the end of the warmup to the end of the run.
  await new Promise((r) => setTimeout(r, job.warmupMs + 300)); // connection setup ≈ 300 ms
  const cpu0 = serverPids.map(procCpuMs);
  const stats0 = await servers.stats?.();
  const t0 = performance.now();
  const lines = await Promise.all(
    procs.map((p) => readLine(p.stdout.getReader(), { buf: "" }, "load generator")),
  );
  const cpu1 = serverPids.map(procCpuMs);
  const wallMs = performance.now() - t0;
  const stats1 = await servers.stats?.();
  const engine =
    stats0 && stats1
      ? stats1.map((s1, i) => {
          const s0 = stats0[i]!;
          const d = (k: string) => (s1[k] ?? 0) - (s0[k] ?? 0);
          return {
            fsyncsPerSec: Math.round(d("savedBatches") / (wallMs / 1000)),
            entriesPerFsync: Number((d("savedEntries") / Math.max(1, d("savedBatches"))).toFixed(1)),
            saveTimePercent: Math.round((d("saveMsTotal") / wallMs) * 100),
            iterationsPerSec: Math.round(d("iterations") / (wallMs / 1000)),
            writerBusyPercent: Math.round(((d("writerAppendMs") + d("writerMoveMs")) / wallMs) * 100),
            appendMs: Number((d("writerAppendMs") / Math.max(1, d("writerAppends"))).toFixed(2)),
            movesPerSec: Number((d("writerMoves") / (wallMs / 1000)).toFixed(1)),
            mainCpuMsPerRound: Number((d("mainCpuMs") / Math.max(1, d("savedBatches"))).toFixed(2)),
            mainRunqPercent: Math.round((d("mainRunqMs") / wallMs) * 100),
          };
        })
      : undefined;
  await Promise.all(procs.map((p) => p.exited));
  const r = mergeResults(lines.map((l) => JSON.parse(l) as LoadResult));
  // Per request, summed over the hosts: what one read or write costs the cluster's engine
  // threads (CPU, messages sent, loop turns); robust to a busy machine where ops/s is not.
  const perOp =
    stats0 && stats1
      ? (() => {
          const ops = Math.max(1, r.opsPerSec * (wallMs / 1000));
          const sum = (k: string) => stats1.reduce((n, s1, i) => n + (s1[k] ?? 0) - (stats0[i]![k] ?? 0), 0);
          return {
            mainCpuUs: Math.round((sum("mainCpuMs") * 1000) / ops),
            messages: Number((sum("sentMessages") / ops).toFixed(2)),
            iterations: Number((sum("iterations") / ops).toFixed(2)),
          };
        })()
      : undefined;
  const s = Histogram.fromJSON(r.latency).summary();
  return {
    system: job.system,
    op: job.op,
    concurrency: job.concurrency,
    opsPerSec: r.opsPerSec,
    p50Ms: s.p50Ms,
    p99Ms: s.p99Ms,
    p999Ms: s.p999Ms,
    errors: r.errors,
    firstError: r.firstError,
    clientCpuPercent: Math.round((r.clientCpuMs / r.elapsedMs) * 100),
    loadgens: Math.min(loadgens, job.concurrency),
    serverCpuPercent: cpu1.map((c, i) => Math.round(((c - cpu0[i]!) / wallMs) * 100)),
    engine,
    perOp,
    loadAvg: loadAvg(),
  };
}

export function tableRow(p: Point) {
  return {
    system: p.system,
    op: p.op,
    conc: p.concurrency,
    "ops/s": Math.round(p.opsPerSec),
    "p50 ms": p.p50Ms.toFixed(2),
    "p99 ms": p.p99Ms.toFixed(2),
    "p99.9 ms": p.p999Ms.toFixed(2),
    "client cpu %": p.clientCpuPercent,
    loadgens: p.loadgens,
    "server cpu %": p.serverCpuPercent.join("/"),
    "fsync/s": p.engine?.map((e) => e.fsyncsPerSec).join("/") ?? "",
    "in fsync %": p.engine?.map((e) => e.saveTimePercent).join("/") ?? "",
    "writer %": p.engine?.map((e) => e.writerBusyPercent).join("/") ?? "",
    "main ms/round": p.engine?.map((e) => e.mainCpuMsPerRound).join("/") ?? "",
    "main µs/op": p.perOp?.mainCpuUs ?? "",
    "msgs/op": p.perOp?.messages ?? "",
    "turns/op": p.perOp?.iterations ?? "",
    errors: p.errors,
  };
}

export function writeResults(suite: string, data: object): string {
  mkdirSync("bench-results", { recursive: true });
  const file = join("bench-results", `${suite}-${stamp()}.json`);
  writeFileSync(file, JSON.stringify({ suite, machine: machine(), ...data }, null, 2));
  return file;
}

export function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown cpu";
  return `${navigator.hardwareConcurrency} × ${cpu}`;
}

export interface CommonOptions {
  seconds: number;
  warmupSeconds: number;
  connectionsPerEndpoint: number;
  ratePerSec: number;
  keySpace: number;
  /** Load generator processes per point (the job is split among them). */
  loadgens: number;
}

export function commonOptions(): CommonOptions {
  return {
    seconds: Number(arg("seconds", "5")),
    warmupSeconds: Number(arg("warmup", "1")),
    connectionsPerEndpoint: Number(arg("connections", "4")),
    ratePerSec: Number(arg("rate", "0")),
    keySpace: Number(arg("keys", "10000")),
    loadgens: Number(arg("loadgens", "2")),
  };
}

export function loadJob(
  o: CommonOptions,
  system: "longboat" | "etcd",
  op: "put" | "get",
  concurrency: number,
  endpoints: string[],
  leaderOf?: number[],
): LoadJob {
  if (!(o.seconds > 0 && o.seconds <= 600))
    throw new Error(`--seconds must be in (0, 600], got ${o.seconds}`);
  if (!(Number.isSafeInteger(o.loadgens) && o.loadgens >= 1 && o.loadgens <= 16))
    throw new Error(`--loadgens must be an integer in 1..16, got ${o.loadgens}`);
  return {
    label: `${system} ${op} c=${concurrency}`,
    system,
    op,
    endpoints,
    leaderOf,
    connectionsPerEndpoint: Math.min(o.connectionsPerEndpoint, concurrency),
    concurrency,
    ratePerSec: o.ratePerSec,
    warmupMs: o.warmupSeconds * 1000,
    durationMs: o.seconds * 1000,
    keySpace: o.keySpace,
    keyBytes: 16,
    valueBytes: 16,
    timeoutMs: 5000,
  };
}

if (import.meta.main) {
  const shards = Number(arg("shards", "48"));
  const concurrencies = positiveList("concurrency", "1,16,64,256"); // 0: no write points
  const readConcurrencies = positiveList("reads", "64"); // 0: no read points
  const protocol = arg("protocol", "h2") as "h2" | "h1";
  if (protocol !== "h2" && protocol !== "h1") throw new Error(`--protocol must be h2 or h1, got ${protocol}`);
  const o = commonOptions();
  const profDir = process.argv.includes("--cpu-prof") ? join("bench-results", `prof-${stamp()}`) : undefined;
  process.stderr.write(`api: starting 3 NodeHosts with ${shards} shards (load ${loadAvg()})\n`);
  const cluster = await startLongboat({ shards, protocol, cpuProfDir: profDir });
  const points: Point[] = [];
  try {
    for (const c of concurrencies) {
      points.push(
        await runPoint(
          { ...loadJob(o, "longboat", "put", c, cluster.endpoints, cluster.leaderOf), protocol },
          cluster,
          o.loadgens,
        ),
      );
    }
    for (const c of readConcurrencies) {
      points.push(
        await runPoint(
          { ...loadJob(o, "longboat", "get", c, cluster.endpoints, cluster.leaderOf), protocol },
          cluster,
          o.loadgens,
        ),
      );
    }
  } finally {
    await cluster.stop();
  }
  console.log(
    `\napi benchmark: 3 NodeHosts, ${shards} shards, fsync on, Connect/proto over ${protocol === "h2" ? "h2c" : "HTTP/1.1"}, 16 B keys and values`,
  );
  console.table(points.map(tableRow));
  for (const p of points)
    if (p.firstError) console.log(`  ${p.system} ${p.op} c=${p.concurrency}: ${p.firstError}`);
  if (profDir) console.log(`CPU profiles in ${profDir}`);
  console.log(`written ${writeResults("api", { shards, options: o, points })}`);
}
