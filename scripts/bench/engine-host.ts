// One NodeHost process of the engine benchmark (scripts/bench/engine.ts starts three).
// Reads its job as JSON from argv[2]; talks to the parent with lines on stdin/stdout.
import { longboat } from "../../src/pb/longboat.js";
import { spreadLeadership, startKvNodeHost } from "./api-host.ts";
import { Histogram } from "./histogram.ts";

interface Job {
  index: number;
  raftAddresses: string[];
  dataDir: string;
  shards: number;
  payloadBytes: number;
  durationMs: number;
  concurrencyPerShard: number;
  readRatio: number;
  rttMs: number;
}

const job = JSON.parse(process.argv[2]!) as Job;
const { nh, me } = await startKvNodeHost(job);

await spreadLeadership(nh, me, job.raftAddresses.length, job.shards);
console.log(JSON.stringify({ type: "ready" }));

const lines = (async function* () {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of Bun.stdin.stream()) {
    buf += decoder.decode(chunk);
    let i = buf.indexOf("\n");
    while (i >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  }
})();
await lines.next(); // "go"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const payload = new Uint8Array(job.payloadBytes).fill(120);
const writes = new Histogram();
const reads = new Histogram();
let errors = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const deadline = t0 + job.durationMs;
const led: number[] = [];
for (let s = 1; s <= job.shards; s++) if (nh.getLeaderId(s).leaderId === me) led.push(s);
async function worker(shard: number, w: number): Promise<void> {
  const cmd = longboat.nodehost.v1.KvCommand.encode({ put: { key: `k${w}`, value: payload } }).finish();
  const query = longboat.nodehost.v1.KvQuery.encode({ get: { key: `k${w}` } }).finish();
  const session = nh.getNoOpSession(shard);
  let n = 0;
  while (performance.now() < deadline) {
    const isRead = job.readRatio > 0 && n++ % 10 < job.readRatio * 10;
    const start = performance.now();
    try {
      if (isRead) {
        await nh.syncRead(shard, query, { timeoutMs: 5000 });
        reads.record((performance.now() - start) * 1000);
      } else {
        await nh.syncPropose(session, cmd, { timeoutMs: 5000 });
        writes.record((performance.now() - start) * 1000);
      }
    } catch {
      errors++;
      await sleep(5);
    }
  }
}
const workers: Promise<void>[] = [];
for (const s of led) for (let w = 0; w < job.concurrencyPerShard; w++) workers.push(worker(s, w));
await Promise.all(workers);
const elapsedMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(
  JSON.stringify({
    type: "result",
    host: me,
    ledShards: led.length,
    elapsedMs,
    errors,
    cpuMs: (cpu.user + cpu.system) / 1000,
    writes: writes.toJSON(),
    reads: reads.toJSON(),
    stats: nh.stats,
  }),
);
await lines.next(); // "exit"
await nh.stop();
process.exit(0);
