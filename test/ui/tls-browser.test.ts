/**
 * The dashboard over TLS in a real browser (Debian's chromium through playwright-core): a
 * `longboat drummer --api-tls-cert --api-tls-key` and a `longboat nodehost --master
 * --master-tls-ca --api-tls-cert --api-tls-key` with one shard, certificates made by openssl
 * in the test. Chromium trusts only that certificate's key (--ignore-certificate-errors-spki-list,
 * not every certificate error): the drummer's and the NodeHost's pages load over https, show
 * the host and the shard, and every data call the pages make goes to their https origin; a
 * server with a certificate the browser was not told about is refused.
 *
 * Skipped, with a message, only where no Chromium can be found (CI fails instead), like
 * test/ui/browser.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { createNodeHostApi } from "../../src/api/app.ts";
import { serveApi } from "../../src/api/server.ts";
import { drummerCaller } from "../../src/drummer/client.ts";
import { makeTestPki, type TestPki } from "../api/certs.ts";
import { FakeNodeHost } from "../api/fake.ts";
import { BIN, ensureBinary, waitFor } from "../process/harness.ts";
import { PROCESS_TEST_WALL_MS, REAL_WAIT_MS } from "../support/limits.ts";
import { freePort, withFreePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { findChromium } from "./deployment.ts";

const executablePath = findChromium();
if (!executablePath) {
  const why = "no Chromium found (/usr/bin/chromium; set LONGBOAT_CHROMIUM or `apt-get install chromium`)";
  if (process.env.CI) throw new Error(`the dashboard's TLS browser test cannot run in CI: ${why}`);
  console.warn(`test/ui/tls-browser.test.ts skipped: ${why}`);
}

const dir = mkdtempSync(join(tmpdir(), "longboat-ui-tls-"));
const procs: ReturnType<typeof Bun.spawn>[] = [];
let pki: TestPki;
let browser: Browser | undefined;
const drummerApi = `127.0.0.1:${freePort()}`;
const hostApi = `127.0.0.1:${freePort()}`;
const hostRaft = `127.0.0.1:${freePort()}`;

async function killAll(): Promise<void> {
  for (const p of procs) {
    p.kill("SIGKILL");
    await p.exited;
  }
  procs.length = 0;
}
track("dashboard TLS processes", killAll);

function start(name: string, args: string[]): void {
  procs.push(Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: Bun.file(join(dir, `${name}.log`)) }));
}

/** base64 of the SHA-256 of a certificate's public key (SubjectPublicKeyInfo, DER): Chromium's pin. */
function spkiHash(certFile: string): string {
  const pub = execFileSync("openssl", ["x509", "-in", certFile, "-noout", "-pubkey"]);
  const der = execFileSync("openssl", ["pkey", "-pubin", "-outform", "DER"], { input: pub });
  return new Bun.CryptoHasher("sha256").update(der).digest("base64");
}

