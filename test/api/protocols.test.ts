// Connect, gRPC and gRPC-Web on one port, over HTTP/1.1 and h2c, called by clients we did not
// write: @connectrpc/connect-node's transports, and `buf curl` (Go's HTTP/2 stack) through
// gRPC server reflection without the schema.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError as ClientError, createClient, type Interceptor } from "@connectrpc/connect";
import { createNodeHostApi } from "../../src/api/app.ts";
import { ConnectError } from "../../src/api/errors.ts";
import { RpcHandler } from "../../src/api/rpc/router.ts";
import { bidiStreaming, defineService, serverStreaming } from "../../src/api/rpc/service.ts";
import type { ApiServer } from "../../src/api/server.ts";
import { longboat } from "../../src/pb/longboat.js";
import { CLIENT_KINDS, service } from "./clients.ts";
import { FakeNodeHost } from "./fake.ts";
import { serveOnTestPort } from "./serve.ts";

const pb = longboat.nodehost.v1;
const TOKEN = "proto-token";
/** A test that starts a process: the process start alone can take seconds on a busy machine. */
const SPAWN_TIMEOUT_MS = 30_000;
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

/** Count(query n) streams "0".."n-1"; query "fail" streams two, then fails. Echo answers each request. */
const streamService = defineService("longboat.test.v1.StreamService", {
  Count: serverStreaming<{ query: Uint8Array }>(pb.ReadRequest, pb.ReadResponse, async function* (req) {
    const q = text(req.query);
    const n = q === "fail" ? 2 : Number(q);
    for (let i = 0; i < n; i++) yield { result: bytes(String(i)) };
    if (q === "fail") throw new ConnectError("failed_precondition", "counting failed after 2");
  }),
  Echo: bidiStreaming<{ query: Uint8Array }>(pb.ReadRequest, pb.ReadResponse, async function* (requests) {
    for await (const r of requests) yield { result: bytes(`echo:${text(r.query)}`) };
  }),
});

let nodehostServer: ApiServer;
let streamServer: ApiServer;
let nodehostUrl: string;
let streamUrl: string;

beforeAll(async () => {
  const fake = new FakeNodeHost().addShard(1);
  nodehostServer = await serveOnTestPort(createNodeHostApi({ nodehost: fake, apiToken: TOKEN }));
  streamServer = await serveOnTestPort(new RpcHandler({ services: [streamService] }));
  nodehostUrl = `http://127.0.0.1:${nodehostServer.port}`;
  streamUrl = `http://127.0.0.1:${streamServer.port}`;
});
afterAll(async () => {
  await nodehostServer.stop();
  await streamServer.stop();
});

