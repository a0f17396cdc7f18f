// Load generator process shared by the api and etcd benchmarks: the same runtime (Bun), the same
// node:http2 client code, the same connection counts and key choice for both systems; only the
// request encoding differs (Connect unary application/proto for Longboat, gRPC for etcd).
//
//   bun scripts/bench/loadgen.ts '<LoadJob as JSON>'   → one JSON line (LoadResult) on stdout,
//   a progress line on stderr every second.
//
// Closed loop (ratePerSec 0): `concurrency` workers, each sends its next request when the last
// one answered. Open loop (ratePerSec > 0): requests start on a fixed schedule whatever the
// backlog, and latency counts from the scheduled start, so a stall is charged to every request
// it delayed (no coordinated omission); at most `concurrency` × 64 may wait, the rest count as
// errors ("dropped").
import http2 from "node:http2";
import { longboat } from "../../src/pb/longboat.js";
import { encodePut, encodeRange, PUT_PATH, RANGE_PATH } from "./etcd-client.ts";
import { RawH2Connection, postHeaderBlock } from "./h2raw.ts";
import { Histogram } from "./histogram.ts";

export interface LoadJob {
  label: string;
  system: "longboat" | "etcd";
  op: "put" | "get";
  /** http://host:port of each endpoint. */
  endpoints: string[];
  /** Longboat only: endpoint index leading shard s is leaderOf[s - 1]. */
  leaderOf?: number[];
  connectionsPerEndpoint: number;
  /** "h1": Longboat only, HTTP/1.1 keep-alive through Bun's fetch (Bun picks the connection count). */
  protocol?: "h2" | "h1";
  /** HTTP/2 client: "raw" (h2raw.ts, default) or "node" (node:http2, about twice the CPU per request). */
  client?: "raw" | "node";
  concurrency: number;
  ratePerSec: number;
  warmupMs: number;
  durationMs: number;
  keySpace: number;
  keyBytes: number;
  valueBytes: number;
  timeoutMs: number;
}

export interface LoadResult {
  label: string;
  ops: number;
  opsPerSec: number;
  errors: number;
  firstError: string;
  elapsedMs: number;
  clientCpuMs: number;
  latency: ReturnType<Histogram["toJSON"]>;
}

export interface H2Answer {
  status: number;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  body: Uint8Array;
}

/** One request on an HTTP/2 session; rejects on stream errors and after timeoutMs. */
export function h2request(
  session: http2.ClientHttp2Session,
  path: string,
  contentType: string,
  body: Uint8Array,
  timeoutMs: number,
): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": contentType,
    };
    if (contentType === "application/grpc") headers.te = "trailers";
    const req = session.request(headers);
    let status = 0;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on("response", (h) => {
      status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) grpcMessage = String(h["grpc-message"]);
    });
    req.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) grpcStatus = String(t["grpc-status"]);
      if (t["grpc-message"] !== undefined) grpcMessage = String(t["grpc-message"]);
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      clearTimeout(timer);
      resolve({ status, grpcStatus, grpcMessage, body: Buffer.concat(chunks) });
    });
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(body);
  });
}

/** One request over HTTP/1.1 keep-alive (Bun's fetch pool). */
export async function h1request(
  url: string,
  contentType: string,
  body: Uint8Array,
  timeoutMs: number,
): Promise<H2Answer> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": contentType },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  return {
    status: res.status,
    grpcStatus: undefined,
    grpcMessage: undefined,
    body: new Uint8Array(await res.arrayBuffer()),
  };
}

