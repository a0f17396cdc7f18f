// Scale benchmark: many shards on one NodeHost (single-replica kv shards, SQLite with fsync).
//
//   npm run bench -- scale [--shards 1000,10000] [--seconds 5] [--entries 1000000] [--skip-restart] [--cpu-prof]
//                          [--sequential] [--keep-log DIR] [--restart-from DIR]
//
// --shards 0 skips the shard points. --keep-log DIR copies the written log's data directory to
// DIR (when DIR does not exist); --restart-from DIR restarts from a copy of such a directory
// instead of writing the entries again (the restart's own figures are the same).
//
// For each shard count: time to start every replica and elect, memory (RSS) once started; idle
// CPU and memory once every shard has quiesced (rttMs 50, electionRtt 5: a shard quiesces
// after 20 × 5 ticks = 5 s idle); then 1 % of the shards active (one closed-loop proposer each,
// 16 B puts): writes/s, latency, CPU. Then restart: write --entries log entries (16 B puts over
// 16 shards, no snapshots), stop, and time a fresh process from spawn until every shard has a
// leader and has applied its whole log again.
// The NodeHost runs in a child process (this file with --role host) so its CPU and memory are
// read from /proc without the parent's share. Prints tables; writes bench-results/scale-<date>.json.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeHost } from "../../src/nodehost.ts";
import { longboat } from "../../src/pb/longboat.js";
import { builtinApps } from "../../src/statemachine/registry.ts";
import { arg, loadAvg, procCpuMs, procRssMiB, readLine, stamp, writeResults } from "./api.ts";
import { Histogram } from "./histogram.ts";

interface HostJob {
  dataDir: string;
  raftAddress: string;
  shards: number;
  /** Restart mode: start the replicas without members (they exist on disk). */
  restart: boolean;
  rttMs: number;
  /** Start the replicas one after another (each awaited) instead of together. */
  sequential?: boolean;
}

const RTT_MS = 50;
const optionalArg = (name: string): string | undefined => {
  const v = arg(name, "");
  return v === "" ? undefined : v;
};
const ELECTION_RTT = 5;
/** The process's peak RSS so far (VmHWM), MiB. */
const peakRss = (pid: number): number => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- child: one NodeHost

async function host(job: HostJob): Promise<void> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const nh = new NodeHost({ nodeHostDir: job.dataDir, raftAddress: job.raftAddress, rttMs: job.rttMs });
  await nh.ready;
  const kv = builtinApps().get("kv");
  const members: Record<number, string> = job.restart ? {} : { 1: job.raftAddress };
  // Started together, as a host starting its configured replicas may: the new replicas'
  // bootstrap records share a log write (LogDB.saveBootstrapAsync). --sequential: one by one.
  const start = (s: number) =>
    nh.startReplica(
      members,
      false,
      kv,
      { shardId: s, replicaId: 1, electionRtt: ELECTION_RTT, heartbeatRtt: 1, quiesce: true },
      { app: "kv" },
    );
  if (job.sequential) for (let s = 1; s <= job.shards; s++) await start(s);
  else await Promise.all(Array.from({ length: job.shards }, (_, i) => start(i + 1)));
  const startedMs = performance.now() - t0;
  // CPU of this process (all threads) from before the NodeHost opened until every startReplica
  // resolved: on a shared machine the figure that carries over, where wall time does not.
  const cpu = process.cpuUsage(cpu0);
  const startCpuMs = (cpu.user + cpu.system) / 1000;
  // Every shard led and (on restart) caught up: bounded to 300 s. Each look copies every
  // shard's info (11 % of the host's CPU at 10,000 shards in 50 ms steps): coarser beyond 1,000.
  const pollMs = job.shards > 1000 ? 250 : 50;
  for (let waitedMs = 0; ; waitedMs += pollMs) {
    const shards = nh.getNodeHostInfo({ skipLogInfo: true }).shards;
    if (shards.every((s) => s.isLeader && s.appliedIndex >= s.commitIndex)) break;
    if (waitedMs > 300_000) throw new Error("shards not led and applied after 300 s");
    await sleep(pollMs);
  }
  const out = (o: object) => console.log(JSON.stringify(o));
  const lastIndex = () => nh.getNodeHostInfo({ skipLogInfo: true }).shards.map((s) => s.appliedIndex);
  out({ type: "ready", startedMs, startCpuMs, readyMs: performance.now() - t0, appliedIndex: lastIndex() });

  const payload = new Uint8Array(16).fill(118);
  const cmdOf = (w: number) =>
    longboat.nodehost.v1.KvCommand.encode({ put: { key: `k${w}`, value: payload } }).finish();
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of Bun.stdin.stream()) {
    buf += decoder.decode(chunk);
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const cmd = JSON.parse(buf.slice(0, i)) as {
        op: string;
        shards?: number;
        perShard?: number;
        ms?: number;
        entries?: number;
      };
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
      if (cmd.op === "quiesced") {
        const shards = nh.getNodeHostInfo({ skipLogInfo: true }).shards;
        out({ type: "quiesced", count: shards.filter((s) => s.quiesced).length });
      } else if (cmd.op === "load") {
        // Closed loop: perShard proposers on each of the first `shards` shards, for ms or
        // until `entries` writes in total.
        const hist = new Histogram();
        let errors = 0;
        let done = 0;
        const limit = cmd.entries ?? Number.POSITIVE_INFINITY;
        const start = performance.now();
        const deadline = start + (cmd.ms ?? 600_000);
        const worker = async (shard: number, w: number) => {
          const session = nh.getNoOpSession(shard);
          const c = cmdOf(w);
          while (performance.now() < deadline && done < limit) {
            done++;
            const s = performance.now();
            try {
              await nh.syncPropose(session, c, { timeoutMs: 5000 });
              hist.record((performance.now() - s) * 1000);
            } catch {
              errors++;
            }
          }
        };
        const ws: Promise<void>[] = [];
        for (let s = 1; s <= (cmd.shards ?? 1); s++)
          for (let w = 0; w < (cmd.perShard ?? 1); w++) ws.push(worker(s, w));
        await Promise.all(ws);
        const elapsedMs = performance.now() - start;
        out({
          type: "load",
          elapsedMs,
          writes: hist.total,
          errors,
          latency: hist.summary(),
          appliedIndex: lastIndex(),
        });
      } else if (cmd.op === "exit") {
        await nh.stop();
        process.exit(0);
      }
    }
  }
}

