/**
 * `npm run screenshots`: starts a real deployment (3 drummers, 4 NodeHosts in two regions, six
 * shards; test/ui/deployment.ts), writes a little data, and takes a screenshot of each view of
 * the dashboard with Debian's chromium (playwright-core) into docs/img/:
 *   dashboard-deployment.png   the drummers' page: deployment, hosts by region, shards, decisions,
 *                              each NodeHost's live charts
 *   dashboard-host.png         the same page with one NodeHost selected (its replicas, roles, charts)
 *   dashboard-repair.png       after kill -9 of a NodeHost: dead, the repair in flight
 *   dashboard-nodehost.png     a NodeHost's own page with its live charts
 *   dashboard-phone.png        the drummers' page on a phone-sized screen
 * Needs chromium (`apt-get install chromium`, or LONGBOAT_CHROMIUM=/path/to/chrome).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { encodeKvCommand } from "../src/statemachine/kv.ts";
import { Deployment, findChromium } from "../test/ui/deployment.ts";

const root = join(import.meta.dir, "..");
const out = join(root, "docs/img");
const executablePath = findChromium();
if (!executablePath) {
  console.error("no Chromium found: apt-get install chromium, or set LONGBOAT_CHROMIUM");
  process.exit(1);
}
const build = Bun.spawnSync([process.execPath, "build.ts"], {
  cwd: root,
  stdout: "inherit",
  stderr: "inherit",
});
if (build.exitCode !== 0) process.exit(build.exitCode ?? 1);
mkdirSync(out, { recursive: true });

const d = new Deployment([1, 2, 3, 4, 5, 6]);
const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
try {
  console.log("starting 3 drummers and 4 NodeHosts…");
  await d.up();
  // The NodeHost leading the most shards: its page is the one shown, and the writes go to it.
  const roles = await Promise.all(
    d.hosts.map(async (h) => ((await d.rpc(h.api, "nodehost", "Status")).shards ?? []) as { role: string }[]),
  );
  const leading = roles.map((r) => r.filter((x) => x.role === "ROLE_LEADER").length);
  const busy = d.hosts[leading.indexOf(Math.max(...leading))]!;
  // A few writes, so the indexes and the charts move (bounded: 60 rounds).
  let writing = true;
  const writer = (async () => {
    for (let i = 0; i < 60 && writing; i++) {
      for (const shardId of d.shardIds) {
        const host = busy;
        const put = encodeKvCommand({ op: "put", key: `k${i}`, value: new TextEncoder().encode(`v${i}`) });
        const command = Buffer.from(put).toString("base64");
        await d.rpc(host.api, "nodehost", "Propose", { shardId, command, timeoutMs: 2000 }).catch(() => {});
      }
      await Bun.sleep(250);
    }
  })();
  const refreshed = (page: Page, n = 1) =>
    page.waitForFunction(`Number(document.body.dataset.refreshes ?? 0) >= ${n}`, null, { timeout: 30_000 });
  const shot = async (page: Page, name: string, fullPage = true) => {
    await page.screenshot({ path: join(out, name), fullPage });
    console.log(`wrote docs/img/${name}`);
  };

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  await page.goto(`http://${d.drummerApis[0]}/?refresh=1`);
  await refreshed(page, 8); // a few points on each NodeHost's charts
  await shot(page, "dashboard-deployment.png");

  const host = busy;
  await page.goto(`http://${d.drummerApis[0]}/?refresh=1&host=${encodeURIComponent(host.raft)}`);
  await refreshed(page, 6);
  await shot(page, "dashboard-host.png");

  const nh = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  await nh.goto(`http://${busy.api}/?refresh=1`);
  await refreshed(nh, 6);
  await shot(nh, "dashboard-nodehost.png");

  const phone = await browser.newPage({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    bypassCSP: true,
  });
  await phone.goto(`http://${d.drummerApis[1]}/?refresh=1`);
  await refreshed(phone);
  await shot(phone, "dashboard-phone.png", false);

  writing = false;
  await writer;
  // kill -9 a NodeHost holding replicas (not the one whose page was shown).
  const victim = d.hosts.find((h, i) => h !== busy && roles[i]!.length > 0)!;
  await d.kill(victim);
  await page.goto(`http://${d.drummerApis[0]}/?refresh=1`);
  await page.waitForFunction(
    `document.querySelector('tr[data-host="${victim.raft}"]')?.dataset.state === "dead" &&
     document.querySelectorAll('tr[data-repair="1"]').length > 0`,
    null,
    { timeout: 60_000 },
  );
  await shot(page, "dashboard-repair.png");
} finally {
  await browser.close();
  await d.stop();
}
