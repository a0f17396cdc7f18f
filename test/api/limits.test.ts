// Every limit of the API server (src/api/rpc/limits.ts) at its bound: a flood of calls, the
// body bytes held, streams per HTTP/2 connection, header size, a slow body, slow headers, an
// idle HTTP/2 connection. Each waits for the server's own answer (no sleeping for luck).
import { afterAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import net from "node:net";
import { ConnectError } from "../../src/api/errors.ts";
import type { Limits } from "../../src/api/rpc/limits.ts";
import { RpcHandler } from "../../src/api/rpc/router.ts";
import { defineService, unary } from "../../src/api/rpc/service.ts";
import type { ApiServer } from "../../src/api/server.ts";
import { longboat } from "../../src/pb/longboat.js";
import { serveOnTestPort } from "./serve.ts";

const pb = longboat.nodehost.v1;
const PATH = "/longboat.test.v1.Gate/Wait";

/** A service whose calls wait until released (or answer at once for query "now"). */
function gate() {
  const waiting: (() => void)[] = [];
  let entered = 0;
  const service = defineService("longboat.test.v1.Gate", {
    Wait: unary<{ query: Uint8Array }>(pb.ReadRequest, pb.ReadResponse, async (req) => {
      entered += 1;
      if (new TextDecoder().decode(req.query) !== "now") await new Promise<void>((r) => waiting.push(r));
      return { result: req.query };
    }),
  });
  return {
    service,
    entered: () => entered,
    waiting: () => waiting.length,
    release: () => {
      for (const r of waiting.splice(0)) r();
    },
  };
}

const servers: ApiServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop(0);
});

async function start(limits: Partial<Limits>) {
  const g = gate();
  const refused: string[] = [];
  const handler = new RpcHandler({
    services: [g.service],
    limits,
    observer: { refused: (r) => refused.push(r) },
  });
  const server = await serveOnTestPort(handler);
  servers.push(server);
  return { g, handler, server, refused, url: `http://127.0.0.1:${server.port}${PATH}` };
}

const call = (url: string, query: string, body?: string) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body ?? JSON.stringify({ query: Buffer.from(query).toString("base64") }),
  });

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await Bun.sleep(5);
  }
}

describe("concurrency", () => {
  test("a flood beyond maxConcurrentRequests gets resource_exhausted at once; the rest are served", async () => {
    const { g, url, refused, handler } = await start({ maxConcurrentRequests: 4 });
    const held = Array.from({ length: 4 }, () => call(url, "held"));
    await waitUntil(() => g.waiting() === 4, "4 calls in the handler");
    const flood = await Promise.all(Array.from({ length: 40 }, () => call(url, "flood")));
    expect(flood.map((r) => r.status)).toEqual(Array(40).fill(429));
    const body = (await flood[0]!.json()) as { code: string; message: string };
    expect(body.code).toBe("resource_exhausted");
    expect(body.message).toContain("retry later");
    expect(g.entered()).toBe(4);
    expect(refused.filter((r) => r === "concurrency")).toHaveLength(40);
    g.release();
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect((await call(url, "now")).status).toBe(200);
    expect(handler.inFlight).toBe(0);
  });

  test("an HTTP/2 connection gets at most maxStreamsPerConnection streams; more are refused by the protocol", async () => {
    const { g, server } = await start({ maxStreamsPerConnection: 2 });
    // A raw HTTP/2 client: what is asserted is the server's answer to a stream beyond its limit,
    // so the client must send it. node:http2 in Bun may hold such a stream back once it has the
    // server's SETTINGS (the limit is announced there), and then the stream waits for a slot
    // that the held calls free only after this test releases them (a 7 s hang seen once at
    // load 11); a raw client sends what it is told.
    const c = rawHttp2(server.port);
    const body = new TextEncoder().encode(JSON.stringify({ query: Buffer.from("held").toString("base64") }));
    c.request(1, body);
    c.request(3, body);
    await waitUntil(() => g.waiting() === 2, "2 streams in the handler");
    c.request(5, null); // HEADERS only, END_STREAM: Bun answers DATA on a refused stream with GOAWAY
    c.request(7, null);
    await waitUntil(() => c.reset.has(5) && c.reset.has(7), "RST_STREAM of streams 5 and 7");
    expect([c.reset.get(5), c.reset.get(7)]).toEqual([REFUSED_STREAM, REFUSED_STREAM]);
    expect(g.entered()).toBe(2);
    g.release();
    await waitUntil(() => c.status.has(1) && c.status.has(3), "the answers of streams 1 and 3");
    expect([c.status.get(1), c.status.get(3)]).toEqual([HPACK_STATUS_200, HPACK_STATUS_200]);
    expect(c.goaway()).toBeNull();
    c.socket.destroy();
  });
});