const withToken: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${TOKEN}`);
  return next(req);
};

// Clients built from descriptors at run time: their messages are inspected freely.
// biome-ignore lint/suspicious/noExplicitAny: see above
type Msg = any;
interface NodeHostCalls {
  status(req: object): Promise<Msg>;
  propose(req: object): Promise<Msg>;
  read(req: object): Promise<Msg>;
}
interface StreamCalls {
  count(req: object): AsyncIterable<Msg>;
  echo(requests: AsyncIterable<object>): AsyncIterable<Msg>;
}

for (const kind of CLIENT_KINDS) {
  describe(kind.name, () => {
    const nodehost = (token = true) =>
      createClient(
        service("longboat.nodehost.v1.NodeHostService"),
        kind.transport(nodehostUrl, token ? { interceptors: [withToken] } : {}),
      ) as unknown as NodeHostCalls;
    const streams = () =>
      createClient(
        service("longboat.test.v1.StreamService"),
        kind.transport(streamUrl),
      ) as unknown as StreamCalls;

    test("a unary call answers (Status, Propose)", async () => {
      const client = nodehost();
      const status = await client.status({});
      expect(status.raftAddress).toBe("h1:7001");
      expect(status.shards[0].shardId).toBe(1n);
      const res = await client.propose({ shardId: 1n, command: bytes("hello") });
      expect(res.value).toBe(5n);
      expect(text(res.data)).toBe("hello");
    });

    test("an error arrives with its code and message", async () => {
      const error = await nodehost()
        .read({ shardId: 99n })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ClientError);
      expect((error as ClientError).code).toBe(Code.NotFound);
      expect((error as ClientError).rawMessage).toContain("shard 99");
    });

    test("a missing token is unauthenticated", async () => {
      const error = await nodehost(false)
        .status({})
        .catch((e: unknown) => e);
      expect((error as ClientError).code).toBe(Code.Unauthenticated);
      expect((error as ClientError).rawMessage).toContain("missing bearer token");
    });

    test("a server stream delivers every message in order", async () => {
      const got: string[] = [];
      for await (const m of streams().count({ query: bytes("5") })) got.push(text(m.result));
      expect(got).toEqual(["0", "1", "2", "3", "4"]);
    });

    test("a server stream that fails delivers its messages, then the error", async () => {
      const got: string[] = [];
      const error = await (async () => {
        for await (const m of streams().count({ query: bytes("fail") })) got.push(text(m.result));
      })().catch((e: unknown) => e);
      expect(got).toEqual(["0", "1"]);
      expect((error as ClientError).code).toBe(Code.FailedPrecondition);
      expect((error as ClientError).rawMessage).toBe("counting failed after 2");
    });

    if (kind.bidi) {
      test("a bidirectional stream answers each request", async () => {
        async function* requests() {
          for (const q of ["a", "b", "c"]) yield { query: bytes(q) };
        }
        const got: string[] = [];
        for await (const m of streams().echo(requests())) got.push(text(m.result));
        expect(got).toEqual(["echo:a", "echo:b", "echo:c"]);
      });
    }
  });
}

describe("buf curl (Go's HTTP/1.1 and HTTP/2) through gRPC server reflection, without the schema", () => {
  const BUF = bufBinary();
  const curl = async (args: string[]) => {
    // The token goes with the calls (-H) and with the reflection requests (--reflect-header).
    const auth = `authorization: Bearer ${TOKEN}`;
    const p = Bun.spawn([BUF, "curl", "-H", auth, "--reflect-header", auth, ...args], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { stdout, stderr, code };
  };

  test(
    "lists the services",
    async () => {
      const r = await curl(["--protocol", "grpc", "--http2-prior-knowledge", "--list-services", nodehostUrl]);
      expect(r.stderr).toEqual("");
      expect(r.stdout.trim().split("\n").sort()).toEqual([
        "grpc.reflection.v1.ServerReflection",
        "longboat.nodehost.v1.NodeHostService",
      ]);
    },
    SPAWN_TIMEOUT_MS,
  );

  for (const [protocol, http2] of [
    ["grpc", true],
    ["connect", true],
    ["connect", false],
    ["grpcweb", false],
  ] as const) {
    test(
      `calls Read with --protocol ${protocol} over ${http2 ? "h2c" : "HTTP/1.1"}`,
      async () => {
        const r = await curl([
          "--protocol",
          protocol,
          ...(http2 ? ["--http2-prior-knowledge"] : []),
          "-d",
          JSON.stringify({ shardId: "1", query: Buffer.from("k").toString("base64") }),
          `${nodehostUrl}/longboat.nodehost.v1.NodeHostService/Read`,
        ]);
        expect(r.stderr).toEqual("");
        expect(JSON.parse(r.stdout)).toEqual({ result: Buffer.from("read:k").toString("base64") });
      },
      SPAWN_TIMEOUT_MS,
    );
  }

  test(
    "an error exits non-zero with the code and message",
    async () => {
      const r = await curl([
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "-d",
        '{"shardId":"99"}',
        `${nodehostUrl}/longboat.nodehost.v1.NodeHostService/Read`,
      ]);
      expect(r.code).not.toBe(0);
      expect(JSON.parse(r.stderr)).toMatchObject({ code: "not_found" });
    },
    SPAWN_TIMEOUT_MS,
  );
});

/**
 * The platform's buf executable from @bufbuild/buf's optional dependency: node_modules/.bin/buf
 * is a Node shim that costs a Node start (over a second on a busy machine) per call.
 */
function bufBinary(): string {
  const scope = join(import.meta.dir, "../../node_modules/@bufbuild");
  for (const name of readdirSync(scope)) {
    const bin = join(scope, name, "bin/buf");
    if (name.startsWith("buf-") && existsSync(bin)) return bin;
  }
  return join(import.meta.dir, "../../node_modules/.bin/buf");
}
