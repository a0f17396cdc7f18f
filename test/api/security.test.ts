// The API's refusals: a client never names a server path; tokens (constant-time, counted,
// logged with the peer, rate-limited); open health endpoints and a metrics token; TLS with and
// without client certificates, an expired certificate, a certificate from another CA.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, type ConnectError as ClientError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createNodeHostApi } from "../../src/api/app.ts";
import { ApiError, NodeHostClient } from "../../src/api/client.ts";
import { LOG_INTERVAL_MS } from "../../src/api/rpc/auth.ts";
import type { ApiServer } from "../../src/api/server.ts";
import { realEnv } from "../../src/env.ts";
import { makeTestPki, type TestPki } from "./certs.ts";
import { service } from "./clients.ts";
import { FakeNodeHost } from "./fake.ts";
import { b64, connectError, postJson } from "./helpers.ts";
import { serveOnTestPort } from "./serve.ts";

const servers: ApiServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});
async function serve(...args: Parameters<typeof serveOnTestPort>): Promise<ApiServer> {
  const server = await serveOnTestPort(...args);
  servers.push(server);
  return server;
}

describe("snapshot export: no server path from a client", () => {
  const api = (dir?: string) => {
    const fake = new FakeNodeHost().addShard(1);
    return { fake, app: createNodeHostApi({ nodehost: fake, ...(dir ? { snapshotExportDir: dir } : {}) }) };
  };

  test("export without an operator's export directory is refused, and nothing is exported", async () => {
    const { fake, app } = api();
    const e = await connectError(await postJson(app, "RequestSnapshot", { shardId: "1", export: true }));
    expect(e).toMatchObject({ code: "failed_precondition" });
    expect(e.message).toContain("--snapshot-export-dir");
    expect(fake.calls).toEqual([]);
  });

  test("an exportPath is refused when no export directory is set", async () => {
    const { fake, app } = api();
    const res = await postJson(app, "RequestSnapshot", { shardId: "1", exportPath: "/tmp" });
    expect((await connectError(res)).code).toBe("failed_precondition");
    expect(fake.calls).toEqual([]);
  });

  test("an exportPath outside the export directory is permission_denied, also through ..", async () => {
    const { fake, app } = api("/srv/exports");
    for (const path of ["/etc", "/srv/exports/../../etc", "/srv/exports/sub", "relative"]) {
      const res = await postJson(app, "RequestSnapshot", { shardId: "1", exportPath: path });
      const e = await connectError(res);
      expect(e.code).toBe("permission_denied");
      expect(e.message).not.toContain("/srv/exports"); // the server's path is not revealed
    }
    expect(fake.calls).toEqual([]);
  });

  test("export goes into the operator's directory; exportPath naming that directory is accepted", async () => {
    const { fake, app } = api("/srv/exports");
    expect((await postJson(app, "RequestSnapshot", { shardId: "1", export: true })).status).toBe(200);
    const same = { shardId: "1", exportPath: "/srv/exports/" };
    expect((await postJson(app, "RequestSnapshot", same)).status).toBe(200);
    expect(fake.calls).toEqual(["snapshot:/srv/exports:-:1", "snapshot:/srv/exports:-:1"]);
  });

  test("a snapshot without export touches no directory", async () => {
    const { fake, app } = api("/srv/exports");
    expect((await postJson(app, "RequestSnapshot", { shardId: "1" })).status).toBe(200);
    expect(fake.calls).toEqual(["snapshot::-:1"]);
  });
});

