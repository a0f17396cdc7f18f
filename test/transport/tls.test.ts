// Mutual TLS: certificates are generated per run with openssl into a temp dir.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { realEnv } from "../../src/env.ts";
import { Http2Transport, type TlsFiles } from "../../src/transport/http2.ts";
import { MapRegistry } from "../../src/transport/registry.ts";
import { localAddress, Recorder, replicate, tracked, waitFor } from "./helpers.ts";
import { PROCESS_TEST_WALL_MS } from "../support/limits.ts";

setDefaultTimeout(PROCESS_TEST_WALL_MS);
let dir: string;
let good: TlsFiles;
let rogue: TlsFiles;

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

/** A CA (name) and a leaf certificate for 127.0.0.1 signed by it. */
function makeCa(name: string): TlsFiles {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}-ca`,
    "-keyout",
    `${name}-ca.key`,
    "-out",
    `${name}-ca.pem`,
  );
  writeFileSync(join(dir, `${name}.ext`), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    `/CN=${name}-node`,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
  );
  openssl(
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${name}-ca.pem`,
    "-CAkey",
    `${name}-ca.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.pem`,
  );
  return {
    caFile: join(dir, `${name}-ca.pem`),
    certFile: join(dir, `${name}.pem`),
    keyFile: join(dir, `${name}.key`),
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "longboat-tls-"));
  good = makeCa("good");
  rogue = makeCa("rogue");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function node(registry: MapRegistry, tls: TlsFiles, rec = new Recorder()) {
  const t = tracked(
    new Http2Transport({
      address: localAddress(),
      deploymentId: 1,
      registry,
      env: realEnv(),
      tls,
      snapshotDir: mkdtempSync(join(dir, "snap-")),
      backoffInitialMs: 10,
      backoffMaxMs: 20,
    }),
  );
  await t.start(rec);
  return { t, rec };
}

test("peers with certificates from the shared CA exchange messages over mutual TLS", async () => {
  const registry = new MapRegistry();
  const a = await node(registry, good);
  const b = await node(registry, good);
  registry.add(1, 2, b.t.address);
  a.t.send(replicate(2, 1));
  await waitFor(() => b.rec.messages.length === 1, "message delivered over TLS");
  await a.t.stop();
  await b.t.stop();
});

test("a peer whose certificate comes from another CA is refused", async () => {
  const registry = new MapRegistry();
  const b = await node(registry, good);
  const mixed: TlsFiles = { caFile: good.caFile, certFile: rogue.certFile, keyFile: rogue.keyFile };
  const intruder = await node(registry, mixed);
  registry.add(1, 2, b.t.address);
  for (let i = 0; i < 5; i++) {
    intruder.t.send(replicate(2, i + 1));
    await waitFor(
      () => intruder.t.stats().connectFailures + intruder.t.stats().messagesDroppedUnreachable > i,
      "refusal",
    );
  }
  expect(b.rec.messages.length).toBe(0);
  expect(b.t.stats().batchesReceived).toBe(0);
  await intruder.t.stop();
  await b.t.stop();
});

test("a cleartext peer cannot talk to a TLS NodeHost", async () => {
  const registry = new MapRegistry();
  const b = await node(registry, good);
  const plain = tracked(
    new Http2Transport({
      address: localAddress(),
      deploymentId: 1,
      registry,
      env: realEnv(),
      snapshotDir: mkdtempSync(join(dir, "snap-")),
    }),
  );
  await plain.start(new Recorder());
  registry.add(1, 2, b.t.address);
  plain.send(replicate(2, 1));
  await waitFor(() => plain.stats().messagesDroppedUnreachable > 0, "cleartext connection failed");
  expect(b.rec.messages.length).toBe(0);
  await plain.stop();
  await b.t.stop();
});

test("a missing TLS file is a configuration error naming the file", () => {
  expect(
    () =>
      new Http2Transport({
        address: localAddress(),
        deploymentId: 1,
        registry: new MapRegistry(),
        env: realEnv(),
        tls: { caFile: "/nonexistent/ca.pem", certFile: "x", keyFile: "y" },
        snapshotDir: dir,
      }),
  ).toThrow("/nonexistent/ca.pem");
});
