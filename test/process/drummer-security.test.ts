// The Drummer API's token and TLS through the compiled binary: `longboat drummer --api-token
// --api-tls-cert --api-tls-key` serves https and refuses calls without the token; a
// `nodehost --master --master-token --master-tls-ca` reports to it (it shows in ListNodeHosts),
// and a NodeHost with the wrong token never does and says why in its log.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drummerCaller } from "../../src/drummer/client.ts";
import { makeTestPki, type TestPki } from "../api/certs.ts";
import { PROCESS_TEST_WALL_MS, REAL_WAIT_MS } from "../support/limits.ts";
import { freePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { BIN, ensureBinary, waitFor } from "./harness.ts";

const TOKEN = "drummer-secret";
const dir = mkdtempSync(join(tmpdir(), "longboat-drummer-sec-"));
const procs: { proc: ReturnType<typeof Bun.spawn>; log: () => string }[] = [];
let pki: TestPki;
let api = "";
const hosts: { raft: string; log: () => string }[] = [];

function start(args: string[]): () => string {
  const p = Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: "pipe" });
  let text = "";
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of p.stderr as ReadableStream<Uint8Array>) {
      text = (text + decoder.decode(chunk)).slice(-50_000);
    }
  })();
  const log = () => text;
  procs.push({ proc: p, log });
  return log;
}

async function killAll(): Promise<void> {
  for (const p of procs) {
    p.proc.kill("SIGKILL");
    await p.proc.exited;
  }
  procs.length = 0;
}
track("drummer security process test", killAll);

beforeAll(async () => {
  ensureBinary();
  pki = makeTestPki();
  api = `127.0.0.1:${freePort()}`;
  start([
    "drummer",
    "--id",
    "1",
    "--peers",
    `1=127.0.0.1:${freePort()}`,
    "--api-address",
    api,
    "--data-dir",
    join(dir, "drummer"),
    "--rtt-ms",
    "20",
    "--dead-timeout",
    "3s",
    "--report-interval",
    "500ms",
    "--api-token",
    TOKEN,
    "--api-tls-cert",
    pki.leaf.certFile,
    "--api-tls-key",
    pki.leaf.keyFile,
  ]);
  for (const token of [TOKEN, "wrong-token"]) {
    const raft = `127.0.0.1:${freePort()}`;
    const log = start([
      "nodehost",
      "--raft-address",
      raft,
      "--api-address",
      `127.0.0.1:${freePort()}`,
      "--data-dir",
      join(dir, `host-${hosts.length}`),
      "--rtt-ms",
      "20",
      "--master",
      api,
      "--master-token",
      token,
      "--master-tls-ca",
      pki.ca.certFile,
    ]);
    hosts.push({ raft, log });
  }
}, PROCESS_TEST_WALL_MS);

afterAll(async () => {
  await killAll();
  pki?.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe("drummer API token and TLS", () => {
  test("https with the token is served; no token is unauthenticated; plain http or another CA do not connect", async () => {
    const call = drummerCaller(undefined, undefined, { token: TOKEN, tls: { ca: pki.ca.cert } });
    await waitFor(
      () =>
        call(api, "GetDeployment", {}, { timeoutMs: 2000 }).then(
          (d) => Number(d.leaderDrummerId) === 1,
          () => false,
        ),
      REAL_WAIT_MS,
      "the drummer leading over https",
    );
    const noToken = drummerCaller(undefined, undefined, { tls: { ca: pki.ca.cert } });
    await expect(noToken(api, "GetDeployment", {}, { timeoutMs: 2000 })).rejects.toMatchObject({
      code: "unauthenticated",
    });
    const plain = drummerCaller(undefined, undefined, { token: TOKEN });
    await expect(plain(api, "GetDeployment", {}, { timeoutMs: 2000 })).rejects.toMatchObject({
      code: "unavailable",
    });
    const otherCa = drummerCaller(undefined, undefined, { token: TOKEN, tls: { ca: pki.otherCa.cert } });
    const refused = await otherCa(api, "GetDeployment", {}, { timeoutMs: 2000 }).catch((e) => e);
    expect(refused).toMatchObject({ code: "unavailable" });
    expect(String(refused.detail)).toContain("certificate was refused");
    // /healthz stays open (a load balancer's probe has no token).
    const health = await fetch(`https://${api}/healthz`, { tls: { ca: pki.ca.cert } } as RequestInit);
    expect(health.status).toBe(200);
  });

  test("nodehost --master-token --master-tls-ca reports; a wrong token is refused and logged", async () => {
    const call = drummerCaller(undefined, undefined, { token: TOKEN, tls: { ca: pki.ca.cert } });
    const listed = async () =>
      (
        (await call(api, "ListNodeHosts", {}, { timeoutMs: 2000 })).nodehosts as { raftAddress: string }[]
      ).map((h) => h.raftAddress);
    await waitFor(
      () =>
        listed().then(
          (l) => l.includes(hosts[0]!.raft),
          () => false,
        ),
      REAL_WAIT_MS,
      "the NodeHost with the token listed",
    );
    await waitFor(
      () => /"event":"master-unreachable".*unauthenticated/.test(hosts[1]!.log()),
      REAL_WAIT_MS,
      "the NodeHost with the wrong token logging that the drummer refuses it",
    );
    expect(await listed()).not.toContain(hosts[1]!.raft);
  });
});