// ---------------------------------------------------------------- parent

interface Child {
  pid: number;
  send(o: object): void;
  line(): Promise<Record<string, unknown>>;
  exit(): Promise<void>;
}

/** --cpu-prof: each host process writes a Bun CPU profile here (see profsum.ts). */
const profDir = process.argv.includes("--cpu-prof")
  ? join("bench-results", `prof-scale-${stamp()}`)
  : undefined;

function spawnHost(job: HostJob): Child {
  const prof = profDir
    ? [
        "--cpu-prof",
        `--cpu-prof-dir=${profDir}`,
        `--cpu-prof-name=host-${job.shards}-${job.restart ? "restart" : "start"}.cpuprofile`,
      ]
    : [];
  const p = Bun.spawn(["bun", ...prof, import.meta.path, "--role", "host", JSON.stringify(job)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = p.stdout.getReader();
  const state = { buf: "" };
  return {
    pid: p.pid,
    send: (o) => p.stdin.write(`${JSON.stringify(o)}\n`),
    line: async () => JSON.parse(await readLine(reader, state, "scale host")),
    exit: async () => {
      p.stdin.write(`${JSON.stringify({ op: "exit" })}\n`);
      await p.exited;
    },
  };
}

const progress = (s: string) => process.stderr.write(`  ${s}\n`);

/** CPU ms of each thread of pid (from /proc/<pid>/task), by thread id, with its name. */
function threadCpuMs(pid: number): Map<number, { name: string; ms: number }> {
  const out = new Map<number, { name: string; ms: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), { name, ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/**
 * CPU of pid over ms, in % of one core: the whole process, its main (engine) thread, and per
 * thread name (threads of one name summed; only names above 0). On a shared machine the main
 * thread's share is the figure the engine's own work decides.
 */
async function cpuOverByThread(
  pid: number,
  ms: number,
): Promise<{ total: number; main: number; threads: Record<string, number> }> {
  const c0 = procCpuMs(pid);
  const t0map = threadCpuMs(pid);
  const t0 = performance.now();
  await sleep(ms);
  const t1map = threadCpuMs(pid);
  const elapsed = performance.now() - t0;
  const pct = (d: number) => Math.round((d / elapsed) * 1000) / 10;
  const threads: Record<string, number> = {};
  for (const [tid, t] of t1map) {
    const d = t.ms - (t0map.get(tid)?.ms ?? 0);
    if (d > 0) threads[t.name] = (threads[t.name] ?? 0) + d;
  }
  for (const k of Object.keys(threads)) threads[k] = pct(threads[k] as number);
  const main = (t1map.get(pid)?.ms ?? 0) - (t0map.get(pid)?.ms ?? 0);
  return { total: pct(procCpuMs(pid) - c0), main: pct(main), threads };
}

async function shardsPoint(shards: number, seconds: number) {
  const dir = mkdtempSync(join(tmpdir(), "longboat-bench-scale-"));
  const port = 20000 + Math.floor(Math.random() * 12000);
  const t0 = performance.now();
  const h = spawnHost({
    dataDir: dir,
    raftAddress: `127.0.0.1:${port}`,
    shards,
    restart: false,
    rttMs: RTT_MS,
    sequential: process.argv.includes("--sequential"),
  });
  try {
    progress(`${shards} shards: starting…`);
    const ready = (await h.line()) as { startedMs: number; startCpuMs: number; readyMs: number };
    const spawnToReadyMs = performance.now() - t0;
    const rssStartedMiB = procRssMiB(h.pid);
    progress(`${shards} shards: started in ${Math.round(spawnToReadyMs)} ms; waiting for quiesce…`);
    let quiesced = 0;
    const qt0 = performance.now();
    for (let i = 0; i < 120; i++) {
      h.send({ op: "quiesced" });
      quiesced = (await h.line()).count as number;
      if (quiesced === shards) break;
      await sleep(500);
    }
    const quiesceMs = performance.now() - qt0;
    progress(`${shards} shards: ${quiesced} quiesced; idle for ${seconds} s…`);
    const idle = await cpuOverByThread(h.pid, seconds * 1000);
    const idleCpuPercent = idle.total;
    const rssIdleMiB = procRssMiB(h.pid);
    const active = Math.max(1, Math.round(shards / 100));
    progress(`${shards} shards: ${active} active for ${seconds} s…`);
    const c0 = procCpuMs(h.pid);
    const lt0 = performance.now();
    h.send({ op: "load", shards: active, perShard: 1, ms: seconds * 1000 });
    const load = (await h.line()) as {
      elapsedMs: number;
      writes: number;
      errors: number;
      latency: ReturnType<Histogram["summary"]>;
    };
    const activeCpuPercent = Math.round(((procCpuMs(h.pid) - c0) / (performance.now() - lt0)) * 100);
    const rssActiveMiB = procRssMiB(h.pid);
    return {
      shards,
      startMs: Math.round(ready.startedMs),
      startCpuMs: Math.round(ready.startCpuMs),
      spawnToReadyMs: Math.round(spawnToReadyMs),
      rssStartedMiB: Math.round(rssStartedMiB),
      quiescedShards: quiesced,
      quiesceWaitMs: Math.round(quiesceMs),
      idleCpuPercent,
      idleMainThreadPercent: idle.main,
      idleThreadsPercent: idle.threads,
      rssIdleMiB: Math.round(rssIdleMiB),
      activeShards: active,
      activeWritesPerSec: Math.round(load.writes / (load.elapsedMs / 1000)),
      activeP50Ms: load.latency.p50Ms,
      activeP99Ms: load.latency.p99Ms,
      activeErrors: load.errors,
      activeCpuPercent,
      rssActiveMiB: Math.round(rssActiveMiB),
      loadAvg: loadAvg(),
    };
  } finally {
    await h.exit();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What writing the log gave (kept beside a --keep-log directory for --restart-from). */
interface WrittenLog {
  writes: number;
  errors: number;
  appliedIndex: number[];
  writeMs: number;
  raftAddress: string;
}

async function restartPoint(entries: number, keepLog: string | undefined, restartFrom: string | undefined) {
  const shards = 16;
  const dir = mkdtempSync(join(tmpdir(), "longboat-bench-restart-"));
  const port = 20000 + Math.floor(Math.random() * 12000);
  const job = { dataDir: dir, raftAddress: `127.0.0.1:${port}`, shards, restart: false, rttMs: RTT_MS };
  try {
    let load: WrittenLog;
    if (restartFrom !== undefined) {
      load = JSON.parse(readFileSync(join(restartFrom, "bench-log.json"), "utf8")) as WrittenLog;
      cpSync(join(restartFrom, "data"), dir, { recursive: true });
      job.raftAddress = load.raftAddress;
      progress(`restart: ${load.writes} entries from ${restartFrom}`);
    } else {
      const w = spawnHost(job);
      await w.line();
      progress(`restart: writing ${entries} entries over ${shards} shards…`);
      const wt0 = performance.now();
      w.send({ op: "load", shards, perShard: 64, entries });
      const written = (await w.line()) as { writes: number; errors: number; appliedIndex: number[] };
      load = { ...written, writeMs: performance.now() - wt0, raftAddress: job.raftAddress };
      await w.exit();
      if (keepLog !== undefined && !existsSync(keepLog)) {
        cpSync(dir, join(keepLog, "data"), { recursive: true });
        writeFileSync(join(keepLog, "bench-log.json"), JSON.stringify(load));
      }
    }
    const writeMs = load.writeMs;
    const diskMiB = Number(Bun.spawnSync(["du", "-sm", dir]).stdout.toString().split("\t")[0]);
    progress(
      `restart: ${load.writes} written in ${Math.round(writeMs)} ms (${diskMiB} MiB on disk); restarting…`,
    );
    const t0 = performance.now();
    const r = spawnHost({ ...job, restart: true });
    const ready = (await r.line()) as { startedMs: number; readyMs: number; appliedIndex: number[] };
    const spawnToReadyMs = performance.now() - t0;
    const rssMiB = procRssMiB(r.pid);
    const peakRssMiB = peakRss(r.pid);
    // CPU from spawn to led and applied: on a loaded machine it says more than the wall time.
    const cpuMs = procCpuMs(r.pid);
    await r.exit();
    const complete = ready.appliedIndex.every((a, i) => a >= load.appliedIndex[i]!);
    return {
      entries: load.writes,
      writeErrors: load.errors,
      writesPerSec: Math.round(load.writes / (writeMs / 1000)),
      diskMiB,
      restartStartReplicasMs: Math.round(ready.startedMs),
      restartReadyMs: Math.round(ready.readyMs),
      restartSpawnToReadyMs: Math.round(spawnToReadyMs),
      restartCpuMs: Math.round(cpuMs),
      rssAfterRestartMiB: Math.round(rssMiB),
      peakRssRestartMiB: Math.round(peakRssMiB),
      allEntriesReapplied: complete,
      loadAvg: loadAvg(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--role" && process.argv[3] === "host") {
  await host(JSON.parse(process.argv[4]!) as HostJob);
} else if (import.meta.main) {
  const counts = arg("shards", "1000,10000").split(",").map(Number);
  const seconds = Number(arg("seconds", "5"));
  const entries = Number(arg("entries", "1000000"));
  if (!(seconds > 0 && seconds <= 600)) throw new Error(`--seconds must be in (0, 600], got ${seconds}`);
  if (!(entries >= 1 && entries <= 10_000_000))
    throw new Error(`--entries must be in 1..10000000, got ${entries}`);
  process.stderr.write(`scale: load ${loadAvg()}\n`);
  const points = [];
  for (const n of counts) if (n > 0) points.push(await shardsPoint(n, seconds));
  const restart = process.argv.includes("--skip-restart")
    ? null
    : await restartPoint(entries, optionalArg("keep-log"), optionalArg("restart-from"));
  console.log(`\nscale benchmark: one NodeHost, single-replica kv shards, quiesce on, rttMs ${RTT_MS}`);
  console.table(
    points.map((p) => ({
      shards: p.shards,
      "startReplica ms": p.startMs,
      "start cpu ms": p.startCpuMs,
      "spawn→led ms": p.spawnToReadyMs,
      "RSS MiB started": p.rssStartedMiB,
      quiesced: p.quiescedShards,
      "idle cpu %": p.idleCpuPercent,
      "idle main %": p.idleMainThreadPercent,
      "RSS MiB idle": p.rssIdleMiB,
      "active shards": p.activeShards,
      "writes/s": p.activeWritesPerSec,
      "p99 ms": p.activeP99Ms.toFixed(2),
      "active cpu %": p.activeCpuPercent,
      errors: p.activeErrors,
    })),
  );
  for (const p of points) {
    const top = Object.entries(p.idleThreadsPercent)
      .sort((a, b) => b[1] - a[1])
      .map(([name, pct]) => `${name} ${pct}`)
      .join(", ");
    console.log(`${p.shards} shards, idle CPU % by thread: ${top}`);
  }
  if (restart) {
    console.log("restart with a full log (no snapshot: every entry is read back and re-applied)");
    console.table([restart]);
  }
  console.log(
    `written ${writeResults("scale", { rttMs: RTT_MS, electionRtt: ELECTION_RTT, points, restart })}`,
  );
}