describe("tokens", () => {
  let clock = 0;
  const logged: Record<string, unknown>[] = [];
  let base: string;
  const env = { nowMs: () => clock, setTimer: realEnv().setTimer };

  beforeAll(async () => {
    const app = createNodeHostApi({
      nodehost: new FakeNodeHost().addShard(1),
      apiToken: "api-token",
      metricsToken: "metrics-token",
      env,
      log: (e) => logged.push(e),
    });
    base = `http://127.0.0.1:${(await serve(app)).port}`;
  });

  const status = (token?: string) =>
    fetch(`${base}/longboat.nodehost.v1.NodeHostService/Status`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: "{}",
    });
  const metric = async (name: string) => {
    const text = await (
      await fetch(`${base}/metrics`, { headers: { authorization: "Bearer metrics-token" } })
    ).text();
    const line = text.split("\n").find((l) => l.startsWith(name));
    return line === undefined ? 0 : Number(line.split(" ").at(-1));
  };

  test("a wrong token is refused, counted, and logged with the peer address at most once per interval", async () => {
    const before = await metric('longboat_api_auth_failures_total{reason="wrong"}');
    logged.length = 0;
    clock += LOG_INTERVAL_MS * 2;
    for (let i = 0; i < 3; i++) expect((await status("guess")).status).toBe(401);
    expect(await metric('longboat_api_auth_failures_total{reason="wrong"}')).toBe(before + 3);
    const lines = logged.filter((e) => e.event === "api.auth_failed");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "warn", reason: "wrong", suppressedSinceLast: 0 });
    expect(String(lines[0]!.peer)).toMatch(/^127\.0\.0\.1:\d+$/);
    clock += LOG_INTERVAL_MS;
    expect((await status()).status).toBe(401);
    const next = logged.filter((e) => e.event === "api.auth_failed");
    expect(next).toHaveLength(2);
    expect(next[1]).toMatchObject({ reason: "missing", suppressedSinceLast: 2 });
  });

  test("the right token is served", async () => {
    expect((await status("api-token")).status).toBe(200);
  });

  test("/healthz and /readyz are open; /metrics takes the metrics token or the API token, the API not the metrics token", async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const withMetrics = await fetch(`${base}/metrics`, {
      headers: { authorization: "Bearer metrics-token" },
    });
    expect(withMetrics.status).toBe(200);
    const withApi = await fetch(`${base}/metrics`, { headers: { authorization: "Bearer api-token" } });
    expect(withApi.status).toBe(200);
    expect((await status("metrics-token")).status).toBe(401);
  });

  test("/readyz is 503 naming the shards without a leader", async () => {
    const fake = new FakeNodeHost().addShard(1).addShard(2, { leaderId: 0 });
    const app = createNodeHostApi({ nodehost: fake });
    const res = await app.request("/readyz");
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, shardsWithoutLeader: [2] });
  });
});

