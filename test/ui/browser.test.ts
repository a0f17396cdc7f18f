/**
 * The dashboard in a real browser (Debian's chromium through playwright-core) against a real
 * deployment: 3 `longboat drummer` and 4 `longboat nodehost --master` processes. The page shows
 * the hosts and shards the Drummer API reports; after `kill -9` of a NodeHost it marks the host
 * dead, shows the repair and then every shard healthy again — all without a reload.
 *
 * Skipped, with a message, only where no Chromium can be found; under CI (CI set) a missing
 * browser fails the test (.ci/run installs Debian's chromium).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { waitFor } from "../process/harness.ts";
import { track } from "../support/resources.ts";
import { Deployment, findChromium } from "./deployment.ts";

const executablePath = findChromium();
if (!executablePath) {
  const why = "no Chromium found (/usr/bin/chromium; set LONGBOAT_CHROMIUM or `apt-get install chromium`)";
  if (process.env.CI) throw new Error(`the dashboard's browser test cannot run in CI: ${why}`);
  console.warn(`test/ui/browser.test.ts skipped: ${why}`);
}

const d = new Deployment([1, 2, 3, 4, 5, 6]);
let browser: Browser;

interface Shown {
  hosts: { raft: string; state: string }[];
  shards: { id: number; health: string; members: string[] }[];
  repairs: number;
  refreshes: number;
  marker: number | undefined;
}

// Run in the page (strings: this file is type-checked without the DOM's types).
const SHOWN = `(() => ({
  hosts: [...document.querySelectorAll("tr[data-host]")].map((r) => ({ raft: r.dataset.host, state: r.dataset.state })),
  shards: [...document.querySelectorAll("#shards tr[data-shard]")].map((r) => ({
    id: Number(r.dataset.shard),
    health: r.dataset.health,
    members: [...r.querySelectorAll("li[data-replica]")].map((m) => m.textContent),
  })),
  repairs: document.querySelectorAll('tr[data-repair="1"]').length,
  refreshes: Number(document.body.dataset.refreshes ?? 0),
  marker: window.__noReload,
}))()`;
const REFRESHED = "Number(document.body.dataset.refreshes ?? 0) >= 1";
const REPLICA_ROWS = `[...document.querySelectorAll("#replicas tr[data-shard]")].map(
  (tr) => tr.dataset.shard + ":" + (tr.querySelector(".badge")?.textContent ?? ""))`;

/** What the page shows: each host row's address and state, each shard row's id and health. */
const shown = (page: Page) => page.evaluate<Shown>(SHOWN);

const enumTail = (s: unknown, prefix: string) =>
  String(s).slice(prefix.length).toLowerCase().replaceAll("_", "-");

describe.skipIf(!executablePath)("the dashboard in Chromium", () => {
  beforeAll(async () => {
    await d.up();
    browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
    track("chromium", () => browser.close());
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await d.stop();
  });

  test("shows what the drummers report; a kill -9'd NodeHost turns dead, is repaired, and all is healthy again, without a reload", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://${d.drummerApis[0]}/?refresh=0.5`);
    await page.evaluate("window.__noReload = 1");
    await page.waitForFunction(REFRESHED, null, { timeout: 30_000 });

    // The page equals the Drummer API's answers (taken right after the page's refresh).
    const hostsApi = (await d.drummers("ListNodeHosts")).nodehosts as {
      raftAddress: string;
      state: string;
    }[];
    const shardsApi = (await d.drummers("ListShards")).shards as {
      definition: { shardId: string };
      health: string;
    }[];
    const before = await shown(page);
    expect(before.hosts.map((h) => h.raft).sort()).toEqual(hostsApi.map((h) => h.raftAddress).sort());
    expect(before.hosts.map((h) => h.raft).sort()).toEqual(d.hosts.map((h) => h.raft).sort());
    expect(before.hosts.every((h) => h.state === "alive")).toBe(true);
    expect(before.shards.map((s) => s.id)).toEqual(
      shardsApi.map((s) => Number(s.definition.shardId)).sort((a, b) => a - b),
    );
    expect(before.shards.map((s) => s.health)).toEqual(
      shardsApi.map((s) => enumTail(s.health, "SHARD_HEALTH_")),
    );
    expect(before.shards.every((s) => s.health === "ok" && s.members.length === 3)).toBe(true);

    // kill -9 a NodeHost that holds replicas.
    const victim = d.hosts.find((h) => before.shards.some((s) => s.members.some((m) => m.includes(h.raft))))!;
    await d.kill(victim);
    // Dead (after the drummers' 3 s dead timeout), the repair shown, then healthy without it.
    let sawRepair = false;
    await waitFor(
      async () => {
        const now = await shown(page);
        sawRepair ||= now.repairs > 0;
        return now.hosts.some((h) => h.raft === victim.raft && h.state === "dead");
      },
      60_000,
      "the page marking the killed NodeHost dead",
    );
    await waitFor(
      async () => {
        const now = await shown(page);
        sawRepair ||= now.repairs > 0;
        return (
          sawRepair &&
          now.shards.length === d.shardIds.length &&
          now.shards.every((s) => s.health === "ok" && s.members.every((m) => !m.includes(victim.raft)))
        );
      },
      120_000,
      "the page showing the repair and then every shard healthy without the killed NodeHost",
    );
    const after = await shown(page);
    expect(after.marker).toBe(1); // the same document: no reload happened
    expect(after.refreshes).toBeGreaterThan(before.refreshes);
    expect(await d.allOk(victim.raft)).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  test("a NodeHost's own page lists the replicas its Status reports", async () => {
    const host = d.hosts.find((h) => h.proc.proc !== null)!;
    const page = await browser.newPage({ bypassCSP: true });
    await page.goto(`http://${host.api}/?refresh=0.5`);
    await page.waitForFunction(REFRESHED, null, { timeout: 30_000 });
    const status = await d.rpc(host.api, "nodehost", "Status");
    const want = ((status.shards ?? []) as { shardId: string; role: string }[])
      .map((s) => `${s.shardId}:${enumTail(s.role, "ROLE_")}`)
      .sort();
    const rows = await page.evaluate<string[]>(REPLICA_ROWS);
    // Roles can change between the two reads (an election); the shards cannot.
    expect(rows.map((r) => r.split(":")[0]).sort()).toEqual(want.map((r) => r.split(":")[0]).sort());
    expect(rows.length).toBeGreaterThan(0);
    // Sorting by a column happens in the browser, without a request.
    await page.click('button[data-sort="shardId"]');
    const desc = (await page.evaluate<string[]>(REPLICA_ROWS)).map((r) => Number(r.split(":")[0]));
    expect(desc).toEqual([...desc].sort((a, b) => b - a));
    await page.close();
  }, 60_000);
});