const REFUSED_STREAM = 0x7;
/** `:status: 200` is HPACK static-table entry 8: an encoder sends it as the single byte 0x88. */
const HPACK_STATUS_200 = 0x88;

/**
 * A minimal HTTP/2 client on a TCP socket: the preface, an empty SETTINGS, SETTINGS ACKs, and
 * POST requests to PATH; it records each stream's RST_STREAM code and the first byte of its
 * response header block, and a GOAWAY's code.
 */
function rawHttp2(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  const frame = (type: number, flags: number, stream: number, payload: Uint8Array) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    socket.write(Buffer.concat([head, payload]));
  };
  // HPACK: :method POST (static 3) and :scheme http (static 6) indexed; :path (static 4) and
  // content-type (static 31) as literals without indexing of an indexed name.
  const literal = (index: number, value: string) => {
    const v = Buffer.from(value);
    const name = index < 15 ? [index] : [15, index - 15];
    return Buffer.concat([Buffer.from(name), Buffer.from([v.length]), v]);
  };
  const block = Buffer.concat([
    Buffer.from([0x83, 0x86]),
    literal(4, PATH),
    literal(1, `127.0.0.1:${port}`),
    literal(31, "application/json"),
  ]);
  const reset = new Map<number, number>();
  const status = new Map<number, number>();
  let goaway: number | null = null;
  let pending = Buffer.alloc(0);
  socket.on("data", (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const [type, flags] = [pending[3]!, pending[4]!];
      const stream = pending.readUInt32BE(5) & 0x7fffffff;
      const payload = pending.subarray(9, 9 + length);
      pending = pending.subarray(9 + length);
      if (type === 0x4 && (flags & 0x1) === 0) frame(0x4, 0x1, 0, new Uint8Array(0)); // SETTINGS ACK
      if (type === 0x3) reset.set(stream, payload.readUInt32BE(0));
      if (type === 0x7) goaway = payload.readUInt32BE(4);
      if (type === 0x1 && !status.has(stream)) {
        const skip = (flags & 0x8 ? 1 + payload[0]! : 0) + (flags & 0x20 ? 5 : 0); // PADDED, PRIORITY
        status.set(stream, payload[skip]!);
      }
    }
  });
  socket.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  frame(0x4, 0, 0, new Uint8Array(0));
  return {
    socket,
    reset,
    status,
    goaway: () => goaway,
    /** HEADERS (END_HEADERS), then the body as one DATA frame with END_STREAM, or none. */
    request(stream: number, body: Uint8Array | null) {
      frame(0x1, body === null ? 0x5 : 0x4, stream, block);
      if (body !== null) frame(0x0, 0x1, stream, body);
    },
  };
}

describe("body bytes", () => {
  test("request bodies held beyond maxBufferedBodyBytes get resource_exhausted; given back when calls end", async () => {
    const { g, url, handler, refused } = await start({ maxBodyBytes: 700, maxBufferedBodyBytes: 1000 });
    const big = JSON.stringify({ query: Buffer.from("x".repeat(400)).toString("base64") }); // 548 bytes
    const held = call(url, "", big);
    await waitUntil(() => g.waiting() === 1, "the first call in the handler");
    expect(handler.bufferedBytes).toBe(big.length);
    const second = await call(url, "", big);
    expect(second.status).toBe(429);
    expect(refused).toContain("buffered_bytes");
    expect(((await second.json()) as { message: string }).message).toContain(
      "holds 548 bytes of request bodies",
    );
    g.release();
    expect((await held).status).toBe(200);
    expect(handler.bufferedBytes).toBe(0);
    const third = call(url, "", big);
    await waitUntil(() => g.waiting() === 1, "the third call in the handler");
    g.release();
    expect((await third).status).toBe(200);
  });
});

/** A raw HTTP/1.1 connection: write parts at intervals, collect the answer, note when it closed. */
function rawHttp1(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  let answer = "";
  let closed = false;
  socket.on("data", (d) => {
    answer += d.toString();
  });
  socket.on("error", () => {});
  const done = new Promise<void>((resolve) =>
    socket.on("close", () => {
      closed = true;
      resolve();
    }),
  );
  return { socket, done, answer: () => answer, closed: () => closed };
}

