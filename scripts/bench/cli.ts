/**
 * CLI start-up: whole-process runs of the compiled binary, each case run `--runs` times —
 * `longboat version`, `longboat --help`, and a `cmd get` / `cmd put` round trip against a
 * one-replica NodeHost this suite starts — with the wall time and the CPU time (user + system,
 * from the kernel) of every run. `--baseline <binary>` runs another build side by side,
 * alternating run by run (baseline, binary, baseline, …) so machine noise hits both; a
 * compiled one-line program gives the floor (what the Bun runtime alone costs to start).
 *
 *   npm run bench -- cli [--runs 20] [--bin dist/longboat] [--baseline /tmp/old-longboat]
 *
 * Then `cmd get` runs `--runs` times more with LONGBOAT_TRACE_STARTUP=1 (src/cli/trace.ts): the
 * median CPU used by each phase of its start-up (the runtime and main.ts, the subcommand table,
 * the flags, the resolved options, the command's modules, the request), to see where it goes.
 *
 * Prints tables and writes bench-results/cli-<date>.json. On a loaded machine read the CPU
 * columns (they do not count the time spent waiting for a core) next to the load average.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadAvg, writeResults } from "./api.ts";

const ROOT = join(import.meta.dir, "../..");
const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const runs = Number(option("--runs") ?? 20);
const bin = resolve(option("--bin") ?? join(ROOT, "dist/longboat"));
const baseline = option("--baseline");

interface Sample {
  wallMs: number;
  cpuMs: number;
}

/** Runs argv to its end; the exit code must be 0. */
async function runOnce(argv: string[]): Promise<Sample> {
  const t0 = performance.now();
  const proc = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe" });
  const code = await proc.exited;
  const wallMs = performance.now() - t0;
  if (code !== 0)
    throw new Error(`${argv.join(" ")} exited ${code}: ${await new Response(proc.stderr).text()}`);
  const usage = proc.resourceUsage();
  const cpuMs = usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1000 : Number.NaN;
  return { wallMs, cpuMs };
}

/** Runs argv with LONGBOAT_TRACE_STARTUP=1; the CPU ms it had used at each phase (src/cli/trace.ts). */
async function runTraced(argv: string[]): Promise<Record<string, number>> {
  const proc = Bun.spawn(argv, {
    stdout: "ignore",
    stderr: "pipe",
    env: { ...process.env, LONGBOAT_TRACE_STARTUP: "1" },
  });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${stderr}`);
  const line = stderr.split("\n").find((l) => l.startsWith('{"startupCpuMs"'));
  if (line === undefined) throw new Error(`${argv.join(" ")} printed no start-up trace: ${stderr}`);
  return (JSON.parse(line) as { startupCpuMs: Record<string, number> }).startupCpuMs;
}

/** Each phase's own CPU (its mark minus the one before), median over the runs. */
function phaseMedians(traces: Record<string, number>[]) {
  const phases = Object.keys(traces[0]!);
  return phases.map((phase, i) => {
    const own = traces.map((t) => t[phase]! - (i === 0 ? 0 : t[phases[i - 1]!]!)).sort((a, b) => a - b);
    return { phase, cpuMsP50: Math.round(quantile(own, 0.5) * 10) / 10 };
  });
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function summary(samples: Sample[]) {
  const wall = samples.map((s) => s.wallMs).sort((a, b) => a - b);
  const cpu = samples.map((s) => s.cpuMs).sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    runs: samples.length,
    wallMsMin: round(wall[0]!),
    wallMsP50: round(quantile(wall, 0.5)),
    wallMsP90: round(quantile(wall, 0.9)),
    cpuMsMin: round(cpu[0]!),
    cpuMsP50: round(quantile(cpu, 0.5)),
  };
}

/** A compiled program that prints one line: the floor of any compiled Bun CLI's start-up. */
async function buildFloor(dir: string): Promise<string> {
  const source = join(dir, "floor.ts");
  writeFileSync(source, 'console.log("floor");\n');
  const outfile = join(dir, "floor");
  const built = await Bun.build({
    entrypoints: [source],
    compile: { outfile },
    bytecode: true,
    format: "esm",
  });
  if (!built.success) throw new Error(`building the floor program failed: ${built.logs.join("\n")}`);
  return outfile;
}

/** A NodeHost with one replica of kv shard 1; resolves with its API address once it serves reads. */
async function startNodeHost(dir: string) {
  const port = () => 20_000 + Math.floor(Math.random() * 12_000); // below the ephemeral range
  const raft = `127.0.0.1:${port()}`;
  const api = `127.0.0.1:${port()}`;
  const proc = Bun.spawn(
    [
      bin,
      "nodehost",
      "--data-dir",
      join(dir, "data"),
      "--raft-address",
      raft,
      "--api-address",
      api,
      "--rtt-ms",
      "20",
      "--log-level",
      "warn",
      "--shard",
      `id=1,app=kv,replica=1,members=1@${raft}`,
    ],
    { stdout: "ignore", stderr: "inherit" },
  );
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ready = await fetch(`http://${api}/readyz`).catch(() => null);
    if (ready?.ok) return { api, proc };
    if (proc.exitCode !== null) throw new Error(`the NodeHost exited with ${proc.exitCode}`);
    await Bun.sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error("the NodeHost did not become ready within 60 s");
}

