// The README's embedding example, run as written (real SQLite and HTTP/2, one replica).
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  builtinApps,
  decodeKvQueryResult,
  encodeKvCommand,
  encodeKvQuery,
  NodeHost as LibraryNodeHost,
  type NodeHostConfig,
} from "../../src/index.ts";
import { freePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";

/** The library's NodeHost, registered so that it is stopped when the test ends however it ends. */
class NodeHost extends LibraryNodeHost {
  constructor(config: NodeHostConfig) {
    super(config);
    track(`NodeHost ${config.raftAddress}`, () => this.stop());
  }
}

test("the README embedding example stores a value and reads it back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "longboat-embed-"));
  const addr = `127.0.0.1:${freePort()}`;
  try {
    // --- README example begins (with "./data" and 127.0.0.1:7001 replaced) ---
    const nh = new NodeHost({ nodeHostDir: dir, raftAddress: addr, rttMs: 50 });
    await nh.startReplica(
      { 1: addr },
      false,
      builtinApps().get("kv"),
      { shardId: 1, replicaId: 1 },
      { app: "kv" },
    );
    await nh.waitReady(1, { timeoutMs: 5000 });
    const put = encodeKvCommand({ op: "put", key: "hello", value: new TextEncoder().encode("world") });
    await nh.syncPropose(nh.getNoOpSession(1), put, { timeoutMs: 5000 });
    const answer = await nh.syncRead(1, encodeKvQuery({ op: "get", key: "hello" }), { timeoutMs: 5000 });
    const value = new TextDecoder().decode(decodeKvQueryResult(answer).value); // "world"
    await nh.stop();
    // --- README example ends ---
    expect(value).toBe("world");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