describe("slow clients", () => {
  test("a body sent one byte at a time is cut off after bodyTimeoutMs with deadline_exceeded", async () => {
    const { port } = (await start({ bodyTimeoutMs: 400 })).server;
    const c = rawHttp1(port);
    c.socket.write(
      `POST ${PATH} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n`,
    );
    let sent = 0;
    while (!c.closed() && sent < 100) {
      c.socket.write("{");
      sent += 1;
      await Bun.sleep(50);
    }
    await c.done;
    expect(sent).toBeLessThan(100); // cut off before the client finished
    expect(c.answer()).toStartWith("HTTP/1.1 504");
    expect(c.answer()).toContain('"code":"deadline_exceeded"');
    expect(c.answer()).toContain("did not arrive within 400 ms");
  });

  test("headers sent one byte at a time are cut off after headersTimeoutMs", async () => {
    const { port } = (await start({ headersTimeoutMs: 400 })).server;
    const c = rawHttp1(port);
    const request = `POST ${PATH} HTTP/1.1\r\nhost: x\r\n${"x-pad: y\r\n".repeat(50)}\r\n`;
    let sent = 0;
    while (!c.closed() && sent < request.length) {
      c.socket.write(request[sent]!);
      sent += 1;
      await Bun.sleep(20);
    }
    await c.done;
    expect(sent).toBeLessThan(request.length);
    expect(c.answer()).toBe("");
  });

  test("an idle keep-alive connection is closed after headersTimeoutMs", async () => {
    const { port } = (await start({ headersTimeoutMs: 300 })).server;
    const c = rawHttp1(port);
    const body = JSON.stringify({ query: Buffer.from("now").toString("base64") });
    c.socket.write(
      `POST ${PATH} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    await c.done;
    expect(c.answer()).toStartWith("HTTP/1.1 200");
  });

  test("an HTTP/2 connection with no stream for idleTimeoutMs is closed with GOAWAY", async () => {
    const { server } = await start({ idleTimeoutMs: 300 });
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    const goaway = new Promise<boolean>((resolve) => {
      session.on("goaway", () => resolve(true));
      session.on("close", () => resolve(false));
    });
    expect(await goaway).toBe(true);
    session.destroy();
  });
});

describe("headers", () => {
  test("HTTP/1.1 headers beyond maxHeaderBytes get 431 and the connection is closed", async () => {
    const { server, refused } = await start({ maxHeaderBytes: 1024 });
    const c = rawHttp1(server.port);
    c.socket.write(`POST ${PATH} HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(4000)}\r\n\r\n`);
    await c.done;
    expect(c.answer()).toStartWith("HTTP/1.1 431");
    expect(refused).toContain("headers");
  });

  test("HTTP/2 headers beyond maxHeaderBytes: the stream is refused, the server keeps serving", async () => {
    const { server, url } = await start({ maxHeaderBytes: 1024 });
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    const outcome = await new Promise<string>((resolve) => {
      const s = session.request({ ":method": "POST", ":path": PATH, "x-big": "a".repeat(4000) });
      s.on("response", (h) => resolve(String(h[":status"])));
      s.on("error", (e: Error & { code?: string }) => resolve(e.code ?? e.message));
      s.on("close", () => resolve(`closed ${s.rstCode}`));
      s.end();
    });
    expect(outcome).not.toBe("200");
    session.destroy();
    expect((await call(url, "now")).status).toBe(200);
  });

  test("a body declared larger than maxBodyBytes is refused without reading it", async () => {
    const { url } = await start({ maxBodyBytes: 100, maxBufferedBodyBytes: 100 });
    const res = await call(url, "", JSON.stringify({ query: "A".repeat(200) }));
    expect(res.status).toBe(429);
    expect(((await res.json()) as { message: string }).message).toContain("exceeds the limit of 100 bytes");
  });
});

test("limits are validated once, naming each bad one", () => {
  expect(() => new RpcHandler({ services: [], limits: { maxBodyBytes: 0, bodyTimeoutMs: 1.5 } })).toThrow(
    "API limits: maxBodyBytes must be a positive integer, got 0; bodyTimeoutMs must be a positive integer, got 1.5",
  );
  expect(
    () => new RpcHandler({ services: [], limits: { maxBodyBytes: 10, maxBufferedBodyBytes: 5 } }),
  ).toThrow("maxBufferedBodyBytes (5) must be at least maxBodyBytes (10)");
});

test("a handler's ConnectError keeps its code (sanity of the gate service)", async () => {
  const service = defineService("longboat.test.v1.Fail", {
    Now: unary(pb.ReadRequest, pb.ReadResponse, () => {
      throw new ConnectError("aborted", "no");
    }),
  });
  const handler = new RpcHandler({ services: [service] });
  const res = await handler.request("/longboat.test.v1.Fail/Now", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  expect(res.status).toBe(409);
});
