import { describe, expect, test } from "bun:test";
import { createNodeHostApi } from "../../src/api/app.ts";
import { METHOD_TYPES } from "../../src/api/methods.ts";
import type { MethodName } from "../../src/api/schemas.ts";
import { FakeNodeHost } from "./fake.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { RESULT_REJECTED } from "../../src/statemachine/types.ts";
import { b64, connectError, postJson, postProto, text } from "./helpers.ts";

// biome-ignore lint/suspicious/noExplicitAny: response JSON is inspected freely in checks
type Json = Record<string, any>;

interface Case {
  method: MethodName;
  name: string;
  request: Json;
  check(response: Json, fake: FakeNodeHost): void;
}

const CASES: Case[] = [
  {
    method: "GetSession",
    name: "registers a session",
    request: { shardId: "1", timeoutMs: 1000 },
    check: (r) =>
      expect(r.session).toEqual({ shardId: "1", clientId: "42", seriesId: "1", respondedTo: "0" }),
  },
  {
    method: "CloseSession",
    name: "closes a session",
    request: { session: { shardId: "1", clientId: "42", seriesId: "1" } },
    check: (r, fake) => {
      expect(r).toEqual({});
      expect(fake.calls).toEqual(["closeSession:1"]);
    },
  },
  {
    method: "Propose",
    name: "proposes with the no-op session",
    request: { shardId: "1", command: b64("put") },
    check: (r, fake) => {
      expect(r).toEqual({ value: "3", data: b64("put"), index: "21" });
      expect(fake.calls).toEqual(["syncPropose(client 0):1"]);
    },
  },
  {
    method: "Propose",
    name: "proposes with a client session",
    request: {
      session: { shardId: "1", clientId: "42", seriesId: "2", respondedTo: "1" },
      command: b64("x"),
    },
    check: (_r, fake) => expect(fake.calls).toEqual(["syncPropose(client 42):1"]),
  },
  {
    method: "Read",
    name: "reads linearizably",
    request: { shardId: "1", query: b64("k") },
    check: (r) => expect(text(r.result)).toBe("read:k"),
  },
  {
    method: "StaleRead",
    name: "reads the local replica",
    request: { shardId: "1", query: b64("k") },
    check: (r) => expect(text(r.result)).toBe("stale:k"),
  },
  {
    method: "AddReplica",
    name: "adds a non-voting replica",
    request: { shardId: "1", replicaId: "3", raftAddress: "h3:7001", role: "REPLICA_ROLE_NON_VOTING" },
    check: (r) => {
      expect(r.membership.nonVotings).toEqual([{ replicaId: "3", address: "h3:7001" }]);
      expect(r.membership.configChangeId).toBe("8");
    },
  },
  {
    method: "DeleteReplica",
    name: "deletes a replica",
    request: { shardId: "1", replicaId: "2", configChangeId: "7" },
    check: (r) => {
      expect(r.membership.removed).toEqual(["2"]);
      expect(r.membership.addresses).toEqual([{ replicaId: "1", address: "h1:7001" }]);
    },
  },
  {
    method: "GetMembership",
    name: "reads the membership",
    request: { shardId: "1" },
    check: (r) => {
      expect(r.membership.configChangeId).toBe("7");
      expect(r.membership.addresses).toHaveLength(2);
    },
  },
  {
    method: "TransferLeader",
    name: "requests a leader transfer",
    request: { shardId: "1", targetReplicaId: "2" },
    check: (r, fake) => {
      expect(r).toEqual({});
      expect(fake.calls).toEqual(["transfer:2:1"]);
    },
  },
  {
    method: "RequestSnapshot",
    name: "requests a snapshot exported into the operator's directory with a compaction overhead",
    request: {
      shardId: "1",
      export: true,
      compactionOverhead: "5",
      overrideCompactionOverhead: true,
    },
    check: (r, fake) => {
      expect(r.index).toBe("123");
      expect(fake.calls).toEqual(["snapshot:/tmp/x:5:1"]);
    },
  },
  {
    method: "RequestSnapshot",
    name: "requests a snapshot with a compaction index",
    request: { shardId: "1", compactionIndex: "40" },
    check: (_r, fake) => expect(fake.calls).toEqual(["snapshot::-@40:1"]),
  },
  {
    method: "RemoveData",
    name: "removes a stopped replica's data with the shard's membership",
    request: {
      shardId: "1",
      replicaId: "3",
      membership: {
        configChangeId: "12",
        addresses: [{ replicaId: "1", address: "h1:7001" }],
        removed: ["3"],
      },
    },
    check: (r, fake) => {
      expect(r).toEqual({});
      expect(fake.calls).toEqual(["removeData:1:3:12"]);
    },
  },
  {
    method: "Compact",
    name: "compacts with an overhead and reports the space",
    request: { shardId: "1", compactionOverhead: "0", overrideCompactionOverhead: true },
    check: (r, fake) => {
      expect(fake.calls).toEqual(["compact:0:1"]);
      expect(r).toMatchObject({ entriesRemoved: "90", firstIndex: "91", fileBytesBefore: "65536" });
    },
  },
  {
    method: "QueryRaftLog",
    name: "reads entries from the start with the default size",
    request: { shardId: "1" },
    check: (r, fake) => {
      expect(fake.calls).toEqual([`log:0:${Number.MAX_SAFE_INTEGER}:1048576:1`]);
      expect(r).toMatchObject({ firstIndex: "5", lastIndex: "9", commitIndex: "8", snapshotIndex: "4" });
      expect(r.entries).toHaveLength(1);
      expect(r.entries[0]).toMatchObject({ index: "5", term: "3", type: "ENTRY_TYPE_APPLICATION" });
      expect(text(r.entries[0].cmd)).toBe("cmd");
    },
  },
  {
    method: "Status",
    name: "reports every shard",
    request: {},
    check: (r) => {
      expect(r.raftAddress).toBe("h1:7001");
      expect(r.apiAddress).toBe("h1:8001");
      expect(r.region).toBe("eu");
      expect(r.deploymentId).toBe("9");
      expect(r.shards).toHaveLength(1);
      expect(r.shards[0]).toMatchObject({ shardId: "1", role: "ROLE_LEADER", term: "3", leaderId: "1" });
      expect(r.shards[0].commitIndex).toBe("20");
      expect(r.logsOnDisk).toEqual([{ shardId: "1", replicaId: "1" }]);
    },
  },
];