describe.skipIf(!executablePath)("the dashboard over TLS in Chromium", () => {
  beforeAll(async () => {
    ensureBinary();
    pki = makeTestPki();
    const tls = ["--api-tls-cert", pki.leaf.certFile, "--api-tls-key", pki.leaf.keyFile];
    start("drummer", [
      "drummer",
      "--id",
      "1",
      "--peers",
      `1=127.0.0.1:${freePort()}`,
      "--api-address",
      drummerApi,
      "--data-dir",
      join(dir, "drummer"),
      "--rtt-ms",
      "20",
      "--dead-timeout",
      "3s",
      "--report-interval",
      "500ms",
      ...tls,
    ]);
    start("nodehost", [
      "nodehost",
      "--raft-address",
      hostRaft,
      "--api-address",
      hostApi,
      "--data-dir",
      join(dir, "host"),
      "--rtt-ms",
      "20",
      "--master",
      drummerApi,
      "--master-tls-ca",
      pki.ca.certFile,
      ...tls,
    ]);
    const call = drummerCaller(undefined, undefined, { tls: { ca: pki.ca.cert } });
    const ask = (method: "GetDeployment" | "ListNodeHosts" | "ListShards", body = {}) =>
      call(drummerApi, method, body, { timeoutMs: 2000 });
    await waitFor(
      () =>
        ask("ListNodeHosts").then(
          (r) => (r.nodehosts as { raftAddress: string }[]).some((h) => h.raftAddress === hostRaft),
          () => false,
        ),
      REAL_WAIT_MS,
      "the NodeHost reporting to the drummer over https",
    );
    await call(drummerApi, "CreateShard", { shardId: 1, app: "kv", replicaCount: 1 }, { timeoutMs: 5000 });
    await call(drummerApi, "Bootstrap", {}, { timeoutMs: 5000 });
    await waitFor(
      () =>
        ask("ListShards").then(
          (r) => (r.shards as { health: number }[]).every((s) => s.health === 1),
          () => false,
        ),
      REAL_WAIT_MS,
      "shard 1 placed and healthy",
    );
    browser = await chromium.launch({
      executablePath,
      headless: true,
      // Trust exactly the test certificate's key; every other certificate error stays an error.
      args: ["--no-sandbox", `--ignore-certificate-errors-spki-list=${spkiHash(pki.leaf.certFile)}`],
    });
    track("chromium (TLS test)", () => browser?.close());
  }, PROCESS_TEST_WALL_MS);

  afterAll(async () => {
    await browser?.close();
    await killAll();
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
  }, PROCESS_TEST_WALL_MS); // Chromium and two processes: more than bun's 5 s hook default under load

  test(
    "the drummers' page loads over https, shows the NodeHost and the shard, and makes its data calls over https",
    async () => {
      const page = await browser!.newPage({ bypassCSP: true });
      const calls: string[] = [];
      page.on("request", (r) => {
        if (r.method() === "POST" || r.url().includes("/metrics")) calls.push(r.url());
      });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      const res = await page.goto(`https://${drummerApi}/?refresh=0.5`);
      expect(res?.status()).toBe(200);
      await page.waitForFunction("Number(document.body.dataset.refreshes ?? 0) >= 2", null, {
        timeout: REAL_WAIT_MS,
      });
      const shown = await page.evaluate<{ hosts: string[]; shards: string[] }>(`(() => ({
      hosts: [...document.querySelectorAll("tr[data-host]")].map((r) => r.dataset.host + "=" + r.dataset.state),
      shards: [...document.querySelectorAll("#shards tr[data-shard]")].map((r) => r.dataset.shard + "=" + r.dataset.health),
    }))()`);
      expect(shown.hosts).toEqual([`${hostRaft}=alive`]);
      expect(shown.shards).toEqual(["1=ok"]);
      expect(calls.length).toBeGreaterThan(0);
      expect(calls.filter((u) => !u.startsWith(`https://${drummerApi}/`))).toEqual([]);
      expect(calls.some((u) => u.endsWith("/longboat.drummer.v1.DrummerService/ListShards"))).toBe(true);
      expect(errors).toEqual([]);
      await page.close();
    },
    REAL_WAIT_MS * 2,
  );

  test(
    "a NodeHost's page over https lists its replica and reads /metrics over https",
    async () => {
      const page = await browser!.newPage({ bypassCSP: true });
      const calls: string[] = [];
      page.on("request", (r) => {
        if (r.method() === "POST" || r.url().includes("/metrics")) calls.push(r.url());
      });
      await page.goto(`https://${hostApi}/?refresh=0.5`);
      await page.waitForFunction(
        `document.querySelectorAll('#charts figure[data-series]').length === 3`,
        null,
        { timeout: REAL_WAIT_MS },
      );
      const rows = await page.evaluate<string[]>(
        `[...document.querySelectorAll("#replicas tr[data-shard]")].map((r) => r.dataset.shard)`,
      );
      expect(rows).toEqual(["1"]);
      expect(calls.some((u) => u === `https://${hostApi}/metrics`)).toBe(true);
      expect(calls.some((u) => u.endsWith("/longboat.nodehost.v1.NodeHostService/Status"))).toBe(true);
      expect(calls.filter((u) => !u.startsWith(`https://${hostApi}/`))).toEqual([]);
      await page.close();
    },
    REAL_WAIT_MS * 2,
  );

  test(
    "a certificate the browser was not told to trust is still refused (not every error is ignored)",
    async () => {
      const other = await withFreePort((port) =>
        serveApi(createNodeHostApi({ nodehost: new FakeNodeHost("h1:7001").addShard(1) }), {
          hostname: "127.0.0.1",
          port,
          tls: { cert: pki.otherLeaf.cert, key: pki.otherLeaf.key },
        }),
      );
      track("other-CA API server", () => other.stop());
      const page = await browser!.newPage();
      const failed = await page.goto(`https://127.0.0.1:${other.port}/`).then(
        () => "",
        (e: Error) => e.message,
      );
      expect(failed).toContain("ERR_CERT_AUTHORITY_INVALID");
      await page.close();
      await other.stop();
    },
    REAL_WAIT_MS,
  );
});
