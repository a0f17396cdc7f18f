// One NodeHost process of the api/etcd benchmarks (scripts/bench/api.ts starts three): a NodeHost
// with `shards` kv replicas and the public NodeHost API (src/api/app.ts) served over cleartext
// HTTP/2 (h2c, node:http2) — or HTTP/1.1 through Bun.serve with `protocol: "h1"`.
// Reads its job as JSON from argv[2]; prints {"type":"ready",...} on stdout once the shards it
// should lead are led here, then waits for "exit" on stdin.
import http2 from "node:http2";
import type { Hono } from "hono";
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

/** Bound on one request body read by the h2c adapter (the app's own limit is 16 MiB). */
const MAX_H2_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Serves a Hono app over h2c with node:http2: each stream becomes a fetch Request, the app's
 * Response is written back as headers + body. Enough for Connect unary calls.
 */
export function serveH2c(app: Hono, hostname: string, port: number): Promise<http2.Http2Server> {
  const server = http2.createServer({ settings: { maxConcurrentStreams: 4096 } });
  server.on("stream", (stream: http2.ServerHttp2Stream, headers) => {
    const chunks: Buffer[] = [];
    let sizeBytes = 0;
    stream.on("data", (c: Buffer) => {
      sizeBytes += c.byteLength;
      if (sizeBytes > MAX_H2_BODY_BYTES) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      chunks.push(c);
    });
    stream.on("error", () => {});
    stream.on("end", async () => {
      const method = String(headers[":method"] ?? "GET");
      const h = new Headers();
      for (const [k, v] of Object.entries(headers)) {
        if (k.startsWith(":") || v === undefined) continue;
        h.set(k, Array.isArray(v) ? v.join(", ") : String(v));
      }
      const url = `http://${headers[":authority"] ?? `${hostname}:${port}`}${headers[":path"] ?? "/"}`;
      const body = method === "GET" || method === "HEAD" ? undefined : Buffer.concat(chunks);
      let res: Response;
      try {
        res = await app.fetch(new Request(url, { method, headers: h, body }));
      } catch (error) {
        res = new Response(String(error), { status: 500 });
      }
      const out = new Uint8Array(await res.arrayBuffer());
      if (stream.destroyed || stream.closed) return;
      const outHeaders: http2.OutgoingHttpHeaders = { ":status": res.status };
      res.headers.forEach((v, k) => {
        outHeaders[k] = v;
      });
      outHeaders["content-length"] = out.byteLength;
      // An empty body ends with the HEADERS frame: an empty DATA frame per response trips the
      // peer's flood guard ("Too many invalid HTTP/2 frames") after a few thousand responses.
      if (out.byteLength === 0) {
        stream.respond(outHeaders, { endStream: true });
        return;
      }
      stream.respond(outHeaders);
      stream.end(out);
    });
  });
  server.on("sessionError", () => {});
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => resolve(server));
  });
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
  for (let s = 1; s <= job.shards; s++) {
    await nh.startReplica(
      members,
      false,
      kv,
      { shardId: s, replicaId: me, electionRtt: 20, heartbeatRtt: 2 },
      { app: "kv" },
    );
  }
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
  let stopServer: () => Promise<void>;
  if (job.protocol === "h2") {
    const server = await serveH2c(app, "127.0.0.1", port);
    stopServer = () => new Promise((r) => server.close(() => r()));
  } else {
    const server = serveApi(app, { hostname: "127.0.0.1", port });
    stopServer = () => server.stop();
  }

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
      if (cmd === "stats") console.log(JSON.stringify({ type: "stats", stats: nh.stats }));
      if (cmd === "exit") exit = true;
      i = buf.indexOf("\n");
    }
    if (exit) break;
  }
  await stopServer();
  await nh.stop();
  process.exit(0);
}