function setup() {
  const fake = new FakeNodeHost().addShard(1);
  const app = createNodeHostApi({
    nodehost: fake,
    apiAddress: "h1:8001",
    region: "eu",
    snapshotExportDir: "/tmp/x",
  });
  return { fake, app };
}

describe("every method round-trips", () => {
  for (const c of CASES) {
    test(`${c.method} in JSON ${c.name}`, async () => {
      const { fake, app } = setup();
      const res = await postJson(app, c.method, c.request);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json");
      c.check((await res.json()) as Json, fake);
    });

    test(`${c.method} in proto ${c.name}`, async () => {
      const { fake, app } = setup();
      const types = METHOD_TYPES[c.method];
      const body = types.request.encode(types.request.fromObject(c.request)).finish();
      const res = await postProto(app, c.method, body);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/proto");
      const decoded = types.response.decode(new Uint8Array(await res.arrayBuffer()));
      const asJson = types.response.toObject(decoded, {
        longs: String,
        bytes: String,
        enums: String,
        defaults: true,
      });
      c.check(JSON.parse(JSON.stringify(asJson)) as Json, fake);
    });
  }
});

test("JSON accepts snake_case field names and numbers for uint64", async () => {
  const { app } = setup();
  const res = await postJson(app, "Read", { shard_id: 1, query: b64("k"), timeout_ms: 100 });
  expect(res.status).toBe(200);
  expect(text(((await res.json()) as Json).result)).toBe("read:k");
});

test("an empty JSON body is the all-defaults message", async () => {
  const { app } = setup();
  const res = await postJson(app, "Status", "");
  expect(res.status).toBe(200);
});

test("timeoutMs 0 becomes the default timeout", async () => {
  const fake = new FakeNodeHost().addShard(1);
  const seen: number[] = [];
  const read = fake.syncRead.bind(fake);
  fake.syncRead = (shardId: number, query: Uint8Array, opts?: { timeoutMs: number }) => {
    if (!opts) throw new Error("syncRead called without options");
    seen.push(opts.timeoutMs);
    return read(shardId, query);
  };
  const app = createNodeHostApi({ nodehost: fake, defaultTimeoutMs: 1234 });
  await postJson(app, "Read", { shardId: "1", timeoutMs: 0 });
  await postJson(app, "Read", { shardId: "1", timeoutMs: 77 });
  expect(seen).toEqual([1234, 77]);
});

test("a command the state machine refused when applying is failed_precondition naming the index and the reason", async () => {
  const fake = new FakeNodeHost().addShard(1);
  fake.syncPropose = async () => ({
    value: RESULT_REJECTED,
    data: new TextEncoder().encode('add: the value of "n" is not an integer counter'),
    index: 57,
  });
  const app = createNodeHostApi({ nodehost: fake });
  const e = await connectError(await postJson(app, "Propose", { shardId: "1", command: b64("x") }));
  expect(e).toEqual({
    status: 400,
    code: "failed_precondition",
    message:
      'the state machine of shard 1 refused the command at log index 57 (nothing changed): add: the value of "n" is not an integer counter',
  });
});

test("a command refused before proposing (invalidCommand) is invalid_argument", async () => {
  const fake = new FakeNodeHost().addShard(1);
  fake.failNext = new LongboatError("invalidCommand", "shard 1 (app kv): put: key is empty");
  const app = createNodeHostApi({ nodehost: fake });
  const e = await connectError(await postJson(app, "Propose", { shardId: "1", command: b64("x") }));
  expect(e).toMatchObject({ status: 400, code: "invalid_argument" });
  expect(e.message).toContain("put: key is empty");
});
