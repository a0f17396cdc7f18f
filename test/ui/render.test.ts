/**
 * The dashboard rendered on the server (no browser): GET / on the NodeHost API shows what its
 * Status answers, the script is served from the binary's bundle, a token-protected API serves
 * the page without data, and what the data holds is escaped.
 */
import { describe, expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { nodeHostView } from "../../src/ui/model.ts";
import { FakeNodeHost } from "../api/fake.ts";
import { postJson } from "../api/helpers.ts";

/** The value of each `data-shard` row attribute in the page, in order. */
function shardRows(html: string): number[] {
  return [...html.matchAll(/<tr data-shard="(\d+)"/g)].map((m) => Number(m[1]));
}

describe("NodeHost dashboard (server-rendered)", () => {
  test("GET / shows every replica Status reports, with role, leader, term and indexes", async () => {
    const nh = new FakeNodeHost("h1:7001")
      .addShard(3, { replicaId: 1, leaderId: 1, term: 5 })
      .addShard(1, { replicaId: 2, leaderId: 1, term: 4 })
      .addShard(2, { replicaId: 1, leaderId: 0, term: 2 });
    const api = createNodeHostApi({ nodehost: nh });
    const res = await api.request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await res.text();
    expect(html.startsWith("<!doctype html>")).toBe(true);

    const status = nodeHostView(await (await postJson(api, "Status", {})).json());
    expect(status.replicas.map((r) => r.shardId)).toEqual([1, 2, 3]);
    expect(shardRows(html)).toEqual(status.replicas.map((r) => r.shardId));
    // Each row holds the replica's facts in column order.
    for (const r of status.replicas) {
      const row = new RegExp(`<tr data-shard="${r.shardId}">(.*?)</tr>`).exec(html)?.[1] ?? "";
      const cells = [...row.matchAll(/<td>(.*?)<\/td>/g)].map((m) => m[1]!.replace(/<[^>]+>/g, ""));
      expect(cells.slice(0, 8)).toEqual([
        String(r.shardId),
        String(r.replicaId),
        r.app,
        r.role,
        r.leaderId > 0 ? String(r.leaderId) : "none",
        String(r.term),
        String(r.commitIndex),
        String(r.appliedIndex),
      ]);
    }
    expect(html).toContain('data-fact="leaderless" class="warn">1<');
    expect(html).toMatch(/<title>Longboat NodeHost h1:7001<\/title>/);
    // The script the page names is served, and is the bundle's.
    const src = /<script src="(\/ui\/app\.js\?v=[0-9a-f]{12})"/.exec(html)?.[1];
    expect(src).toBeDefined();
    const js = await api.request(src!);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(js.headers.get("cache-control")).toContain("immutable");
    expect((await js.text()).length).toBeGreaterThan(1000);
  });

  test("filters and sort in the query are applied on the server too", async () => {
    const nh = new FakeNodeHost().addShard(1).addShard(2).addShard(10).addShard(11);
    const api = createNodeHostApi({ nodehost: nh });
    expect(shardRows(await (await api.request("/?id=2,10-20&sort=shardId&desc=1")).text())).toEqual([
      11, 10, 2,
    ]);
    expect(shardRows(await (await api.request("/?app=nope")).text())).toEqual([]);
  });

  test("with an API token the page and script are open but carry no data; the data calls need the token", async () => {
    const nh = new FakeNodeHost().addShard(1);
    const api = createNodeHostApi({ nodehost: nh, apiToken: "s3cret" });
    const res = await api.request("/");
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(shardRows(html)).toEqual([]);
    expect(html).toContain('<form id="login" class="login">'); // not hidden
    expect(html).toContain('"tokenRequired":true');
    expect((await api.request("/ui/app.js")).status).toBe(200);
    expect((await postJson(api, "Status", {})).status).toBe(401);
    expect((await postJson(api, "Status", {}, { authorization: "Bearer s3cret" })).status).toBe(200);
    expect((await api.request("/metrics")).status).toBe(401);
    // Without a token the login form is hidden.
    const open = await (await createNodeHostApi({ nodehost: nh }).request("/")).text();
    expect(open).toContain('<form id="login" class="login" hidden="">');
  });

  test("what the data holds is escaped", async () => {
    const nh = new FakeNodeHost('h1:7001"><script>alert(1)</script>').addShard(1);
    const api = createNodeHostApi({ nodehost: nh });
    const html = await (await api.request("/?app=%22%3E%3Cscript%3Ex%3C/script%3E")).text();
    expect(html).not.toContain("<script>alert(1)");
    expect(html).not.toContain("<script>x");
    expect(html).toContain("&lt;script&gt;alert(1)");
    // Only two scripts: the JSON config and the bundle.
    expect(html.match(/<script/g)?.length).toBe(2);
  });

  test("?refresh sets the page's refresh interval within 0.5..3600 s", async () => {
    const api = createNodeHostApi({ nodehost: new FakeNodeHost(), dashboardRefreshSeconds: 7 });
    const refreshOf = async (q: string) =>
      JSON.parse(
        /<script id="dashboard-config"[^>]*>(.*?)<\/script>/.exec(
          await (await api.request(`/${q}`)).text(),
        )![1]!,
      ).refreshSeconds;
    expect(await refreshOf("")).toBe(7);
    expect(await refreshOf("?refresh=5")).toBe(5);
    expect(await refreshOf("?refresh=0")).toBe(7);
    expect(await refreshOf("?refresh=abc")).toBe(7);
    expect(() => createNodeHostApi({ nodehost: new FakeNodeHost(), dashboardRefreshSeconds: 0 })).toThrow(
      /refresh/,
    );
  });

  test("other paths still answer a Connect 404", async () => {
    const api = createNodeHostApi({ nodehost: new FakeNodeHost() });
    const res = await api.request("/nope");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe("unimplemented");
  });
});

describe("--refresh", () => {
  test("nodehost and drummer take --refresh <seconds> (default 2, at most 3600)", async () => {
    const { resolveNodeHostConfig, resolveDrummerConfig } = await import("../../src/cli/config.ts");
    const flags = { "raft-address": "h1:7001", "api-address": "127.0.0.1:8001" };
    expect(resolveNodeHostConfig({ flags }).refresh).toBe(2);
    expect(resolveNodeHostConfig({ flags: { ...flags, refresh: "5" } }).refresh).toBe(5);
    expect(() => resolveNodeHostConfig({ flags: { ...flags, refresh: "0" } })).toThrow(/refresh/);
    expect(() => resolveNodeHostConfig({ flags: { ...flags, refresh: "7200" } })).toThrow(/3600/);
    const drummer = { id: "1", peers: "1=d1:9101", "api-address": "127.0.0.1:9001" };
    expect(resolveDrummerConfig({ flags: { ...drummer, refresh: "9" } }).refresh).toBe(9);
  });
});
