import { expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { ApiError, NodeHostClient } from "../../src/api/client.ts";
import { serveApi } from "../../src/api/server.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import type { Session } from "../../src/engine/session.ts";
import { longboat } from "../../src/pb/longboat.js";
import { FakeNodeHost } from "./fake.ts";
import { freePort, withFreePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { b64 } from "./helpers.ts";
import { REAL_WAIT_MS } from "../support/limits.ts";

/**
 * The budget of a client whose test asserts which addresses it tried: a retried slow attempt
 * would add one. A Status attempt gets a third of it, so 2000 ms (667 ms an attempt) failed
 * under load; the calls here answer at once when the machine is idle.
 */
const ORDER_BUDGET_MS = REAL_WAIT_MS;

const kv = longboat.nodehost.v1;

/** A fake that runs the kv app's commands on a map (value 1 done, 0 not, as src/statemachine/kv.ts). */
class KvFake extends FakeNodeHost {
  readonly map = new Map<string, Uint8Array>();
  override async syncPropose(session: Session, cmd: Uint8Array) {
    const { index } = await super.syncPropose(session, cmd);
    const c = kv.KvCommand.decode(cmd);
    if (c.put) this.map.set(c.put.key ?? "", c.put.value ?? new Uint8Array());
    if (c.delete)
      return { value: this.map.delete(c.delete.key ?? "") ? 1 : 0, data: new Uint8Array(), index };
    if (c.cas) {
      const current = this.map.get(c.cas.key ?? "");
      const ok = c.cas.expectedAbsent
        ? !current
        : !!current && Buffer.compare(current, c.cas.expected ?? new Uint8Array()) === 0;
      if (!ok) return { value: 0, data: current ?? new Uint8Array(), index };
      this.map.set(c.cas.key ?? "", c.cas.value ?? new Uint8Array());
    }
    return { value: 1, data: new Uint8Array(), index };
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

/** Serves the fake on a fresh port (retried should the port be taken); stopped when the test ends. */
async function start(fake: FakeNodeHost, token?: string, snapshotExportDir?: string): Promise<string> {
  const app = createNodeHostApi({ nodehost: fake, apiToken: token, snapshotExportDir });
  const server = await withFreePort((port) => serveApi(app, { hostname: "127.0.0.1", port }));
  track(`API server on ${server.port}`, () => server.stop());
  return `127.0.0.1:${server.port}`;
}

/** An address nothing listens on: a port reserved for this process and never served. */
async function closedAddress(): Promise<string> {
  return `127.0.0.1:${freePort()}`;
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
  expect(await res.json()).toEqual({ value: "5", data: b64("hello"), index: "21" });
  expect((await fetch(`http://${address}/healthz`)).status).toBe(200);
});

test("the client fails over to the next address when the first refuses connections, and sticks to it", async () => {
  const bad = await closedAddress();
  const good = await start(new FakeNodeHost().addShard(1));
  const tried: string[] = [];
  const client = new NodeHostClient({
    addresses: [bad, good],
    timeoutMs: ORDER_BUDGET_MS,
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
  const client = new NodeHostClient({ addresses: [first, second], timeoutMs: ORDER_BUDGET_MS });
  closing.failNext = new LongboatError("closed");
  const res = await client.call("StaleRead", { shardId: 1 }, "json");
  expect(res.result.length).toBeGreaterThan(0);
  const error = await client.call("Read", { shardId: 99 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  expect(error).toMatchObject({ code: "not_found" });
});

test("a host without the shard (not_found) sends the call on to the next address; not_found once every host said it", async () => {
  const without = await start(new FakeNodeHost("without:7001").addShard(2));
  const withShard = await start(new FakeNodeHost("with:7001").addShard(1));
  const tried: string[] = [];
  const client = new NodeHostClient({
    addresses: [without, withShard],
    timeoutMs: ORDER_BUDGET_MS,
    fetch: (url, init) => {
      tried.push(new URL(url).host);
      return fetch(url, init);
    },
  });
  const res = await client.call("StaleRead", { shardId: 1 }, "json");
  expect(res.result.length).toBeGreaterThan(0);
  expect(tried).toEqual([without, withShard]);
  tried.length = 0;
  const error = (await client.call("StaleRead", { shardId: 3 }, "json").catch((e: unknown) => e)) as ApiError;
  expect(error).toBeInstanceOf(ApiError);
  expect(error.code).toBe("not_found");
  expect(tried).toEqual([withShard, without]);
});

test("when every address stays down the client retries until its timeout, then reports unavailable (not applied)", async () => {
  const [a, b] = ["127.0.0.1:1", "127.0.0.1:2"];
  const tried: string[] = [];
  const client = new NodeHostClient({
    addresses: [a, b],
    timeoutMs: 400,
    fetch: async (url) => {
      tried.push(new URL(url).host);
      throw Object.assign(new TypeError("ECONNREFUSED: Unable to connect"), { code: "ECONNREFUSED" });
    },
  });
  const error = (await client.status().catch((e: unknown) => e)) as ApiError;
  expect(error).toBeInstanceOf(ApiError);
  expect(error.code).toBe("unavailable");
  expect(error.notApplied).toBe(true);
  expect(error.message).toMatch(/\(not applied; gave up after \d+ attempts in 400 ms\)/);
  // Both addresses, in turn, more than once each (backing off between rounds).
  expect(tried.length).toBeGreaterThan(3);
  expect(tried.slice(0, 4)).toEqual([a, b, a, b]);
});

test("a write refused as not applied (no leader yet) is retried until the shard serves it", async () => {
  const fake = new KvFake().addShard(1);
  for (let i = 0; i < 3; i++) fake.failures.push(new LongboatError("shardNotReady", "no leader yet"));
  const client = new NodeHostClient({ addresses: [await start(fake)], timeoutMs: 3000 });
  await client.put(1, "k", "v");
  expect(fake.calls.filter((c) => c.startsWith("syncPropose"))).toHaveLength(4);
  expect(new TextDecoder().decode(fake.map.get("k"))).toBe("v");
});

test("a write without a session whose outcome is unknown is never retried", async () => {
  for (const failure of [new LongboatError("timeout"), new LongboatError("shardClosed")]) {
    const fake = new KvFake().addShard(1);
    fake.failures.push(failure);
    const client = new NodeHostClient({ addresses: [await start(fake), await start(fake)], timeoutMs: 3000 });
    const error = (await client.put(1, "k", "v").catch((e: unknown) => e)) as ApiError;
    expect(error.outcomeUnknown).toBe(true);
    expect(fake.calls).toEqual(["syncPropose(client 0):1"]);
  }
});

test("a write without a session whose connection breaks after sending is not retried", async () => {
  const fake = new KvFake().addShard(1);
  const address = await start(fake);
  let calls = 0;
  const client = new NodeHostClient({
    addresses: [address],
    timeoutMs: 3000,
    fetch: async (url, init) => {
      calls++;
      await fetch(url, init); // delivered and applied, then the connection drops
      throw Object.assign(new TypeError("ECONNRESET: socket closed"), { code: "ECONNRESET" });
    },
  });
  const error = (await client.put(1, "k", "v").catch((e: unknown) => e)) as ApiError;
  expect(error.code).toBe("unknown");
  expect(calls).toBe(1);
});

test("a write with a session is retried after an unknown outcome and applies once", async () => {
  const fake = new KvFake().addShard(1);
  const applied: number[] = [];
  const seen = new Map<string, { value: number; data: Uint8Array; index: number }>();
  // Sessions as the engine keeps them: a repeated series returns the first result unapplied.
  fake.syncPropose = async (session: Session, cmd: Uint8Array) => {
    const id = `${session.clientId}/${session.seriesId}`;
    const failure = fake.failures.shift();
    if (!seen.has(id)) {
      applied.push(session.seriesId);
      seen.set(id, { value: 1, data: cmd, index: seen.size + 1 });
    }
    if (failure) throw failure; // applied, but the answer is lost
    return seen.get(id)!;
  };
  fake.failures.push(new LongboatError("timeout"), new LongboatError("shardClosed"));
  const client = new NodeHostClient({ addresses: [await start(fake)], timeoutMs: 3000 });
  const session = await client.openSession(1);
  await client.put(1, "k", "v1", { session });
  await client.put(1, "k", "v2", { session });
  expect(applied).toEqual([1, 2]);
  expect(session.seriesId).toBe(3);
});

test("reads are retried after an unknown outcome", async () => {
  const fake = new KvFake().addShard(1);
  fake.map.set("k", new TextEncoder().encode("v"));
  fake.failures.push(new LongboatError("timeout"), new LongboatError("shardNotReady"));
  const client = new NodeHostClient({ addresses: [await start(fake)], timeoutMs: 3000 });
  expect(new TextDecoder().decode((await client.get(1, "k"))!)).toBe("v");
  expect(fake.calls).toEqual(["syncRead:1", "syncRead:1", "syncRead:1"]);
});

test("an error that is neither not-applied nor unknown is not retried", async () => {
  const fake = new KvFake().addShard(1);
  fake.failures.push(new LongboatError("rejected", "no"));
  const client = new NodeHostClient({ addresses: [await start(fake)], timeoutMs: 3000 });
  expect(await client.get(1, "k").catch((e: unknown) => e)).toMatchObject({ code: "failed_precondition" });
  expect(fake.calls).toEqual(["syncRead:1"]);
});

test("each attempt asks the server for less time than the client waits, within the call's timeout", async () => {
  const fake = new KvFake().addShard(1);
  const timeouts: number[] = [];
  fake.syncRead = async (shardId: number, query: Uint8Array, opts?: { timeoutMs: number }) => {
    timeouts.push(opts!.timeoutMs);
    if (timeouts.length === 1) throw new LongboatError("timeout");
    return KvFake.prototype.syncRead.call(fake, shardId, query);
  };
  const client = new NodeHostClient({ addresses: [await start(fake)], timeoutMs: 6000 });
  await client.get(1, "k");
  // Retryable calls try in thirds of the budget (at least ATTEMPT_MS_MIN), minus a margin.
  expect(timeouts).toHaveLength(2);
  expect(timeouts[0]).toBe(1600);
  expect(timeouts[1]!).toBeLessThanOrEqual(1600);
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

test("an HTTP/2-only server (a raft port given as the API address) is named as such, not retried, no Bun internals", async () => {
  const { createServer } = await import("node:http2");
  const server = createServer((_req, res) => res.end());
  const port = await withFreePort(
    (p) =>
      new Promise<number>((resolve, reject) => {
        server.once("error", reject);
        server.listen(p, "127.0.0.1", () => resolve(p));
      }),
  );
  track(`HTTP/2 server on ${port}`, () => new Promise<void>((resolve) => server.close(() => resolve())));
  const client = new NodeHostClient({ addresses: [`127.0.0.1:${port}`], timeoutMs: 3000 });
  const error = (await client.status().catch((e: unknown) => e)) as ApiError;
  expect(error).toBeInstanceOf(ApiError);
  expect(error.code).toBe("failed_precondition");
  expect(error.message).toContain(`is 127.0.0.1:${port} a raft address (--raft-address)?`);
  expect(error.message).toContain("Give the NodeHost's API address (its --api-address) instead");
  expect(error.message).not.toContain("Malformed_HTTP_Response");
  expect(error.message).not.toContain("verbose");
});
