// Longboat against etcd on the same machine, in one run. Installs Debian's etcd-server when
// `etcd` is missing (needs root), starts a 3-member etcd on loopback (default fsync) and the
// Longboat api cluster (api.ts: 3 NodeHosts, 48 kv shards, fsync on), then alternates points —
// etcd, Longboat, etcd, Longboat… — so machine noise hits both. Both are driven by the same load
// generator (loadgen.ts: Bun, node:http2, same connection counts, 16 B keys and values, closed
// loop); etcd through its gRPC KV API (Put; Range with serializable=false, i.e. linearizable),
// Longboat through its public API (Propose; Read = ReadIndex). Each client's CPU is printed
// next to its numbers.
//
//   npm run bench -- etcd [--concurrency 1,16,64,256] [--reads 64] [--seconds 5] [--warmup 1]
//        [--connections 4] [--loadgens 2] [--shards 48] [--etcd-endpoints all|leader] [--rate 0]
//
// --connections is per endpoint (3 endpoints for both systems), shared out among the --loadgens
// load generator processes. --etcd-tool <binary> also runs etcd's own Go benchmark tool
// (built by etcd-tool.ts) after each etcd point, with the same clients and connections, so the
// load generator's own limit shows ("ours/tool" should be ≥ 0.9). etcd requests go round-robin to
// all members (like etcd's own benchmark tool) unless --etcd-endpoints leader.
// Prints a table and writes bench-results/etcd-<date>.json.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  arg,
  commonOptions,
  loadAvg,
  loadJob,
  positiveList,
  type Point,
  runPoint,
  startLongboat,
  tableRow,
  writeResults,
} from "./api.ts";

/** Makes sure an etcd binary is on PATH, installing Debian's etcd-server when it is not. */
function ensureEtcd(): string {
  const which = () => spawnSync("sh", ["-c", "command -v etcd"], { encoding: "utf8" }).stdout.trim();
  let path = which();
  if (path) return path;
  if (process.getuid?.() !== 0) {
    throw new Error(
      "etcd is not installed and installing it needs root: run `apt-get install -y etcd-server`",
    );
  }
  process.stderr.write("etcd: installing Debian's etcd-server…\n");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let r = spawnSync("apt-get", ["install", "-y", "etcd-server"], { stdio: "inherit", env });
  if (r.status !== 0) {
    spawnSync("apt-get", ["update"], { stdio: "inherit", env });
    r = spawnSync("apt-get", ["install", "-y", "etcd-server"], { stdio: "inherit", env });
  }
  path = which();
  if (r.status !== 0 || !path) throw new Error(`apt-get install -y etcd-server failed (exit ${r.status})`);
  return path;
}

function etcdVersion(bin: string): string {
  return /etcd Version: (\S+)/.exec(spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout)?.[1] ?? "?";
}

interface EtcdCluster {
  endpoints: string[];
  pids: number[];
  /** Index of the leader among endpoints. */
  leader: number;
  stop(): Promise<void>;
}

