// Engine benchmark: three NodeHost processes on loopback (SQLite log with fsync, HTTP/2
// transport), 48 kv shards, in-process proposers on each host writing to the shards it leads
// (like Dragonboat's checkdisk). Prints a table and writes bench-results/engine-<date>.json.
//
//   npm run bench -- engine [--shards 48] [--seconds 10] [--payload 16,128,1024] [--concurrency 16] [--reads]
//                           [--cpu-prof]   (each host writes bench-results/prof-<date>/host-N.cpuprofile;
//                                           summarise with `npx bun scripts/bench/profsum.ts <file> --top 22`)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arg, readLine } from "./api.ts";
import { Histogram } from "./histogram.ts";

const shards = Number(arg("shards", "48"));
const seconds = Number(arg("seconds", "10"));
const payloads = arg("payload", "16,128,1024").split(",").map(Number);
const concurrency = Number(arg("concurrency", "16"));
const mixes = process.argv.includes("--reads") ? [0, 0.9] : [0];
const cpuProfDir = process.argv.includes("--cpu-prof")
  ? join("bench-results", `prof-${new Date().toISOString().replace(/[:.]/g, "-")}`)
  : "";
const basePort = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral range (32768+)

interface HostResult {
  host: number;
  ledShards: number;
  elapsedMs: number;
  errors: number;
  cpuMs: number;
  writes: ReturnType<Histogram["toJSON"]>;
  reads: ReturnType<Histogram["toJSON"]>;
}

async function runOnce(payloadBytes: number, readRatio: number, round: number) {
  const dir = mkdtempSync(join(tmpdir(), "longboat-bench-engine-"));
  const raftAddresses = [1, 2, 3].map((i) => `127.0.0.1:${basePort + round * 10 + i}`);
  const procs = raftAddresses.map((_, index) => {
    const job = {
      index,
      raftAddresses,
      dataDir: join(dir, `host-${index + 1}`),
      shards,
      payloadBytes,
      durationMs: seconds * 1000,
      concurrencyPerShard: concurrency,
      readRatio,
      rttMs: 50,
    };
    const prof =
      cpuProfDir === ""
        ? []
        : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=host-${index + 1}.cpuprofile`];
    return Bun.spawn(["bun", ...prof, join(import.meta.dir, "engine-host.ts"), JSON.stringify(job)], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
  });
  const readers = procs.map((p) => ({ reader: p.stdout.getReader(), state: { buf: "" } }));
  for (const r of readers) await readLine(r.reader, r.state, "engine host");
  process.stderr.write(`  payload ${payloadBytes} B, reads ${readRatio * 100}%: running ${seconds}s…\n`);
  for (const p of procs) p.stdin.write("go\n");
  const results: HostResult[] = [];
  for (const r of readers)
    results.push(JSON.parse(await readLine(r.reader, r.state, "engine host")) as HostResult);
  for (const p of procs) p.stdin.write("exit\n");
  await Promise.all(procs.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
  const writes = new Histogram();
  const reads = new Histogram();
  for (const r of results) {
    writes.merge(Histogram.fromJSON(r.writes));
    reads.merge(Histogram.fromJSON(r.reads));
  }
  const elapsedS = Math.max(...results.map((r) => r.elapsedMs)) / 1000;
  return {
    payloadBytes,
    readRatio,
    shards,
    concurrencyPerShard: concurrency,
    writesPerSec: writes.total / elapsedS,
    readsPerSec: reads.total / elapsedS,
    write: writes.summary(),
    read: reads.summary(),
    errors: results.reduce((a, r) => a + r.errors, 0),
    cpuPercentPerHost: results.map((r) => Math.round((r.cpuMs / r.elapsedMs) * 100)),
    ledShardsPerHost: results.map((r) => r.ledShards),
  };
}

const rows = [];
let round = 0;
for (const payload of payloads) for (const mix of mixes) rows.push(await runOnce(payload, mix, round++));
console.log("\nengine benchmark: 3 NodeHost processes, SQLite synchronous=FULL, HTTP/2 on loopback");
console.table(
  rows.map((r) => ({
    payload: `${r.payloadBytes} B`,
    reads: `${r.readRatio * 100}%`,
    "writes/s": Math.round(r.writesPerSec),
    "reads/s": Math.round(r.readsPerSec),
    "p50 ms": r.write.p50Ms.toFixed(2),
    "p99 ms": r.write.p99Ms.toFixed(2),
    "p99.9 ms": r.write.p999Ms.toFixed(2),
    "cpu % per host": r.cpuPercentPerHost.join("/"),
    errors: r.errors,
  })),
);
mkdirSync("bench-results", { recursive: true });
const file = join("bench-results", `engine-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(
  file,
  JSON.stringify({ suite: "engine", machine: `${navigator.hardwareConcurrency} cores`, rows }, null, 2),
);
console.log(`written ${file}`);
