// One NodeHost process of the api/etcd benchmarks (scripts/bench/api.ts starts three): a NodeHost
// with `shards` kv replicas and the public NodeHost API (src/api/app.ts) served over cleartext
// HTTP/2 (h2c) and HTTP/1.1 on one port by serveApi; `protocol` chooses the load generator's client.
// Reads its job as JSON from argv[2]; prints {"type":"ready",...} on stdout once the shards it
// should lead are led here, then waits for "exit" on stdin.
import { readFileSync } from "node:fs";
import { createNodeHostApi } from "../../src/api/app.ts";
import { serveApi } from "../../src/api/server.ts";
import { NodeHost } from "../../src/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";

export interface ApiHostJob {
  index: number;
  raftAddresses: string[];
  apiPorts: number[];
  dataDir: string;
  shards: number;
  rttMs: number;
  protocol: "h2" | "h1";
}

/**
 * The NodeHost of one benchmark host process: replica index+1 of every kv shard, members
 * being every raft address of the cluster (shared by api-host.ts and engine-host.ts).
 */
export async function startKvNodeHost(job: {
  index: number;
  raftAddresses: string[];
  dataDir: string;
  shards: number;
  rttMs: number;
}): Promise<{ nh: NodeHost; me: number }> {
  const me = job.index + 1;
  const members: Record<number, string> = {};
  job.raftAddresses.forEach((a, i) => {
    members[i + 1] = a;
  });
  const nh = new NodeHost({
    nodeHostDir: job.dataDir,
    raftAddress: job.raftAddresses[job.index]!,
    rttMs: job.rttMs,
  });
  await nh.ready;
  const kv = builtinApps().get("kv");
  // Together: their bootstrap records share one log write (LogDB.saveBootstrapAsync).
  await Promise.all(
    Array.from({ length: job.shards }, (_, i) =>
      nh.startReplica(
        members,
        false,
        kv,
        { shardId: i + 1, replicaId: me, electionRtt: 20, heartbeatRtt: 2 },
        { app: "kv" },
      ),
    ),
  );
  return { nh, me };
}

/**
 * Moves leadership so host (s − 1) mod hostCount + 1 leads shard s; bounded to 200 rounds of
 * 100 ms. Every host process runs it for the shards it leads. True when the spread settled.
 */
export async function spreadLeadership(nh: NodeHost, me: number, hostCount: number, shards: number) {
  const preferred = (s: number) => ((s - 1) % hostCount) + 1;
  for (let round = 0; round < 200; round++) {
    let settled = true;
    for (let s = 1; s <= shards; s++) {
      const l = nh.getLeaderId(s);
      if (!l.valid) settled = false;
      else if (l.leaderId === me && preferred(s) !== me) {
        settled = false;
        try {
          nh.requestLeaderTransfer(s, preferred(s));
        } catch {}
      } else if (preferred(s) === me && l.leaderId !== me) settled = false;
    }
    if (settled) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

if (import.meta.main) {
  const job = JSON.parse(process.argv[2]!) as ApiHostJob;
  const { nh, me } = await startKvNodeHost(job);
  const apiAddress = (replicaId: number) => `http://127.0.0.1:${job.apiPorts[replicaId - 1]}`;
  const app = createNodeHostApi({
    nodehost: nh,
    apiAddress: apiAddress(me),
    resolveApiAddress: (_shardId, replicaId) => apiAddress(replicaId),
  });
  const port = job.apiPorts[job.index]!;
  // serveApi answers HTTP/1.1 and h2c on the same port; job.protocol only chooses the load
  // generator's client.
  const server = await serveApi(app, { hostname: "127.0.0.1", port });
  const stopServer = () => server.stop();

  const settled = await spreadLeadership(nh, me, job.raftAddresses.length, job.shards);
  console.log(JSON.stringify({ type: "ready", host: me, port, settled }));

  // Commands on stdin, one per line: "stats" answers the engine counters as a JSON line; "exit".
  const decoder = new TextDecoder();
  let buf = "";
  let exit = false;
  for await (const chunk of Bun.stdin.stream()) {
    buf += decoder.decode(chunk);
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const cmd = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (cmd === "stats") {
        // The log writer's counters beside the engine's, prefixed (writerAppendMs…).
        const w = nh.logWriterStats() ?? {};
        const writer = Object.fromEntries(
          Object.entries(w).map(([k, v]) => [`writer${k[0]!.toUpperCase()}${k.slice(1)}`, v]),
        );
        console.log(
          JSON.stringify({ type: "stats", stats: { ...nh.stats, ...writer, ...mainThreadTimes() } }),
        );
      }
      if (cmd === "exit") exit = true;
      i = buf.indexOf("\n");
    }
    if (exit) break;
  }
  await stopServer();
  await nh.stop();
  process.exit(0);
}

/**
 * The engine thread's CPU time and its wait for a CPU while runnable, in milliseconds, from
 * /proc/thread-self/schedstat (Linux; zeros elsewhere): this thread answers "stats".
 */
function mainThreadTimes(): { mainCpuMs: number; mainRunqMs: number } {
  try {
    const [run, wait] = readFileSync("/proc/thread-self/schedstat", "utf8").split(" ");
    return { mainCpuMs: Number(run) / 1e6, mainRunqMs: Number(wait) / 1e6 };
  } catch {
    return { mainCpuMs: 0, mainRunqMs: 0 };
  }
}