async function startEtcd(bin: string): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), "longboat-bench-etcd-"));
  // Below the ephemeral range (32768+), so an outgoing connection cannot hold our port.
  const base = 12000 + Math.floor(Math.random() * 7000);
  const names = ["m1", "m2", "m3"];
  const clientUrls = names.map((_, i) => `http://127.0.0.1:${base + i}`);
  const peerUrls = names.map((_, i) => `http://127.0.0.1:${base + 10 + i}`);
  const initialCluster = names.map((n, i) => `${n}=${peerUrls[i]}`).join(",");
  const procs = names.map((name, i) =>
    Bun.spawn(
      [
        bin,
        `--name=${name}`,
        `--data-dir=${join(dir, name)}`,
        `--listen-client-urls=${clientUrls[i]}`,
        `--advertise-client-urls=${clientUrls[i]}`,
        `--listen-peer-urls=${peerUrls[i]}`,
        `--initial-advertise-peer-urls=${peerUrls[i]}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-state=new",
        "--initial-cluster-token=longboat-bench",
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=error",
      ],
      { stdout: "ignore", stderr: "inherit" },
    ),
  );
  const stop = async () => {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Healthy (a leader and a committed round) within 20 s: 200 tries of 100 ms.
    for (let attempt = 0; ; attempt++) {
      const dead = procs.findIndex((p) => p.exitCode !== null);
      if (dead >= 0)
        throw new Error(`etcd member ${names[dead]} exited with ${procs[dead]!.exitCode} during startup`);
      const healthy = await Promise.all(
        clientUrls.map((u) =>
          fetch(`${u}/health`, { signal: AbortSignal.timeout(1000) })
            .then((r) => r.json() as Promise<{ health?: string }>)
            .then((j) => j.health === "true")
            .catch(() => false),
        ),
      );
      if (healthy.every(Boolean)) break;
      if (attempt >= 200) throw new Error("etcd cluster not healthy after 20 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    const leader = await etcdLeader(clientUrls);
    return { endpoints: clientUrls, pids: procs.map((p) => p.pid), leader, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The member that is leader, from the v3 JSON gateway's maintenance status. */
async function etcdLeader(clientUrls: string[]): Promise<number> {
  const ids: string[] = [];
  let leader = "";
  for (const u of clientUrls) {
    const res = await fetch(`${u}/v3/maintenance/status`, {
      method: "POST",
      body: "{}",
      signal: AbortSignal.timeout(5000),
    });
    const j = (await res.json()) as { header?: { member_id?: string }; leader?: string };
    ids.push(j.header?.member_id ?? "");
    leader = j.leader ?? leader;
  }
  const i = ids.indexOf(leader);
  if (i < 0) throw new Error(`etcd leader ${leader} is none of the members ${ids.join(", ")}`);
  return i;
}

/** etcd's own Go benchmark tool (etcd-tool.ts builds it) against the same members and load. */
function runEtcdTool(
  tool: string,
  op: "put" | "get",
  concurrency: number,
  endpoints: string[],
  totalRequests: number,
): Point {
  const hostPorts = endpoints.map((e) => e.replace(/^http:\/\//, ""));
  const conns = Math.min(concurrency, o.connectionsPerEndpoint * hostPorts.length);
  const common = [`--endpoints=${hostPorts.join(",")}`, `--conns=${conns}`, `--clients=${concurrency}`];
  const cmd =
    op === "put"
      ? [
          ...common,
          "put",
          "--key-size=16",
          "--val-size=16",
          `--key-space-size=${o.keySpace}`,
          `--total=${totalRequests}`,
        ]
      : [...common, "range", "k000000000000001", "--consistency=l", `--total=${totalRequests}`];
  const r = spawnSync(tool, cmd, { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
  const text = `${r.stdout}\n${r.stderr}`;
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
  const secs = (pct: string) => num(new RegExp(`${pct.replace(".", "\\.")}% in (\\S+) secs`)) * 1000;
  const opsPerSec = num(/Requests\/sec:\s+(\S+)/);
  return {
    system: "etcd-tool",
    op,
    concurrency,
    opsPerSec,
    p50Ms: secs("50"),
    p99Ms: secs("99"),
    p999Ms: secs("99.9"),
    errors: r.status === 0 && Number.isFinite(opsPerSec) ? 0 : 1,
    firstError: r.status === 0 ? "" : text.slice(-300),
    clientCpuPercent: 0,
    loadgens: 1,
    serverCpuPercent: [],
    loadAvg: loadAvg(),
  };
}

const concurrencies = positiveList("concurrency", "1,16,64,256"); // 0: no write points
const readConcurrencies = positiveList("reads", "64"); // 0: no read points
const shards = Number(arg("shards", "48"));
const etcdEndpointsMode = arg("etcd-endpoints", "all");
const etcdTool = arg("etcd-tool", "");
const o = commonOptions();

const bin = ensureEtcd();
const version = etcdVersion(bin);
process.stderr.write(
  `etcd ${version}: starting 3 members; Longboat: 3 NodeHosts, ${shards} shards (load ${loadAvg()})\n`,
);
// A port taken by someone else kills a member at startup: three tries on fresh ports.
let etcd: EtcdCluster | undefined;
for (let attempt = 1; !etcd; attempt++) {
  try {
    etcd = await startEtcd(bin);
  } catch (error) {
    if (attempt >= 3) throw error;
    process.stderr.write(`  etcd start failed (${(error as Error).message}); retrying on other ports\n`);
  }
}
const lb = await startLongboat({ shards, protocol: "h2" });
const etcdEndpoints = etcdEndpointsMode === "leader" ? [etcd.endpoints[etcd.leader]!] : etcd.endpoints;
const pairs: { op: string; concurrency: number; etcd: Point; longboat: Point; etcdTool?: Point }[] = [];
try {
  const plan: ["put" | "get", number][] = [
    ...concurrencies.map((c) => ["put", c] as ["put", number]),
    ...readConcurrencies.map((c) => ["get", c] as ["get", number]),
  ];
  for (const [op, c] of plan) {
    const e = await runPoint(loadJob(o, "etcd", op, c, etcdEndpoints), { pids: etcd.pids }, o.loadgens);
    const l = await runPoint(loadJob(o, "longboat", op, c, lb.endpoints, lb.leaderOf), lb, o.loadgens);
    // The tool runs a request count, not a duration: as many as our generator did in --seconds.
    const t = etcdTool
      ? runEtcdTool(etcdTool, op, c, etcdEndpoints, Math.max(1000, Math.round(e.opsPerSec * o.seconds)))
      : undefined;
    pairs.push({ op, concurrency: c, etcd: e, longboat: l, ...(t ? { etcdTool: t } : {}) });
  }
} finally {
  await lb.stop();
  await etcd.stop();
}

console.log(
  `\netcd ${version} (3 members, default fsync, ${etcdEndpointsMode} endpoints) vs Longboat (3 NodeHosts, ${shards} shards, fsync on); 16 B keys and values, closed loop`,
);
console.table(
  pairs.flatMap((p) => [
    tableRow(p.etcd),
    ...(p.etcdTool ? [tableRow(p.etcdTool)] : []),
    tableRow(p.longboat),
  ]),
);
console.table(
  pairs.map((p) => ({
    op: p.op === "put" ? "write" : "linearizable read",
    conc: p.concurrency,
    "etcd ops/s": Math.round(p.etcd.opsPerSec),
    "longboat ops/s": Math.round(p.longboat.opsPerSec),
    ratio: (p.longboat.opsPerSec / Math.max(1, p.etcd.opsPerSec)).toFixed(2),
    "etcd p99 ms": p.etcd.p99Ms.toFixed(1),
    "longboat p99 ms": p.longboat.p99Ms.toFixed(1),
    "client cpu % etcd/lb": `${p.etcd.clientCpuPercent}/${p.longboat.clientCpuPercent}`,
    ...(p.etcdTool
      ? {
          "etcd-tool ops/s": Math.round(p.etcdTool.opsPerSec),
          "ours/tool": (p.etcd.opsPerSec / Math.max(1, p.etcdTool.opsPerSec)).toFixed(2),
        }
      : {}),
  })),
);
for (const p of pairs)
  for (const x of [p.etcd, p.longboat])
    if (x.firstError) console.log(`  ${x.system} ${x.op} c=${x.concurrency}: ${x.firstError}`);
console.log(
  `written ${writeResults("etcd", { etcdVersion: version, shards, etcdEndpoints: etcdEndpointsMode, options: o, pairs })}`,
);