const dir = mkdtempSync(join(tmpdir(), "longboat-bench-cli-"));
const loadBefore = loadAvg();
const host = await startNodeHost(dir);
try {
  const floor = await buildFloor(dir);
  const put = (b: string) => [b, "cmd", "put", "--nodehost", host.api, "--shard", "1", "bench", "value"];
  await runOnce(put(bin));
  const cases: { name: string; argv: (b: string) => string[] }[] = [
    { name: "version", argv: (b) => [b, "version"] },
    { name: "--help", argv: (b) => [b, "--help"] },
    { name: "cmd get", argv: (b) => [b, "cmd", "get", "--nodehost", host.api, "--shard", "1", "bench"] },
    { name: "cmd put", argv: put },
  ];
  const binaries = baseline ? [{ label: "baseline", path: resolve(baseline) }] : [];
  binaries.push({ label: "binary", path: bin });
  const samples = new Map<string, Sample[]>();
  const record = (key: string, s: Sample) => samples.set(key, [...(samples.get(key) ?? []), s]);
  for (let run = 0; run < runs; run++) {
    record("floor", await runOnce([floor]));
    for (const c of cases)
      for (const b of binaries) record(`${c.name}|${b.label}`, await runOnce(c.argv(b.path)));
    process.stderr.write(`\rrun ${run + 1}/${runs} (load ${loadAvg()})`);
  }
  process.stderr.write("\n");
  const loadAfter = loadAvg();
  const rows = [
    { case: "floor (one-line compiled Bun program)", binary: "", ...summary(samples.get("floor")!) },
    ...cases.flatMap((c) =>
      binaries.map((b) => ({
        case: c.name,
        binary: b.label,
        ...summary(samples.get(`${c.name}|${b.label}`)!),
      })),
    ),
  ];
  console.table(rows);
  const getArgv = cases.find((c) => c.name === "cmd get")!.argv(bin);
  const traces: Record<string, number>[] = [];
  for (let run = 0; run < runs; run++) traces.push(await runTraced(getArgv));
  const phases = phaseMedians(traces);
  console.log("cmd get: CPU of each start-up phase (median; main includes the runtime's own start)");
  console.table(phases);
  console.log(`load average before ${loadBefore}, after ${loadAfter}`);
  const file = writeResults("cli", {
    runs,
    binary: bin,
    baseline: baseline ? resolve(baseline) : null,
    loadBefore,
    loadAfter,
    results: rows,
    cmdGetPhases: phases,
  });
  console.log(`wrote ${file}`);
} finally {
  host.proc.kill("SIGTERM");
  await host.proc.exited;
  rmSync(dir, { recursive: true, force: true });
}
