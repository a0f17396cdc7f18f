// The drummer client of `longboat cmd`: which failures send a call to the next drummer, and
// how a write whose first answer was lost is settled. Drummers are played by a fetch double
// answering in the Drummer API's wire format (application/proto, Connect error bodies).
import { describe, expect, test } from "bun:test";
import type { FetchLike } from "../../src/api/types.ts";
import { Drummers, messageOf } from "../../src/cli/commands/cmd-drummer-client.ts";
import { DRUMMER_METHOD_TYPES } from "../../src/drummer/api/methods.ts";
import type { DrummerMethod } from "../../src/drummer/api/schemas.ts";
import { DrummerCallError } from "../../src/drummer/client.ts";

type Answer =
  | { ok: Record<string, unknown> }
  | { code: string; status: number; message: string }
  | { refused: true };

/** A fetch that answers each call from script(address, method, request) and records the calls. */
function drummersDouble(
  script: (address: string, method: DrummerMethod, req: Record<string, unknown>) => Answer,
) {
  const calls: string[] = [];
  const headers: Headers[] = [];
  const fetchFn: FetchLike = async (url, init) => {
    const u = new URL(url);
    headers.push(new Headers(init.headers));
    const method = u.pathname.split("/").at(-1) as DrummerMethod;
    const types = DRUMMER_METHOD_TYPES[method];
    const req = types.request.toObject(types.request.decode(new Uint8Array(init.body as Uint8Array)), {
      defaults: true,
      arrays: true,
    });
    calls.push(`${u.host} ${method}`);
    const a = script(u.host, method, req);
    if ("refused" in a)
      throw Object.assign(new TypeError("Unable to connect"), { code: "ConnectionRefused" });
    if ("ok" in a) {
      const bytes = types.response.encode(types.response.fromObject(a.ok)).finish();
      return new Response(bytes, { status: 200, headers: { "content-type": "application/proto" } });
    }
    return new Response(JSON.stringify({ code: a.code, message: a.message }), {
      status: a.status,
      headers: { "content-type": "application/json" },
    });
  };
  return { calls, fetchFn, headers };
}

const DEF = { shardId: 1, app: "kv", replicaCount: 3, regions: [] };
const exists = {
  code: "already_exists",
  status: 409,
  message: "shard 1 is already defined (app kv, 3 replicas)",
};
const lost = { code: "deadline_exceeded", status: 504, message: "timed out" };

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("it succeeded");
}

