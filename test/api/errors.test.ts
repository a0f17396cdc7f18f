import { expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { longboat } from "../../src/pb/longboat.js";
import { FakeNodeHost } from "./fake.ts";
import { b64, connectError, path, postJson, postProto } from "./helpers.ts";

const TOKEN = "s3cret";
const AUTH = { authorization: `Bearer ${TOKEN}` };

function setup(opts: { maxBodyBytes?: number; token?: boolean } = {}) {
  const fake = new FakeNodeHost().addShard(1);
  const logged: Record<string, unknown>[] = [];
  const app = createNodeHostApi({
    nodehost: fake,
    apiToken: opts.token ? TOKEN : undefined,
    maxBodyBytes: opts.maxBodyBytes,
    log: (e) => logged.push(e),
  });
  /** The server still answers a good call after the bad one. */
  const stillServes = async () => {
    const res = await postJson(app, "StaleRead", { shardId: "1", query: b64("k") }, opts.token ? AUTH : {});
    expect(res.status).toBe(200);
  };
  return { fake, app, logged, stillServes };
}

test("malformed JSON is invalid_argument naming the message", async () => {
  const { app, stillServes } = setup();
  const e = await connectError(await postJson(app, "Propose", '{"shardId": 1,'));
  expect(e).toMatchObject({ status: 400, code: "invalid_argument" });
  expect(e.message).toContain("malformed JSON in ProposeRequest");
  await stillServes();
});

test("a JSON array instead of an object is invalid_argument", async () => {
  const { app } = setup();
  const e = await connectError(await postJson(app, "Read", "[1,2]"));
  expect(e).toMatchObject({ code: "invalid_argument", message: "ReadRequest: expected a JSON object" });
});

test("a field of the wrong type is invalid_argument naming the field", async () => {
  const { app, stillServes } = setup();
  const e = await connectError(await postJson(app, "Propose", { shardId: "one", command: b64("x") }));
  expect(e.code).toBe("invalid_argument");
  expect(e.message).toBe('ProposeRequest.shardId: expected uint64 (a decimal string or a number), got "one"');
  await stillServes();
});

test("a nested field of the wrong type is named with its path", async () => {
  const { app } = setup();
  const e = await connectError(await postJson(app, "CloseSession", { session: { clientId: -1 } }));
  expect(e.message).toContain("CloseSessionRequest.session.clientId: expected uint64");
});

test("an unknown field is invalid_argument naming it", async () => {
  const { app } = setup();
  const e = await connectError(await postJson(app, "Read", { shardId: "1", shard: 2 }));
  expect(e).toMatchObject({ code: "invalid_argument", message: "ReadRequest.shard: unknown field" });
});

test("bytes that are not base64 are invalid_argument", async () => {
  const { app } = setup();
  const e = await connectError(await postJson(app, "Read", { shardId: "1", query: "not base64!" }));
  expect(e.message).toBe("ReadRequest.query: expected bytes as a base64 string");
});

test("a uint64 beyond 2^53-1 is invalid_argument", async () => {
  const { app } = setup();
  const e = await connectError(await postJson(app, "Read", { shardId: "18446744073709551615" }));
  expect(e.message).toContain("ReadRequest.shardId");
  expect(e.message).toContain("exceeds the largest accepted value");
});

test("an unknown enum value is invalid_argument listing the values", async () => {
  const { app } = setup();
  const e = await connectError(
    await postJson(app, "AddReplica", { shardId: "1", role: "REPLICA_ROLE_BOSS" }),
  );
  expect(e.message).toContain("AddReplicaRequest.role: expected one of REPLICA_ROLE_UNSPECIFIED");
});

test("malformed proto is invalid_argument", async () => {
  const { app, stillServes } = setup();
  const e = await connectError(await postProto(app, "Read", new Uint8Array([0x0a, 0xff, 0xff, 0xff])));
  expect(e.code).toBe("invalid_argument");
  expect(e.message).toContain("malformed application/proto ReadRequest");
  await stillServes();
});

test("an unknown shard is not_found", async () => {
  const { app, stillServes } = setup();
  const e = await connectError(await postJson(app, "Read", { shardId: "99" }));
  expect(e).toMatchObject({ status: 404, code: "not_found" });
  expect(e.message).toContain("shard 99");
  await stillServes();
});

test("a missing token is unauthenticated", async () => {
  const { app, stillServes } = setup({ token: true });
  const e = await connectError(await postJson(app, "Status", {}));
  expect(e).toMatchObject({ status: 401, code: "unauthenticated" });
  expect(e.message).toContain("missing bearer token");
  await stillServes();
});

test("a wrong token is unauthenticated", async () => {
  const { app, stillServes } = setup({ token: true });
  const e = await connectError(await postJson(app, "Status", {}, { authorization: "Bearer nope" }));
  expect(e).toMatchObject({ status: 401, code: "unauthenticated", message: "wrong bearer token" });
  await stillServes();
});

test("the token also protects /metrics but not /healthz", async () => {
  const { app } = setup({ token: true });
  expect((await app.request("/metrics")).status).toBe(401);
  expect((await app.request("/metrics", { headers: AUTH })).status).toBe(200);
  const health = await app.request("/healthz");
  expect(health.status).toBe(200);
  expect(await health.text()).toBe("ok\n");
});

test("a body one byte over the limit is resource_exhausted, one at the limit is served", async () => {
  const { app, stillServes } = setup({ maxBodyBytes: 62 });
  const atLimit = JSON.stringify({ shardId: "1", query: "A".repeat(36) });
  expect(new TextEncoder().encode(atLimit).length).toBe(62);
  expect((await postJson(app, "StaleRead", atLimit)).status).toBe(200);
  const e = await connectError(await postJson(app, "StaleRead", `${atLimit} `));
  expect(e).toMatchObject({ status: 429, code: "resource_exhausted" });
  expect(e.message).toContain("exceeds the limit of 62 bytes");
  await stillServes();
});

test("a streamed body without content-length over the limit is resource_exhausted", async () => {
  const { app, stillServes } = setup({ maxBodyBytes: 1000 });
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(300).fill(0x20));
      c.close();
    },
  });
  const res = await app.request(path("Status"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: stream,
    duplex: "half",
  } as RequestInit);
  expect(await connectError(res)).toMatchObject({ code: "resource_exhausted" });
  await stillServes();
});

