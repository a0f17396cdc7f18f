// WatchEvents: Connect server streaming of a NodeHost's events.
import { describe, expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { encodeEnvelope as envelope } from "../../src/api/rpc/envelope.ts";
import { toWatchResponse } from "../../src/api/watch.ts";
import { type EventBody, EventHub } from "../../src/engine/events.ts";
import { realEnv } from "../../src/env.ts";
import { longboat } from "../../src/pb/longboat.js";
import { FakeNodeHost } from "./fake.ts";
import { path } from "./helpers.ts";

/** A fake NodeHost that publishes the events the test gives it. */
function setup(token?: string) {
  const hub = new EventHub(realEnv(), () => {});
  const fake = Object.assign(new FakeNodeHost().addShard(1), {
    subscribe: hub.subscribe.bind(hub),
  });
  const app = createNodeHostApi({ nodehost: fake, ...(token ? { apiToken: token } : {}) });
  return { hub, app };
}

function watch(app: ReturnType<typeof setup>["app"], req: object, headers: Record<string, string> = {}) {
  // Connect streaming: the request is one enveloped message.
  return app.request(path("WatchEvents"), {
    method: "POST",
    headers: { "content-type": "application/connect+json", ...headers },
    body: envelope(0, new TextEncoder().encode(JSON.stringify(req))),
  });
}

/** Splits bytes into complete envelopes and the rest. */
function readEnvelopes(buffer: Uint8Array): {
  frames: { flags: number; payload: Uint8Array }[];
  rest: Uint8Array;
} {
  const frames: { flags: number; payload: Uint8Array }[] = [];
  let at = 0;
  while (buffer.byteLength - at >= 5) {
    const length = new DataView(buffer.buffer, buffer.byteOffset + at + 1, 4).getUint32(0);
    if (buffer.byteLength - at - 5 < length) break;
    frames.push({ flags: buffer[at]!, payload: buffer.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return { frames, rest: buffer.subarray(at) };
}

/** Reads enveloped messages from a streaming response, one at a time. */
function frames(res: Response) {
  const reader = res.body!.getReader();
  let buffer: Uint8Array = new Uint8Array(0);
  const pending: { flags: number; json: Record<string, unknown> }[] = [];
  return {
    async next(): Promise<{ flags: number; json: Record<string, unknown> }> {
      while (pending.length === 0) {
        const chunk = await reader.read();
        if (chunk.done) throw new Error("stream ended");
        const joined = new Uint8Array(buffer.byteLength + chunk.value.byteLength);
        joined.set(buffer);
        joined.set(chunk.value, buffer.byteLength);
        const { frames, rest } = readEnvelopes(joined);
        buffer = rest;
        for (const f of frames)
          pending.push({ flags: f.flags, json: JSON.parse(new TextDecoder().decode(f.payload)) });
      }
      return pending.shift()!;
    },
    cancel: () => reader.cancel(),
  };
}

const role = (shardId: number, term: number): EventBody => ({
  kind: "roleChanged",
  shardId,
  replicaId: 1,
  role: "leader",
  term,
  leaderId: 1,
});

describe("WatchEvents", () => {
  test("streams a keepalive at once, then the events as they happen, as Connect enveloped JSON", async () => {
    const { hub, app } = setup();
    const res = await watch(app, {});
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/connect+json");
    const f = frames(res);
    // 64-bit integers are strings in proto3 JSON.
    expect((await f.next()).json).toMatchObject({ kind: "keepalive", seq: "0" });
    hub.publish(role(1, 7));
    hub.publish({ kind: "snapshotReceived", shardId: 1, replicaId: 1, index: 40, from: 3 });
    expect((await f.next()).json).toMatchObject({
      seq: "1",
      kind: "roleChanged",
      role: "leader",
      term: "7",
      leaderId: "1",
    });
    expect((await f.next()).json).toMatchObject({
      kind: "snapshotReceived",
      index: "40",
      fromReplicaId: "3",
    });
    await f.cancel();
  });

  test("filters by shard and kind", async () => {
    const { hub, app } = setup();
    const f = frames(await watch(app, { shardId: "2", kinds: ["roleChanged"] }));
    await f.next();
    hub.publish(role(1, 7));
    hub.publish({ kind: "replicaReady", shardId: 2, replicaId: 1 });
    hub.publish(role(2, 9));
    expect((await f.next()).json).toMatchObject({ kind: "roleChanged", shardId: "2", term: "9" });
    await f.cancel();
  });

  test("a client that goes away ends its subscription", async () => {
    const { hub, app } = setup();
    const f = frames(await watch(app, {}));
    await f.next();
    expect(hub.stats().map((s) => s.name)).toEqual(["watch"]);
    await f.cancel();
    hub.publish(role(1, 7)); // wakes the stream, which sees the abort and closes the subscription
    for (let i = 0; i < 100 && hub.stats().length > 0; i++) await Bun.sleep(5);
    expect(hub.stats()).toEqual([]);
  });

  test("an unknown kind ends the stream with invalid_argument naming it; a unary content type is refused", async () => {
    const { app } = setup();
    const f = frames(await watch(app, { kinds: ["leaderElected"] }));
    const end = await f.next();
    expect(end.flags & 2).toBe(2);
    expect(end.json.error).toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining('unknown kind "leaderElected"'),
    });
    const unary = await app.request(path("WatchEvents"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(unary.status).not.toBe(200);
    expect(await unary.text()).toContain("streaming");
  });

  test("the API token is required", async () => {
    const { app } = setup("s3cret");
    const denied = frames(await watch(app, {}));
    expect((await denied.next()).json.error).toMatchObject({ code: "unauthenticated" });
    const ok = await watch(app, {}, { authorization: "Bearer s3cret" });
    const okFrames = frames(ok);
    expect((await okFrames.next()).json).toMatchObject({ kind: "keepalive" });
    await okFrames.cancel();
  });

  test("application/connect+proto streams binary WatchEventsResponse messages", async () => {
    const { hub, app } = setup();
    const res = await app.request(path("WatchEvents"), {
      method: "POST",
      headers: { "content-type": "application/connect+proto" },
      body: envelope(0, longboat.nodehost.v1.WatchEventsRequest.encode({ shardId: 1 }).finish()),
    });
    expect(res.headers.get("content-type")).toBe("application/connect+proto");
    hub.publish(role(1, 3));
    const reader = res.body!.getReader();
    let buffer: Uint8Array = new Uint8Array(0);
    const got: longboat.nodehost.v1.WatchEventsResponse[] = [];
    while (got.length < 2) {
      const chunk = await reader.read();
      const joined = new Uint8Array([...buffer, ...chunk.value!]);
      const { frames, rest } = readEnvelopes(joined);
      buffer = rest;
      for (const f of frames) got.push(longboat.nodehost.v1.WatchEventsResponse.decode(f.payload));
    }
    expect(got.map((m) => m.kind)).toEqual(["keepalive", "roleChanged"]);
    expect(Number(got[1]!.term)).toBe(3);
    await reader.cancel();
  });

  test("every event kind maps to a WatchEventsResponse that encodes", () => {
    const all: EventBody[] = [
      { kind: "leaderUpdated", shardId: 1, replicaId: 1, term: 2, leaderId: 3 },
      role(1, 2),
      {
        kind: "membershipChanged",
        shardId: 1,
        replicaId: 1,
        configChangeId: 5,
        voting: [{ replicaId: 1, address: "h1:1" }],
        nonVoting: [],
        witnesses: [],
        removed: [4],
      },
      { kind: "snapshotCreated", shardId: 1, replicaId: 1, index: 9 },
      { kind: "snapshotReceived", shardId: 1, replicaId: 1, index: 9, from: 2 },
      { kind: "snapshotRecovered", shardId: 1, replicaId: 1, index: 9 },
      { kind: "logCompacted", shardId: 1, replicaId: 1, index: 8 },
      { kind: "replicaReady", shardId: 1, replicaId: 1 },
      { kind: "replicaStopped", shardId: 1, replicaId: 1, reason: "bye" },
      { kind: "shardUnavailable", shardId: 1, replicaId: 1, term: 4, electionTimeouts: 3 },
      { kind: "shardAvailable", shardId: 1, replicaId: 1, term: 4, leaderId: 2 },
      { kind: "proposalDropped", shardId: 1, replicaId: 1, count: 2 },
      { kind: "readDropped", shardId: 1, replicaId: 1, count: 2 },
      { kind: "eventsDropped", shardId: 0, replicaId: 0, count: 10 },
    ];
    const pb = longboat.nodehost.v1.WatchEventsResponse;
    for (const e of all) {
      const m = pb.decode(pb.encode(pb.fromObject(toWatchResponse({ ...e, seq: 1 }))).finish());
      expect(m.kind).toBe(e.kind);
    }
    const membership = pb.fromObject(toWatchResponse({ ...all[2]!, seq: 1 }));
    expect(Number(membership.membership!.configChangeId)).toBe(5);
  });
});