export function connect(endpoint: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(endpoint, { settings: { maxConcurrentStreams: 4096 } });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** A fixed-width key: "k" then the index zero-padded to keyBytes - 1 digits. */
export function keyOf(index: number, keyBytes: number): string {
  return `k${String(index).padStart(keyBytes - 1, "0")}`;
}

const pb = longboat.nodehost.v1;
const LB_PROPOSE = "/longboat.nodehost.v1.NodeHostService/Propose";
const LB_READ = "/longboat.nodehost.v1.NodeHostService/Read";

interface BuiltRequest {
  endpoint: number;
  path: string;
  contentType: string;
  body: Uint8Array;
}

/**
 * Builds the request for key index k (which endpoint, path, content type, body). Bodies are
 * encoded once per key and reused: the key space is bounded (--keys), and encoding per request
 * cost the client as much CPU as the rest of the request.
 */
function requestBuilder(job: LoadJob): (k: number) => BuiltRequest {
  const encodeOnce = encoder(job);
  const cache = new Map<number, BuiltRequest>();
  let rr = 0;
  return (k: number) => {
    let r = cache.get(k);
    if (r === undefined) {
      r = encodeOnce(k);
      cache.set(k, r);
    }
    // etcd: every request goes to the next member in turn, as etcd's own tool does.
    if (job.system === "etcd") return { ...r, endpoint: rr++ % job.endpoints.length };
    return r;
  };
}

function encoder(job: LoadJob): (k: number) => BuiltRequest {
  const value = new Uint8Array(job.valueBytes).fill(118);
  const enc = new TextEncoder();
  const shards = job.leaderOf?.length ?? 0;
  if (job.system === "longboat") {
    if (!shards) throw new Error("loadgen: a longboat job needs leaderOf (leader endpoint per shard)");
    return (k: number) => {
      const key = keyOf(k, job.keyBytes);
      const shardId = (k % shards) + 1;
      const body =
        job.op === "put"
          ? pb.ProposeRequest.encode({
              shardId,
              command: pb.KvCommand.encode({ put: { key, value } }).finish(),
              timeoutMs: job.timeoutMs,
            }).finish()
          : pb.ReadRequest.encode({
              shardId,
              query: pb.KvQuery.encode({ get: { key } }).finish(),
              timeoutMs: job.timeoutMs,
            }).finish();
      return {
        endpoint: job.leaderOf![shardId - 1]!,
        path: job.op === "put" ? LB_PROPOSE : LB_READ,
        contentType: "application/proto",
        body,
      };
    };
  }
  return (k: number) => {
    const key = enc.encode(keyOf(k, job.keyBytes));
    return {
      endpoint: 0,
      path: job.op === "put" ? PUT_PATH : RANGE_PATH,
      contentType: "application/grpc",
      body: job.op === "put" ? encodePut(key, value) : encodeRange(key, false),
    };
  };
}

/** Why an answer is a failure, or undefined when it succeeded. */
function failure(a: H2Answer, grpc: boolean): string | undefined {
  if (a.status !== 200) return `HTTP ${a.status}: ${new TextDecoder().decode(a.body).slice(0, 200)}`;
  if (grpc && a.grpcStatus !== "0") return `grpc-status ${a.grpcStatus}: ${a.grpcMessage ?? ""}`;
  return undefined;
}

/** One connection of the pool, whatever the client: send a request, know when it broke. */
interface Sender {
  send(r: BuiltRequest): Promise<string | undefined>;
  broken(): boolean;
  expire(): void;
  close(): void;
}

async function openSender(job: LoadJob, endpoint: string): Promise<Sender> {
  const grpc = job.system === "etcd";
  if (job.protocol === "h1") {
    return {
      send: async (r) =>
        failure(await h1request(`${endpoint}${r.path}`, r.contentType, r.body, job.timeoutMs), grpc),
      broken: () => false,
      expire: () => {},
      close: () => {},
    };
  }
  if (job.client === "node") {
    const session = await connect(endpoint);
    return {
      send: async (r) =>
        failure(await h2request(session, r.path, r.contentType, r.body, job.timeoutMs), grpc),
      broken: () => session.destroyed || session.closed,
      expire: () => {},
      close: () => session.close(),
    };
  }
  const url = new URL(endpoint);
  const conn = await RawH2Connection.open(url.hostname, Number(url.port));
  const blocks = new Map<string, Uint8Array>();
  return {
    send: async (r) => {
      let block = blocks.get(r.path);
      if (block === undefined) {
        block = postHeaderBlock(url.host, r.path, r.contentType);
        blocks.set(r.path, block);
      }
      const a = await conn.post(block, r.body, grpc);
      return a.ok ? undefined : a.error;
    },
    broken: () => conn.dead !== null,
    expire: () => conn.expire(job.timeoutMs),
    close: () => conn.close(),
  };
}

export async function runLoad(job: LoadJob, progress: (line: string) => void): Promise<LoadResult> {
  if (job.concurrency < 1 || job.connectionsPerEndpoint < 1)
    throw new Error("loadgen: concurrency and connections must be ≥ 1");
  const pools: Sender[][] = [];
  for (const e of job.endpoints) {
    const pool: Sender[] = [];
    const n = job.protocol === "h1" ? 1 : job.connectionsPerEndpoint;
    for (let i = 0; i < n; i++) pool.push(await openSender(job, e));
    pools.push(pool);
  }
  const next = pools.map(() => 0);
  const build = requestBuilder(job);
  const hist = new Histogram();
  let errors = 0;
  let firstError = "";
  let seq = Math.floor(Math.random() * job.keySpace);
  const start = performance.now();
  const measureFrom = start + job.warmupMs;
  const deadline = measureFrom + job.durationMs;
  let cpu0 = process.cpuUsage();
  let cpuMarked = false;
  let inFlight = 0;

  /** Sends one request; latency counts from intendedMs (now, or the open-loop schedule). */
  async function one(intendedMs: number): Promise<void> {
    const r = build(seq++ % job.keySpace);
    const pool = pools[r.endpoint]!;
    const slot = next[r.endpoint]!++ % pool.length;
    const sender = pool[slot]!;
    inFlight++;
    try {
      const why = await sender.send(r);
      if (why !== undefined) throw new Error(why);
      if (intendedMs >= measureFrom) hist.record((performance.now() - intendedMs) * 1000);
    } catch (error) {
      if (intendedMs >= measureFrom) {
        errors++;
        if (!firstError) firstError = String((error as Error).message ?? error);
      }
      // A dead connection is replaced (once: whoever finds it first); the failed worker pauses
      // 5 ms so a broken server is not hammered in a tight loop.
      if (sender.broken() && pool[slot] === sender) {
        pool[slot] = await openSender(job, job.endpoints[r.endpoint]!).catch(() => sender);
      }
      await new Promise((res) => setTimeout(res, 5));
    } finally {
      inFlight--;
    }
  }

  const ticker = setInterval(() => {
    const now = performance.now();
    if (!cpuMarked && now >= measureFrom) {
      cpu0 = process.cpuUsage();
      cpuMarked = true;
    }
    for (const pool of pools) for (const sender of pool) sender.expire();
    const s = hist.summary();
    const t = Math.max(0, now - measureFrom) / 1000;
    progress(
      `${job.label}: ${now < measureFrom ? "warming up" : `${t.toFixed(0)}s`} ${Math.round(s.count / Math.max(t, 1e-3))} ops/s p99 ${s.p99Ms.toFixed(1)} ms errors ${errors}`,
    );
  }, 1000);

  if (job.ratePerSec > 0) {
    const maxWaiting = job.concurrency * 64;
    const intervalMs = 1000 / job.ratePerSec;
    let issued = 0;
    const pending = new Set<Promise<void>>();
    while (performance.now() < deadline) {
      const due = Math.floor((performance.now() - start) / intervalMs);
      while (issued < due) {
        const intended = start + issued * intervalMs;
        issued++;
        if (inFlight >= maxWaiting) {
          if (intended >= measureFrom) {
            errors++;
            firstError ||= `dropped: more than ${maxWaiting} requests waiting`;
          }
          continue;
        }
        const p = one(intended);
        pending.add(p);
        p.finally(() => pending.delete(p));
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(pending);
  } else {
    const worker = async () => {
      while (performance.now() < deadline) await one(performance.now());
    };
    await Promise.all(Array.from({ length: job.concurrency }, worker));
  }
  clearInterval(ticker);
  const cpu = process.cpuUsage(cpu0);
  const elapsedMs = Math.min(performance.now(), deadline) - measureFrom;
  for (const pool of pools) for (const sender of pool) sender.close();
  return {
    label: job.label,
    ops: hist.total,
    opsPerSec: hist.total / (elapsedMs / 1000),
    errors,
    firstError,
    elapsedMs,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    latency: hist.toJSON(),
  };
}

if (import.meta.main) {
  const job = JSON.parse(process.argv[2]!) as LoadJob;
  const result = await runLoad(job, (line) => process.stderr.write(`\r  ${line.padEnd(78)}`));
  process.stderr.write("\n");
  console.log(JSON.stringify(result));
  process.exit(0);
}
