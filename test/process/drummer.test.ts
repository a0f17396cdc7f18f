// The compiled binary as a managed deployment: three `longboat drummer` processes form the
// DrummerDB shard, four `longboat nodehost --master` processes get shards placed, and a
// NodeHost killed with kill -9 has its replicas rebuilt elsewhere with no hand on the keyboard.
// (The full process matrix of a managed deployment is issue #15's.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeKvQueryResult, encodeKvCommand, encodeKvQuery } from "../../src/statemachine/kv.ts";
import { freePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { BIN, connectJson, ensureBinary, waitFor } from "./harness.ts";

const SHARDS = [1, 2, 3, 4];
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

interface Proc {
  name: string;
  args: string[];
  proc: ReturnType<typeof Bun.spawn> | null;
}

const dir = mkdtempSync(join(tmpdir(), "longboat-drummer-proc-"));
const procs: Proc[] = [];
const drummerApis: string[] = [];
const hosts: { raft: string; api: string; proc: Proc }[] = [];
const lowPort = async () => freePort();

async function killAll(): Promise<void> {
  for (const p of procs) {
    p.proc?.kill("SIGKILL");
    await p.proc?.exited;
    p.proc = null;
  }
}
// Every process is killed when the file ends, however it ends.
track("drummer process test", killAll);

function start(name: string, args: string[]): Proc {
  const log = Bun.file(join(process.env.LONGBOAT_PROC_LOGS ?? dir, `${name.replace(" ", "-")}.log`));
  const p: Proc = { name, args, proc: Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: log }) };
  procs.push(p);
  return p;
}

const rpc = connectJson;

/** Asks each drummer in turn until one answers. */
async function drummers(method: string, body: unknown = {}): Promise<Record<string, unknown>> {
  let last: unknown;
  for (const api of drummerApis) {
    try {
      return await rpc(api, "drummer", method, body);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

interface ShardStatus {
  definition: { shardId: string };
  health: string;
  members: { raftAddress: string; apiAddress: string; state: string }[];
}

async function shards(): Promise<ShardStatus[]> {
  const r = await drummers("ListShards", {});
  return (r.shards as ShardStatus[]) ?? [];
}

async function allOk(exclude?: string): Promise<boolean> {
  try {
    const list = await shards();
    return (
      list.length === SHARDS.length &&
      list.every((s) => s.health === "SHARD_HEALTH_OK" && s.members.every((m) => m.raftAddress !== exclude))
    );
  } catch {
    return false;
  }
}

beforeAll(async () => {
  ensureBinary();
  const peers: string[] = [];
  for (const id of [1, 2, 3]) {
    peers.push(`${id}=127.0.0.1:${await lowPort()}`);
    drummerApis.push(`127.0.0.1:${await lowPort()}`);
  }
  for (const id of [1, 2, 3]) {
    start(`drummer ${id}`, [
      "drummer",
      "--id",
      String(id),
      "--peers",
      peers.join(","),
      "--api-address",
      drummerApis[id - 1]!,
      "--data-dir",
      join(dir, `drummer-${id}`),
      "--rtt-ms",
      "20",
      "--dead-timeout",
      "3s",
      "--report-interval",
      "500ms",
    ]);
  }
  for (const i of [1, 2, 3, 4]) {
    const raft = `127.0.0.1:${await lowPort()}`;
    const api = `127.0.0.1:${await lowPort()}`;
    const args = [
      "nodehost",
      "--raft-address",
      raft,
      "--api-address",
      api,
      "--data-dir",
      join(dir, `host-${i}`),
    ];
    const proc = start(`nodehost ${i}`, [...args, "--rtt-ms", "20", "--master", drummerApis.join(",")]);
    hosts.push({ raft, api, proc });
  }
}, 60_000);

afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("longboat drummer with nodehost --master", () => {
  test("shards are placed; a NodeHost killed with kill -9 has its replicas rebuilt; written data survives", async () => {
    await waitFor(
      async () => {
        try {
          return Number((await drummers("GetDeployment")).leaderDrummerId) > 0;
        } catch {
          return false;
        }
      },
      60_000,
      "a drummer leader",
    );
    for (const shardId of SHARDS) await drummers("CreateShard", { shardId, app: "kv", replicaCount: 3 });
    await drummers("Bootstrap");
    await waitFor(() => allOk(), 90_000, "every shard placed and healthy");

    const shard1 = (await shards()).find((s) => s.definition.shardId === "1")!;
    const via = shard1.members[0]!.apiAddress;
    const put = encodeKvCommand({ op: "put", key: "greeting", value: new TextEncoder().encode("hello") });
    // "unavailable" is "not applied" (no leader yet): safe to retry.
    await waitFor(
      () =>
        rpc(via, "nodehost", "Propose", { shardId: "1", command: b64(put), timeoutMs: 5000 }).then(
          () => true,
          () => false,
        ),
      30_000,
      "the write",
    );

    const victim = hosts.find((h) => h.raft === shard1.members[1]!.raftAddress)!;
    victim.proc.proc!.kill("SIGKILL");
    await victim.proc.proc!.exited;
    victim.proc.proc = null;
    try {
      await waitFor(() => allOk(victim.raft), 120_000, "every shard rebuilt without the killed NodeHost");
    } catch (e) {
      console.error(
        JSON.stringify(await shards(), null, 1),
        JSON.stringify(await drummers("ListDecisions", { includeFinished: true })),
      );
      throw e;
    }

    const now = (await shards()).find((s) => s.definition.shardId === "1")!;
    expect(now.members.map((m) => m.raftAddress)).not.toContain(victim.raft);
    const reader = now.members.find((m) => m.raftAddress !== shard1.members[0]!.raftAddress)!.apiAddress;
    // A linearizable read; "unavailable" (no leader this moment, e.g. an election on a loaded
    // machine) is not an answer, so it is asked again.
    let read: Record<string, unknown> = {};
    await waitFor(
      () =>
        rpc(reader, "nodehost", "Read", {
          shardId: "1",
          query: b64(encodeKvQuery({ op: "get", key: "greeting" })),
          timeoutMs: 5000,
        }).then(
          (r) => {
            read = r;
            return true;
          },
          (e) => {
            if (!String(e).includes('"unavailable"')) throw e;
            return false;
          },
        ),
      60_000,
      `a read of shard 1 through ${reader}`,
    );
    const answer = decodeKvQueryResult(Buffer.from(String(read.result), "base64"));
    expect(new TextDecoder().decode(answer.value)).toBe("hello");
    // The pass after the shard is whole counts the repair done (and a follower may answer a
    // moment behind the leader).
    await waitFor(
      async () => Number((await drummers("ListDecisions", { includeFinished: true })).repairsDone) > 0,
      30_000,
      "the repair counted done",
    );
  }, 300_000);
});