describe("TLS", () => {
  let pki: TestPki;
  // openssl runs a dozen times: seconds on a busy machine.
  beforeAll(() => {
    pki = makeTestPki();
  }, 30_000);
  afterAll(() => pki.remove());

  const api = () => createNodeHostApi({ nodehost: new FakeNodeHost().addShard(1) });
  const address = (s: ApiServer) => `127.0.0.1:${s.port}`;

  test("cmd's client speaks https to a TLS API and checks the server against --tls-ca", async () => {
    const server = await serve(api(), { tls: { cert: pki.leaf.cert, key: pki.leaf.key } });
    const ok = new NodeHostClient({ addresses: [address(server)], tls: { ca: pki.ca.cert } });
    expect((await ok.status()).raftAddress).toBe("h1:7001");
    const otherCa = new NodeHostClient({ addresses: [address(server)], tls: { ca: pki.otherCa.cert } });
    const refused = await otherCa.status().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).code).toBe("failed_precondition"); // not retried: settings must change
    expect((refused as ApiError).message).toContain("the server's certificate was refused");
    const plain = new NodeHostClient({ addresses: [address(server)], timeoutMs: 1000 });
    expect(await plain.status().catch((e: unknown) => e)).toBeInstanceOf(ApiError);
  });

  test("an expired server certificate is refused by the client, naming the reason", async () => {
    const server = await serve(api(), { tls: { cert: pki.expired.cert, key: pki.expired.key } });
    const client = new NodeHostClient({ addresses: [address(server)], tls: { ca: pki.ca.cert } });
    const error = (await client.status().catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.code).toBe("failed_precondition");
    expect(error.message).toContain("certificate has expired");
    expect(error.message).toContain("CERT_HAS_EXPIRED");
  });

  test("--insecure-skip-verify accepts any certificate (development only)", async () => {
    const server = await serve(api(), { tls: { cert: pki.otherLeaf.cert, key: pki.otherLeaf.key } });
    const client = new NodeHostClient({ addresses: [address(server)], tls: { insecureSkipVerify: true } });
    expect((await client.status()).raftAddress).toBe("h1:7001");
  });

  test("gRPC over TLS negotiates HTTP/2 by ALPN (connect-node)", async () => {
    const server = await serve(api(), { tls: { cert: pki.leaf.cert, key: pki.leaf.key } });
    const transport = createGrpcTransport({
      baseUrl: `https://${address(server)}`,
      nodeOptions: { ca: pki.ca.cert },
    });
    const client = createClient(service("longboat.nodehost.v1.NodeHostService"), transport) as unknown as {
      status(r: object): Promise<{ raftAddress: string }>;
    };
    expect((await client.status({})).raftAddress).toBe("h1:7001");
  });

  describe("client certificates (--api-tls-ca)", () => {
    let server: ApiServer;
    const app = api();
    beforeAll(async () => {
      server = await serve(app, { tls: { cert: pki.leaf.cert, key: pki.leaf.key, ca: pki.ca.cert } });
    });
    const handshakeRefusals = async () => {
      const text = await (await app.request("/metrics")).text();
      const line = text
        .split("\n")
        .find((l) => l.startsWith('longboat_api_refused_total{reason="tls_handshake"}'));
      return line === undefined ? 0 : Number(line.split(" ").at(-1));
    };
    const call = async (tls: { cert?: Buffer; key?: Buffer }) => {
      const refusalsBefore = await handshakeRefusals();
      return new NodeHostClient({
        addresses: [address(server)],
        tls: { ca: pki.ca.cert, ...tls },
        timeoutMs: 3000,
      })
        .status()
        .then(() => "served")
        .catch(async (e: unknown) => {
          // A handshake the server ends by a reset is, for the client, a connection that failed
          // at an unknown point: unavailable or unknown, never served. The client retries those
          // for a Status until its budget ends; on a loaded machine its last attempt can be cut
          // by the deadline instead, so a deadline counts as refused only if the server did
          // refuse a handshake meanwhile.
          expect(e).toBeInstanceOf(ApiError);
          const code = (e as ApiError).code;
          if (code === "deadline_exceeded") expect(await handshakeRefusals()).toBeGreaterThan(refusalsBefore);
          else expect(["unavailable", "unknown"]).toContain(code);
          return "refused";
        });
    };

    test("a certificate the CA signed is served", async () => {
      expect(await call({ cert: pki.leaf.cert, key: pki.leaf.key })).toBe("served");
    });
    test("no client certificate is refused", async () => {
      expect(await call({})).toBe("refused");
    });
    test("a client certificate from another CA is refused", async () => {
      expect(await call({ cert: pki.otherLeaf.cert, key: pki.otherLeaf.key })).toBe("refused");
    });
    test("an expired client certificate is refused, and the refusal is counted", async () => {
      const before = await handshakeRefusals();
      expect(await call({ cert: pki.expired.cert, key: pki.expired.key })).toBe("refused");
      expect(await handshakeRefusals()).toBeGreaterThan(before);
    });
  });
});

test("a gRPC client hears unauthenticated for a wrong token (trailers-only answer)", async () => {
  const server = await serve(createNodeHostApi({ nodehost: new FakeNodeHost().addShard(1), apiToken: "t" }));
  const client = createClient(
    service("longboat.nodehost.v1.NodeHostService"),
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${server.port}`,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", "Bearer nope");
          return next(req);
        },
      ],
    }),
  ) as unknown as { read(r: object): Promise<unknown> };
  const error = (await client
    .read({ shardId: 1n, query: Buffer.from(b64("k")) })
    .catch((e: unknown) => e)) as ClientError;
  expect(error.code).toBe(Code.Unauthenticated);
  expect(error.rawMessage).toBe("wrong bearer token");
});