test("an unknown method is 404 unimplemented", async () => {
  const { app, stillServes } = setup();
  const e = await connectError(await postJson(app, "Frobnicate", {}));
  expect(e).toMatchObject({ status: 404, code: "unimplemented" });
  expect(e.message).toContain("Frobnicate is not a method of longboat.nodehost.v1.NodeHostService");
  await stillServes();
});

test("an unknown path is 404 unimplemented", async () => {
  const { app } = setup();
  expect(await connectError(await app.request("/nope"))).toMatchObject({
    status: 404,
    code: "unimplemented",
  });
});

test("GET on a method path is 405 unimplemented with Allow: POST", async () => {
  const { app, stillServes } = setup();
  const res = await app.request(path("Status"));
  expect(res.headers.get("allow")).toBe("POST");
  const e = await connectError(res);
  expect(e).toMatchObject({ status: 405, code: "unimplemented" });
  expect(e.message).toContain("use POST");
  await stillServes();
});

test("an unsupported content type is 415 invalid_argument", async () => {
  const { app } = setup();
  const res = await app.request(path("Status"), {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: "{}",
  });
  const e = await connectError(res);
  expect(e).toMatchObject({ status: 415, code: "invalid_argument" });
  expect(e.message).toContain("use application/json or application/proto");
});

test("engine errors map to Connect codes", async () => {
  const cases: [LongboatError, string, number][] = [
    [new LongboatError("timeout"), "deadline_exceeded", 504],
    [new LongboatError("shardClosed"), "unknown", 500],
    [new LongboatError("systemBusy"), "unavailable", 503],
    [new LongboatError("shardNotReady"), "unavailable", 503],
    [new LongboatError("closed"), "unavailable", 503],
    [new LongboatError("rejected"), "failed_precondition", 400],
    [new LongboatError("aborted"), "aborted", 409],
    [new LongboatError("invalidSession"), "invalid_argument", 400],
    [new LongboatError("payloadTooBig"), "invalid_argument", 400],
    [new LongboatError("timeoutTooSmall"), "invalid_argument", 400],
  ];
  const { fake, app } = setup();
  for (const [error, code, status] of cases) {
    fake.failNext = error;
    const e = await connectError(await postJson(app, "StaleRead", { shardId: "1" }));
    expect({ code: e.code, status: e.status, message: e.message }).toEqual({
      code,
      status,
      message: error.message,
    });
  }
});

