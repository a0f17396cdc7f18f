// One drummer of the drummer benchmark (scripts/bench/drummer.ts), in its own process so its
// CPU is read from /proc without the load generator's share. Argument: a JSON job.
import { serveApi } from "../../src/api/server.ts";
import { Drummer } from "../../src/drummer/drummer.ts";

interface Job {
  id: number;
  peers: { id: number; address: string }[];
  apiPort: number;
  dataDir: string;
  reportIntervalMs: number;
  deadTimeoutMs: number;
  launchesPerPassMax: number;
}

const job = JSON.parse(process.argv[2]!) as Job;
const self = job.peers.find((p) => p.id === job.id)!;
const drummer = new Drummer({
  drummerId: job.id,
  raftAddress: self.address,
  apiAddress: `127.0.0.1:${job.apiPort}`,
  peers: job.peers,
  dataDir: job.dataDir,
  deploymentId: 1,
  rttMs: 100,
  reportIntervalMs: job.reportIntervalMs,
  deadTimeoutMs: job.deadTimeoutMs,
  launchesPerPassMax: job.launchesPerPassMax,
  log: (e) => {
    const event = String(e.event);
    if (
      e.level === "error" ||
      event.startsWith("drummer-leader") ||
      event === "drummer-slow-pass" ||
      event === "leader-updated"
    ) {
      process.stderr.write(`${new Date().toISOString()} drummer ${job.id} ${JSON.stringify(e)}\n`);
    }
  },
});
await drummer.start();
const server = await serveApi(drummer.api(), { hostname: "127.0.0.1", port: job.apiPort });
console.log(JSON.stringify({ type: "ready", pid: process.pid }));
process.once("SIGTERM", async () => {
  await server.stop();
  await drummer.stop();
  process.exit(0);
});
