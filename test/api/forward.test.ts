import { expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { FORWARD_GRACE_MS, FORWARDED_HEADER } from "../../src/api/forward.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { ManualEnv } from "../../src/env.ts";
import { longboat } from "../../src/pb/longboat.js";
import { FakeNodeHost } from "./fake.ts";
import { b64, connectError, postJson, postProto, text } from "./helpers.ts";

const API = { 1: "h1:8001", 2: "h2:8001" } as Record<number, string>;

/** Host 1 holds a follower replica (1) of shard 1, host 2 its leader (2). */
/** A socket error as Bun's fetch raises it. */
function socketError(code: string): Error {
  return Object.assign(new TypeError(`${code}: socket error`), { code });
}

/**
 * How the forward to the leader fails: "refused" before a connection (the request never left),
 * "reset" after sending it, "hang" never answering (until the forward's deadline aborts it).
 */
type ForwardFault = "refused" | "reset" | "hang";

function twoHosts(opts: { token?: string; fault?: ForwardFault } = {}) {
  const follower = new FakeNodeHost("h1:7001").addShard(1, { replicaId: 1, leaderId: 2 });
  const leader = new FakeNodeHost("h2:7001").addShard(1, { replicaId: 2, leaderId: 2 });
  const leaderApp = createNodeHostApi({ nodehost: leader, apiToken: opts.token });
  const forwarded: { url: string; headers: Headers }[] = [];
  const env = new ManualEnv(1);
  const followerApp = createNodeHostApi({
    nodehost: follower,
    apiToken: opts.token,
    env,
    resolveApiAddress: (_shardId, replicaId) => API[replicaId],
    forward: async (url, init) => {
      forwarded.push({ url, headers: new Headers(init.headers) });
      if (opts.fault === "refused") throw socketError("ECONNREFUSED");
      if (opts.fault === "reset") {
        await leaderApp.fetch(new Request(url, init));
        throw socketError("ECONNRESET");
      }
      if (opts.fault === "hang") {
        return new Promise<Response>((_, reject) =>
          init.signal?.addEventListener("abort", () => reject(new Error("aborted"))),
        );
      }
      return leaderApp.fetch(new Request(url, init));
    },
  });
  return { follower, leader, followerApp, leaderApp, forwarded, env };
}

test("a proposal sent to a follower's NodeHost is forwarded to the leader's and the answer relayed", async () => {
  const { follower, leader, followerApp, forwarded } = twoHosts();
  const res = await postJson(followerApp, "Propose", { shardId: "1", command: b64("abc") });
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ value: "3", data: b64("abc"), index: "21" });
  expect(forwarded.map((f) => f.url)).toEqual([
    "http://h2:8001/longboat.nodehost.v1.NodeHostService/Propose",
  ]);
  expect(forwarded[0]!.headers.get(FORWARDED_HEADER)).toBe("1");
  expect(leader.calls).toEqual(["syncPropose(client 0):1"]);
  expect(follower.calls).toEqual([]);
});

test("a forwarded proto request keeps its content type and the token", async () => {
  const { followerApp, forwarded } = twoHosts({ token: "t" });
  const body = longboat.nodehost.v1.ReadRequest.encode({
    shardId: 1,
    query: new TextEncoder().encode("q"),
  }).finish();
  const res = await postProto(followerApp, "Read", body, { authorization: "Bearer t" });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/proto");
  const decoded = longboat.nodehost.v1.ReadResponse.decode(new Uint8Array(await res.arrayBuffer()));
  expect(text(decoded.result)).toBe("read:q");
  expect(forwarded[0]!.headers.get("content-type")).toBe("application/proto");
  expect(forwarded[0]!.headers.get("authorization")).toBe("Bearer t");
});

test("a request that was already forwarded is never forwarded again", async () => {
  const { follower, followerApp, forwarded } = twoHosts();
  const res = await postJson(followerApp, "Propose", { shardId: "1" }, { [FORWARDED_HEADER]: "1" });
  expect(await connectError(res)).toMatchObject({ code: "unavailable" });
  expect(forwarded).toEqual([]);
  expect(follower.calls).toEqual(["syncPropose(client 0):1"]);
});

test("a proposal dropped with shardNotReady is forwarded once a leader elsewhere is known", async () => {
  const { follower, leader, followerApp, forwarded } = twoHosts();
  const shard = follower.shards.get(1)!;
  shard.leaderId = 1; // this replica believes it leads, then learns otherwise
  follower.syncPropose = async () => {
    shard.leaderId = 2;
    throw new LongboatError("shardNotReady", "dropped");
  };
  const res = await postJson(followerApp, "Propose", { shardId: "1", command: b64("x") });
  expect(res.status).toBe(200);
  expect(forwarded).toHaveLength(1);
  expect(leader.calls).toEqual(["syncPropose(client 0):1"]);
});

test("a leader whose host refuses the connection is unavailable (not applied), naming the leader and its address", async () => {
  const { followerApp } = twoHosts({ fault: "refused" });
  const e = await connectError(await postJson(followerApp, "GetSession", { shardId: "1" }));
  expect(e.code).toBe("unavailable");
  expect(e.message).toContain("forwarding to leader replica 2 of shard 1 at h2:8001 failed, not applied");
  const metrics = await (await followerApp.request("/metrics")).text();
  expect(metrics).toContain('longboat_api_forwarded_total{method="GetSession",result="error"} 1');
});

test("a forward whose connection is lost after sending is unknown: the leader may have applied it", async () => {
  const { followerApp, leader } = twoHosts({ fault: "reset" });
  const e = await connectError(await postJson(followerApp, "Propose", { shardId: "1", command: b64("x") }));
  expect(e.code).toBe("unknown");
  expect(e.message).toContain("may or may not have been applied");
  expect(leader.calls).toEqual(["syncPropose(client 0):1"]);
});

test("a forward the leader does not answer in time is deadline_exceeded (outcome unknown)", async () => {
  const { followerApp, env } = twoHosts({ fault: "hang" });
  const pending = postJson(followerApp, "Propose", { shardId: "1", command: b64("x"), timeoutMs: 500 });
  await Bun.sleep(0);
  env.advance(500 + FORWARD_GRACE_MS);
  const e = await connectError(await pending);
  expect(e.code).toBe("deadline_exceeded");
  expect(e.message).toContain(`no answer within ${500 + FORWARD_GRACE_MS} ms`);
});

test("stale reads, transfers and snapshots are served locally on a follower", async () => {
  const { follower, followerApp, forwarded } = twoHosts();
  expect((await postJson(followerApp, "StaleRead", { shardId: "1" })).status).toBe(200);
  expect((await postJson(followerApp, "TransferLeader", { shardId: "1", targetReplicaId: "1" })).status).toBe(
    200,
  );
  expect((await postJson(followerApp, "RequestSnapshot", { shardId: "1" })).status).toBe(200);
  expect(forwarded).toEqual([]);
  expect(follower.calls).toHaveLength(3);
});

test("without an API address for the leader the follower answers unavailable itself", async () => {
  const follower = new FakeNodeHost().addShard(1, { replicaId: 1, leaderId: 3 });
  const app = createNodeHostApi({ nodehost: follower, resolveApiAddress: () => undefined });
  expect(await connectError(await postJson(app, "Read", { shardId: "1" }))).toMatchObject({
    code: "unavailable",
  });
});