test("an unexpected error is internal, logged at error level with the method and a correlation id the caller also gets, and its stack is not leaked", async () => {
  const { fake, app, logged, stillServes } = setup();
  fake.failNext = new TypeError("secret detail");
  const e = await connectError(await postJson(app, "StaleRead", { shardId: "1" }));
  expect(e).toMatchObject({ status: 500, code: "internal" });
  expect(e.message).not.toContain("secret");
  expect(logged[0]).toMatchObject({
    level: "error",
    event: "api.internal_error",
    service: "longboat.nodehost.v1.NodeHostService",
    method: "StaleRead",
  });
  const errorId = String(logged[0]!.errorId);
  expect(errorId).toMatch(/^[0-9a-f]{8}$/);
  expect(e.message).toBe(
    `internal error ${errorId}: the server's log has its details (level error, errorId ${errorId})`,
  );
  expect(String(logged[0]!.error)).toContain("secret detail");
  fake.failNext = new TypeError("another");
  const second = await connectError(await postJson(app, "StaleRead", { shardId: "1" }));
  expect(logged[1]!.errorId).not.toBe(errorId);
  expect(second.message).toContain(String(logged[1]!.errorId));
  await stillServes();
});

test("an engine error that maps to internal keeps its message and gains the correlation id of its log line", async () => {
  const { fake, app, logged } = setup();
  fake.failNext = new LongboatError("replicaRemoved", "replica 1 of shard 1 was removed");
  const e = await connectError(await postJson(app, "StaleRead", { shardId: "1" }));
  expect(logged[0]).toMatchObject({ level: "error", event: "api.internal_error", method: "StaleRead" });
  expect(e.message).toBe(
    `the replica was removed from its shard: replica 1 of shard 1 was removed (error id ${logged[0]!.errorId} in the server's log)`,
  );
});

test("CloseSession without a session is invalid_argument", async () => {
  const { app } = setup();
  const e = await connectError(await postJson(app, "CloseSession", {}));
  expect(e).toMatchObject({ code: "invalid_argument", message: "CloseSessionRequest.session: required" });
});

test("Propose with a session of another shard is invalid_argument", async () => {
  const { app } = setup();
  const body = longboat.nodehost.v1.ProposeRequest.encode({
    shardId: 1,
    session: { shardId: 2, clientId: 5 },
  }).finish();
  const e = await connectError(await postProto(app, "Propose", body));
  expect(e.message).toBe("ProposeRequest.session.shardId 2 differs from ProposeRequest.shardId 1");
});

test("RemoveData of a replica that still runs is failed_precondition; a bad membership is invalid_argument", async () => {
  const { app, stillServes } = setup();
  const running = await connectError(await postJson(app, "RemoveData", { shardId: "1", replicaId: "1" }));
  expect(running).toMatchObject({ status: 400, code: "failed_precondition" });
  const bad = await connectError(
    await postJson(app, "RemoveData", { shardId: "1", replicaId: "3", membership: { addresses: "h1" } }),
  );
  expect(bad).toMatchObject({ code: "invalid_argument" });
  expect(bad.message).toContain("RemoveDataRequest.membership.addresses: expected a list");
  await stillServes();
});

test("QueryRaftLog asking for more than 8 MiB is invalid_argument; a compacted start is out_of_range", async () => {
  const { app, fake } = setup();
  const big = await connectError(
    await postJson(app, "QueryRaftLog", { shardId: "1", maxBytes: 8 * 1024 * 1024 + 1 }),
  );
  expect(big).toMatchObject({ code: "invalid_argument" });
  expect(big.message).toContain("exceeds 8388608");
  fake.failNext = new LongboatError("outOfRange", "entries below 5 were compacted");
  const compacted = await connectError(
    await postJson(app, "QueryRaftLog", { shardId: "1", firstIndex: "2" }),
  );
  expect(compacted).toMatchObject({ status: 400, code: "out_of_range" });
});
