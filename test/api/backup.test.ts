import { nodeFileSystem } from "../../src/fs/node.ts";
// Backups over the NodeHost API: OpenBackup, ReadBackup by offset, CloseBackup, and the client's
// NodeHostClient.backup over a real server (the fake NodeHost exports a real snapshot file).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNodeHostApi } from "../../src/api/app.ts";
import { BACKUP_IDLE_MS, MAX_OPEN_BACKUPS } from "../../src/api/backups.ts";
import { NodeHostClient } from "../../src/api/client.ts";
import { type ApiServer, serveApi } from "../../src/api/server.ts";
import { ManualEnv } from "../../src/env.ts";
import { writeSnapshotFile } from "../../src/logdb/snapshotfile.ts";
import { emptyMembership } from "../../src/raft/types.ts";
import { FakeNodeHost } from "./fake.ts";
import { connectError, postJson } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "longboat-api-backup-"));
const servers: ApiServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A real snapshot file of shard 1 with payloadBytes of payload. */
function snapshotFile(payloadBytes: number): string {
  const path = join(dir, `snap-${payloadBytes}.lbsnap`);
  const payload = new Uint8Array(payloadBytes).map((_, i) => (i * 31) % 251);
  const meta = {
    shardId: 1,
    replicaId: 1,
    index: 77,
    term: 3,
    membership: emptyMembership(),
    filePath: "",
    fileSizeBytes: 0,
    witness: false,
    dummy: false,
    onDiskIndex: 0,
    app: "kv",
    checksum: 0,
    deploymentId: 9,
  };
  writeSnapshotFile(nodeFileSystem, path, meta, (sink) => sink(payload));
  return path;
}

test("NodeHostClient.backup streams the snapshot file, every byte in order, in bounded chunks", async () => {
  const fake = new FakeNodeHost().addShard(1);
  fake.exportFile = snapshotFile(3 * 1024 * 1024 + 12345);
  const server = await serveApi(createNodeHostApi({ nodehost: fake }), { hostname: "127.0.0.1", port: 0 });
  servers.push(server);
  const client = new NodeHostClient({ addresses: [`127.0.0.1:${server.port}`] });
  const chunks: Uint8Array[] = [];
  const progress: number[] = [];
  const info = await client.backup(1, (c) => void chunks.push(c), {
    onProgress: (done) => progress.push(done),
  });
  const expected = new Uint8Array(readFileSync(fake.exportFile));
  expect(Buffer.concat(chunks).equals(expected)).toBe(true);
  expect(Math.max(...chunks.map((c) => c.byteLength))).toBe(1024 * 1024);
  expect(info).toMatchObject({
    shardId: 1,
    index: 77,
    term: 3,
    deploymentId: 9,
    app: "kv",
    sizeBytes: expected.byteLength,
  });
  expect(progress.at(0)).toBe(0);
  expect(progress.at(-1)).toBe(expected.byteLength);
  expect(fake.calls).toEqual(["export:confirmed:1"]);
});

test("a closed backup is not_found; an offset past the end is out_of_range; a chunk over 4 MiB is invalid_argument", async () => {
  const fake = new FakeNodeHost().addShard(1);
  fake.exportFile = snapshotFile(1000);
  const app = createNodeHostApi({ nodehost: fake });
  const open = (await (await postJson(app, "OpenBackup", { shardId: "1", unconfirmed: true })).json()) as {
    backupId: string;
    sizeBytes: string;
  };
  expect(fake.calls).toEqual(["export:unconfirmed:1"]);
  const size = Number(open.sizeBytes);
  const tail = (await (
    await postJson(app, "ReadBackup", { backupId: open.backupId, offset: size - 10, maxBytes: 100 })
  ).json()) as { data: string };
  expect(Buffer.from(tail.data, "base64").byteLength).toBe(10);
  const past = await connectError(
    await postJson(app, "ReadBackup", { backupId: open.backupId, offset: size + 1 }),
  );
  expect(past.code).toBe("out_of_range");
  const big = await connectError(
    await postJson(app, "ReadBackup", { backupId: open.backupId, offset: 0, maxBytes: 4 * 1024 * 1024 + 1 }),
  );
  expect(big.code).toBe("invalid_argument");
  expect((await postJson(app, "CloseBackup", { backupId: open.backupId })).status).toBe(200);
  const closed = await connectError(
    await postJson(app, "ReadBackup", { backupId: open.backupId, offset: 0 }),
  );
  expect(closed.code).toBe("not_found");
  expect(closed.message).toContain("open a new one");
});

test(`at most ${MAX_OPEN_BACKUPS} backups are open; an idle one closes after ${BACKUP_IDLE_MS / 1000} s`, async () => {
  const env = new ManualEnv(1);
  const fake = new FakeNodeHost().addShard(1);
  fake.exportFile = snapshotFile(100);
  const app = createNodeHostApi({ nodehost: fake, env });
  const ids: string[] = [];
  for (let i = 0; i < MAX_OPEN_BACKUPS; i++) {
    const res = await postJson(app, "OpenBackup", { shardId: "1" });
    expect(res.status).toBe(200);
    ids.push(((await res.json()) as { backupId: string }).backupId);
  }
  const refused = await connectError(await postJson(app, "OpenBackup", { shardId: "1" }));
  expect(refused.code).toBe("resource_exhausted");
  env.advance(BACKUP_IDLE_MS - 1);
  expect((await postJson(app, "ReadBackup", { backupId: ids[0], offset: 0 })).status).toBe(200);
  env.advance(2);
  // Every backup but the one just read has been idle for the whole time: closed.
  expect((await connectError(await postJson(app, "ReadBackup", { backupId: ids[1], offset: 0 }))).code).toBe(
    "not_found",
  );
  expect((await postJson(app, "OpenBackup", { shardId: "1" })).status).toBe(200);
  env.advance(BACKUP_IDLE_MS);
  expect((await connectError(await postJson(app, "ReadBackup", { backupId: ids[0], offset: 0 }))).code).toBe(
    "not_found",
  );
});
