import { afterAll, expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { ApiError, NodeHostClient } from "../../src/api/client.ts";
import { type ApiServer, serveApi } from "../../src/api/server.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import type { Session } from "../../src/engine/session.ts";
import { longboat } from "../../src/pb/longboat.js";
import { FakeNodeHost } from "./fake.ts";
import { b64 } from "./helpers.ts";

const kv = longboat.nodehost.v1;

/** A fake that runs the kv app's commands on a map (value 1 done, 0 not, as src/statemachine/kv.ts). */
class KvFake extends FakeNodeHost {
  readonly map = new Map<string, Uint8Array>();
  override async syncPropose(session: Session, cmd: Uint8Array) {
    await super.syncPropose(session, cmd);
    const c = kv.KvCommand.decode(cmd);
    if (c.put) this.map.set(c.put.key ?? "", c.put.value ?? new Uint8Array());
    if (c.delete) return { value: this.map.delete(c.delete.key ?? "") ? 1 : 0, data: new Uint8Array() };
    if (c.cas) {
      const current = this.map.get(c.cas.key ?? "");
      const ok = c.cas.expectedAbsent
        ? !current
        : !!current && Buffer.compare(current, c.cas.expected ?? new Uint8Array()) === 0;
      if (!ok) return { value: 0, data: current ?? new Uint8Array() };
      this.map.set(c.cas.key ?? "", c.cas.value ?? new Uint8Array());
    }
    return { value: 1, data: new Uint8Array() };
  }
  private answer(query: Uint8Array) {
    const key = kv.KvQuery.decode(query).get?.key ?? "";
    const v = this.map.get(key);
    return kv.KvQueryResult.encode({ found: v !== undefined, value: v ?? new Uint8Array() }).finish();
  }
  override async syncRead(shardId: number, query: Uint8Array) {
    await super.syncRead(shardId, query);
    return this.answer(query);
  }
  override staleRead(shardId: number, query: Uint8Array) {
    super.staleRead(shardId, query);
    return this.answer(query);
  }
}

const servers: ApiServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

async function start(fake: FakeNodeHost, token?: string, snapshotExportDir?: string): Promise<string> {
  const server = await serveApi(createNodeHostApi({ nodehost: fake, apiToken: token, snapshotExportDir }), {
    hostname: "127.0.0.1",
    port: 0,
  });
  servers.push(server);
  return `127.0.0.1:${server.port}`;
}

async function closedAddress(): Promise<string> {
  const server = await serveApi(createNodeHostApi({ nodehost: new FakeNodeHost() }), {
    hostname: "127.0.0.1",
    port: 0,
  });
  await server.stop();
  return `127.0.0.1:${server.port}`;
}

test("plain fetch with JSON, as any Connect client sends it, gets a proto3 JSON answer", async () => {
  const address = await start(new FakeNodeHost().addShard(1), "tok");
  const res = await fetch(`http://${address}/longboat.nodehost.v1.NodeHostService/Propose`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "connect-protocol-version": "1",
      authorization: "Bearer tok",
    },
    body: JSON.stringify({ shardId: "1", command: b64("hello"), timeoutMs: 1000 }),
  });
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ value: "5", data: b64("hello"), index: "0" });
  expect((await fetch(`http://${address}/healthz`)).status).toBe(200);
});

test("the client fails over to the next address when the first refuses connections, and sticks to it", async () => {
  const bad = await closedAddress();
  const good = await start(new FakeNodeHost().addShard(1));
  const tried: string[] = [];
  const client = new NodeHostClient({
    addresses: [bad, good],
    timeoutMs: 2000,
    fetch: (url, init) => {
      tried.push(new URL(url).host);
      return fetch(url, init);
    },
  });
  expect((await client.status()).raftAddress).toBe("h1:7001");
  expect((await client.status()).raftAddress).toBe("h1:7001");
  expect(tried).toEqual([bad, good, good]);
});

test("the client fails over on unavailable and not on other codes", async () => {
  const closing = new FakeNodeHost("down:7001").addShard(1);
  const first = await start(closing);
  const second = await start(new FakeNodeHost("up:7001").addShard(1));
  const client = new NodeHostClient({ addresses: [first, second], timeoutMs: 2000 });
  closing.failNext = new LongboatError("closed");
  const res = await client.call("StaleRead", { shardId: 1 }, "json");
  expect(res.result.length).toBeGreaterThan(0);
  const error = await client.call("Read", { shardId: 99 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  expect(error).toMatchObject({ code: "not_found", address: second });
});

test("when every address is down the client reports unavailable from the last one", async () => {
  const a = await closedAddress();
  const b = await closedAddress();
  const client = new NodeHostClient({ addresses: [a, b], timeoutMs: 2000 });
  const error = await client.status().catch((e: unknown) => e);
  expect(error).toMatchObject({ code: "unavailable", address: b });
});

test("a wrong token reaches the client as unauthenticated", async () => {
  const address = await start(new FakeNodeHost().addShard(1), "right");
  const client = new NodeHostClient({ addresses: [address], token: "wrong", timeoutMs: 2000 });
  expect(await client.status().catch((e: unknown) => e)).toMatchObject({ code: "unauthenticated" });
});

test("kv helpers put, get, cas and delete through the API in proto", async () => {
  const fake = new KvFake().addShard(1);
  const client = new NodeHostClient({ addresses: [await start(fake)], timeoutMs: 2000 });
  await client.put(1, "k", "v1");
  expect(new TextDecoder().decode((await client.get(1, "k"))!)).toBe("v1");
  expect(await client.cas(1, "k", "nope", "v2")).toBe(false);
  expect(await client.cas(1, "k", "v1", "v2")).toBe(true);
  expect(new TextDecoder().decode((await client.get(1, "k", { stale: true }))!)).toBe("v2");
  expect(await client.cas(1, "new", null, "x")).toBe(true);
  expect(await client.delete(1, "k")).toBe(true);
  expect(await client.delete(1, "k")).toBe(false);
  expect(await client.get(1, "k")).toBeNull();
});

test("control helpers: members, add, remove, transfer, snapshot", async () => {
  const fake = new FakeNodeHost().addShard(1);
  const client = new NodeHostClient({ addresses: [await start(fake, undefined, "/tmp/e")], timeoutMs: 2000 });
  expect((await client.members(1)).addresses).toHaveLength(2);
  const added = await client.addReplica(1, 3, "h3:7001", { role: "witness", configChangeId: 7 });
  expect(added!.witnesses).toEqual([expect.objectContaining({ replicaId: 3, address: "h3:7001" })]);
  const removed = await client.removeReplica(1, 2);
  expect(removed!.removed).toEqual([2]);
  await client.transferLeader(1, 2);
  expect(await client.snapshot(1, { export: true })).toBe(123);
  expect(fake.calls.slice(-2)).toEqual(["transfer:2:1", "snapshot:/tmp/e:-:1"]);
});