describe("Drummers.request", () => {
  test("a write whose answer was lost is retried elsewhere; 'already defined' with the same definition is success", async () => {
    const d = drummersDouble((address, method) => {
      if (method === "CreateShard") return address === "a:1" ? lost : exists;
      if (method === "ListShards") return { ok: { shards: [{ definition: DEF }], fromLeader: true } };
      throw new Error(method);
    });
    const c = new Drummers({ addresses: ["a:1", "b:1"], timeoutMs: 2000, fetch: d.fetchFn });
    const r = await c.request("CreateShard", DEF);
    expect(r).toMatchObject({ shard: { shardId: 1, app: "kv", replicaCount: 3 } });
    expect(d.calls).toEqual(["a:1 CreateShard", "b:1 CreateShard", "a:1 ListShards"]);
  });

  test("... but with another definition it is the user's conflict: already_exists", async () => {
    const d = drummersDouble((address, method) => {
      if (method === "CreateShard") return address === "a:1" ? lost : exists;
      return { ok: { shards: [{ definition: { ...DEF, app: "noop" } }], fromLeader: true } };
    });
    const c = new Drummers({ addresses: ["a:1", "b:1"], timeoutMs: 2000, fetch: d.fetchFn });
    const e = await failure(c.request("CreateShard", DEF));
    expect(e).toBeInstanceOf(DrummerCallError);
    expect((e as DrummerCallError).code).toBe("already_exists");
  });

  test("a write that never reached a drummer (refused, or unavailable = not applied) is not settled: already_exists stands", async () => {
    for (const first of [
      { refused: true } as const,
      { code: "unavailable", status: 503, message: "no leader" },
    ]) {
      const d = drummersDouble((address) => (address === "a:1" ? first : exists));
      const c = new Drummers({ addresses: ["a:1", "b:1"], timeoutMs: 2000, fetch: d.fetchFn });
      const e = await failure(c.request("CreateShard", DEF));
      expect((e as DrummerCallError).code).toBe("already_exists");
      expect(d.calls).toEqual(["a:1 CreateShard", "b:1 CreateShard"]);
    }
  });

  test("bootstrap whose answer was lost, then 'already bootstrapped': success once GetDeployment confirms", async () => {
    const d = drummersDouble((address, method) => {
      if (method === "Bootstrap")
        return address === "a:1"
          ? lost
          : { code: "failed_precondition", status: 400, message: "the deployment is already bootstrapped" };
      return { ok: { deploymentId: 1, bootstrapped: true, shardCount: 4, leaderDrummerId: 2 } };
    });
    const c = new Drummers({ addresses: ["a:1", "b:1"], timeoutMs: 2000, fetch: d.fetchFn });
    expect(await c.request("Bootstrap", {})).toEqual({ shardCount: 4 });
  });

  test("a read goes past a drummer in trouble (internal, refused) to one that answers; a refusal ends it at once", async () => {
    const d = drummersDouble((address, method) => {
      if (address === "a:1") return { code: "internal", status: 500, message: "replica removed" };
      if (address === "b:1") return { refused: true };
      if (method === "ListShards") return { ok: { shards: [], unknownShardIds: [7], fromLeader: true } };
      return { code: "invalid_argument", status: 400, message: "CreateShardRequest.app must be an app name" };
    });
    const c = new Drummers({ addresses: ["a:1", "b:1", "c:1"], timeoutMs: 2000, fetch: d.fetchFn });
    expect(await c.request("ListShards", { shardIds: [7] })).toMatchObject({ unknownShardIds: [7] });
    d.calls.length = 0;
    const e = await failure(c.request("CreateShard", { ...DEF, app: "" }));
    expect((e as DrummerCallError).code).toBe("invalid_argument");
    expect(d.calls).toEqual(["a:1 CreateShard", "b:1 CreateShard", "c:1 CreateShard"]);
  });

  test("ListDrummers teaches the leader: it is asked first from then on", async () => {
    const d = drummersDouble((_address, method) =>
      method === "ListDrummers"
        ? {
            ok: {
              drummers: [
                { drummerId: 1, raftAddress: "a:2", apiAddress: "a:1", isLeader: false },
                { drummerId: 3, raftAddress: "z:2", apiAddress: "z:1", isLeader: true },
              ],
              leaderDrummerId: 3,
            },
          }
        : { ok: { nodehosts: [], fromLeader: true } },
    );
    const c = new Drummers({ addresses: ["a:1"], timeoutMs: 2000, fetch: d.fetchFn });
    await c.locateLeader();
    await c.request("ListNodeHosts", {});
    expect(d.calls).toEqual(["a:1 ListDrummers", "z:1 ListNodeHosts"]);
    expect(c.addresses).toEqual(["a:1", "z:1"]);
  });

  test("no drummer answers within the timeout: one error naming what each said, after more than one round", async () => {
    const d = drummersDouble(() => ({
      code: "unavailable",
      status: 503,
      message: "the drummers have no leader ready yet",
    }));
    const c = new Drummers({ addresses: ["a:1", "b:1"], timeoutMs: 700, fetch: d.fetchFn });
    const e = await failure(c.request("ListNodeHosts", {}));
    expect(e.message).toBe(
      [
        "no drummer could answer ListNodeHosts within 700 ms:",
        "  the drummers have no leader ready yet (unavailable, drummer a:1)",
        "  the drummers have no leader ready yet (unavailable, drummer b:1)",
      ].join("\n"),
    );
    expect(d.calls.length).toBeGreaterThanOrEqual(4);
  });

  test("a NodeHost's API at a drummer address: 'not a drummer's API', naming the --api-address mix-up", async () => {
    const d = drummersDouble(() => ({ code: "unimplemented", status: 404, message: "no such path" }));
    const c = new Drummers({ addresses: ["h:1"], timeoutMs: 5000, fetch: d.fetchFn });
    const e = await failure(c.request("Bootstrap", {}));
    expect(d.calls).toEqual(["h:1 Bootstrap"]); // no second round: waiting will not make it a drummer
    expect(e.message).toContain(
      "this is not a drummer's API (it does not serve the Drummer API: no such path)",
    );
    expect(e.message).toContain("is it a NodeHost's --api-address?");
  });

  test("the token goes with every call; a wrong one is a refusal that ends the call (unauthenticated)", async () => {
    const d = drummersDouble(() => ({
      code: "unauthenticated",
      status: 401,
      message: "a valid bearer token is required",
    }));
    const c = new Drummers({
      addresses: ["a:1", "b:1"],
      timeoutMs: 2000,
      fetch: d.fetchFn,
      security: { token: "s3cret" },
    });
    const e = await failure(c.request("ListShards", { shardIds: [] }));
    expect(messageOf(e)).toBe("a valid bearer token is required (unauthenticated, drummer a:1)");
    expect(d.calls).toEqual(["a:1 ListShards"]);
    expect(d.headers[0]!.get("authorization")).toBe("Bearer s3cret");
  });
});
