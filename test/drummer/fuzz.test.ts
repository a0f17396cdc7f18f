// Fuzzes the Drummer API of a real drummer (SQLite, its DrummerDB replica, real clock) over a
// socket: random and mutated bodies for every method of DrummerService and reflection, in
// Connect (JSON, proto), gRPC-Web, Connect streaming and unknown content types, between shard
// definitions that were acknowledged. The drummer must keep serving and leading, never answer
// internal/unknown/data_loss, and lose no acknowledged definition.
// LONGBOAT_API_FUZZ=n sets the number of fuzzed requests (default 300, a smoke run in CI), as
// for the NodeHost API's fuzz test (test/api/fuzz.test.ts); LONGBOAT_API_FUZZ_SEED replays a run.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ApiServer } from "../../src/api/server.ts";
import { DRUMMER_METHOD_TYPES, DRUMMER_SERVICE } from "../../src/drummer/api/methods.ts";
import { type DrummerMethod, DrummerSchemas } from "../../src/drummer/api/schemas.ts";
import { drummerCaller } from "../../src/drummer/client.ts";
import { Drummer } from "../../src/drummer/drummer.ts";
import { serveOnTestPort } from "../api/serve.ts";
import { REAL_WAIT_MS } from "../support/limits.ts";
import { freePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { waitFor } from "../process/harness.ts";
import { FuzzRandom, type FuzzRequest } from "../support/fuzz.ts";

setDefaultTimeout(600_000);
const REQUESTS = Number(process.env.LONGBOAT_API_FUZZ ?? 300);
const METHODS = Object.keys(DrummerSchemas) as DrummerMethod[];
/**
 * Methods that change the drummers' own membership: fuzzed with garbage only (a valid AddDrummer
 * of a drummer that never comes takes the group's quorum away, as the operator asked).
 */
const DESTRUCTIVE = new Set<string>(["AddDrummer", "RemoveDrummer"]);
/** Codes a garbage or random request must never get: they would mean a bug on the server. */
const BUG_CODES = new Set(["internal", "unknown", "data_loss"]);

let dir: string;
let drummer: Drummer;
let server: ApiServer;
let base: string;
let address: string;
const logged: Record<string, unknown>[] = [];

/** The seeded generator (the run replays from LONGBOAT_API_FUZZ_SEED). */
const random = new FuzzRandom();
const rand = (n: number) => random.int(n);
const pick = <T>(xs: readonly T[]): T => random.pick(xs);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "longboat-drummer-fuzz-"));
  const raftAddress = `127.0.0.1:${freePort()}`;
  drummer = new Drummer({
    drummerId: 1,
    raftAddress,
    apiAddress: "127.0.0.1:1", // replaced below once the API port is known; only listed, never called
    peers: [{ id: 1, address: raftAddress }],
    dataDir: join(dir, "drummer"),
    deploymentId: 1,
    rttMs: 20,
    log: (e) => logged.push(e),
  });
  track("fuzzed drummer", () => drummer.stop());
  await drummer.start();
  server = await serveOnTestPort(drummer.api(), { log: (e) => logged.push(e) });
  address = `127.0.0.1:${server.port}`;
  base = `http://${address}`;
  const call = drummerCaller();
  await waitFor(
    () =>
      call(address, "GetDeployment", {}, { timeoutMs: 2000 }).then(
        (d) => Number(d.leaderDrummerId) === 1,
        () => false,
      ),
    REAL_WAIT_MS,
    "the drummer leading",
  );
});
afterAll(async () => {
  await server?.stop(0);
  await drummer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const randomBytes = (max: number) => random.bytes(max);

const VALUES: unknown[] = [
  0,
  1,
  2,
  3,
  99,
  -1,
  1.5,
  2 ** 53,
  "1",
  "18446744073709551616",
  "",
  "x",
  "kv",
  "h1:7001",
  null,
  true,
  [],
  [{}],
  [{ region: "eu", count: 2 }],
  [{ shardId: 1, replicaId: 1, members: [{ replicaId: 1, raftAddress: "h1:7001" }] }],
  {},
  "AAAA",
];

/** A request object with every field of the method's schema set to a random value. */
function randomFields(method: DrummerMethod): Record<string, unknown> {
  const shape = (DrummerSchemas[method] as unknown as { shape: Record<string, unknown> }).shape;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) if (rand(3) > 0) out[key] = pick(VALUES);
  if (rand(5) === 0) out[`unknown${rand(9)}`] = 1;
  return out;
}

/** One fuzzed request: method path, content type and body. */
function fuzzRequest(): FuzzRequest {
  const method = rand(20) === 0 ? pick(["Nope", "ServerReflectionInfo"]) : pick(METHODS);
  const path =
    method === "ServerReflectionInfo"
      ? "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
      : `/${DRUMMER_SERVICE}/${method}`;
  if (DESTRUCTIVE.has(method)) {
    return { path, contentType: pick(["application/json", "application/proto"]), body: randomBytes(40) };
  }
  const kind = rand(6);
  if (kind === 0)
    return { path, contentType: pick(["application/json", "application/proto"]), body: randomBytes(300) };
  if (kind === 1 && method in DRUMMER_METHOD_TYPES) {
    // a valid proto message, mutated (bit flips, truncation)
    const types = DRUMMER_METHOD_TYPES[method as DrummerMethod];
    let bytes: Uint8Array;
    try {
      bytes = types.request.encode(types.request.fromObject(randomFields(method as DrummerMethod))).finish();
    } catch {
      bytes = randomBytes(50);
    }
    const mutated = Uint8Array.from(bytes.subarray(0, rand(bytes.length + 1)));
    if (mutated.length > 0) mutated[rand(mutated.length)]! ^= 1 << rand(8);
    return { path, contentType: "application/proto", body: mutated };
  }
  if (kind === 2 && method in DrummerSchemas) {
    return {
      path,
      contentType: "application/json",
      body: JSON.stringify(randomFields(method as DrummerMethod)),
    };
  }
  return random.junk(path, kind, ['{"replicas":[null]}']);
}

test(`${REQUESTS} fuzzed requests: no bug code, the drummer keeps leading, no acknowledged definition lost`, async () => {
  const call = drummerCaller();
  const acked: number[] = [];
  const statuses = new Map<number, number>();
  for (let i = 0; i < REQUESTS; i++) {
    if (i % 10 === 0) {
      const shardId = 1_000_000 + i;
      await call(address, "CreateShard", { shardId, app: "kv", replicaCount: 3 }, { timeoutMs: 10_000 });
      acked.push(shardId);
    }
    const r = fuzzRequest();
    const res = await fetch(`${base}${r.path}`, {
      method: "POST",
      headers: r.contentType ? { "content-type": r.contentType } : {},
      body: r.body,
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status === 500 || res.status === 502) {
      const detail = JSON.stringify(logged.filter((e) => e.level === "error").slice(-3));
      throw new Error(
        `request ${i} (${r.path}, ${r.contentType}, body ${typeof r.body === "string" ? r.body : Buffer.from(r.body).toString("hex")}) got HTTP ${res.status}: ${new TextDecoder().decode(bytes)} ${detail}`,
      );
    }
    const grpcStatus = res.headers.get("grpc-status");
    if (grpcStatus !== null) expect(["2", "13", "15"]).not.toContain(grpcStatus);
    if (res.status !== 200 && res.headers.get("content-type") === "application/json") {
      const code = (JSON.parse(new TextDecoder().decode(bytes)) as { code?: string }).code ?? "";
      expect(BUG_CODES.has(code)).toBe(false);
    }
  }
  expect(logged.filter((e) => e.event === "api.internal_error")).toEqual([]);
  expect(drummer.fatal).toBeNull();
  const dep = await call(address, "GetDeployment", {}, { timeoutMs: 5000 });
  expect(Number(dep.leaderDrummerId)).toBe(1);
  const listed = await call(address, "ListShards", { shardIds: acked }, { timeoutMs: 5000 });
  const ids = (listed.shards as { definition: { shardId: number } }[]).map((s) =>
    Number(s.definition.shardId),
  );
  expect(ids.sort((a, b) => a - b)).toEqual(acked);
  console.log(`LONGBOAT_API_FUZZ=${REQUESTS}: HTTP statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
});
