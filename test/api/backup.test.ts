// Backups over the NodeHost API: ExportSnapshot, a server stream of the snapshot's info then
// its file in chunks, read by NodeHostClient.backup and by clients we did not write (connect-es
// over Connect, gRPC and gRPC-Web); its bounds and errors. The fake NodeHost exports a real file.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { createNodeHostApi } from "../../src/api/app.ts";
import { ApiError, NodeHostClient } from "../../src/api/client.ts";
import { EXPORT_CHUNK_BYTES, MAX_EXPORTS } from "../../src/api/export.ts";
import type { ApiServer } from "../../src/api/server.ts";
import type { SnapshotExport } from "../../src/engine/export.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { verifySnapshotFile, writeSnapshotFile } from "../../src/logdb/snapshotfile.ts";
import { emptyMembership } from "../../src/raft/types.ts";
import { run as runBackup } from "../../src/cli/commands/backup.ts";
import type { BackupConfig } from "../../src/cli/config.ts";
import { CLIENT_KINDS, service } from "./clients.ts";
import { FakeNodeHost } from "./fake.ts";
import { serveOnTestPort } from "./serve.ts";

// Megabytes through real sockets: seconds on a busy machine.
setDefaultTimeout(60_000);

const dir = mkdtempSync(join(tmpdir(), "longboat-api-backup-"));

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

/** A fake whose exports are tracked, and can be held before they start (a slow snapshot). */
class ExportingFake extends FakeNodeHost {
  readonly exports: SnapshotExport[] = [];
  gate: Promise<void> | null = null;
  /** Exports waiting at the gate. */
  held = 0;
  /** Errors the next exports fail with, one each (a leader change, a slow machine). */
  exportFailures: LongboatError[] = [];
  override async syncExportSnapshot(shardId: number, opts: { unconfirmed?: boolean }) {
    const failure = this.exportFailures.shift();
    if (failure) throw failure;
    if (this.gate) {
      this.held++;
      await this.gate;
      this.held--;
    }
    const e = await super.syncExportSnapshot(shardId, opts);
    this.exports.push(e);
    return e;
  }
}

const file = snapshotFile(2 * 1024 * 1024 + 12345);
const fileBytes = new Uint8Array(readFileSync(file));
const fake = new ExportingFake().addShard(1);
fake.exportFile = file;
let server: ApiServer;
let address: string;

beforeAll(async () => {
  server = await serveOnTestPort(createNodeHostApi({ nodehost: fake }));
  address = `127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("NodeHostClient.backup receives the info, then every byte of the file in order, in 1 MiB chunks", async () => {
  const client = new NodeHostClient({ addresses: [address] });
  const chunks: Uint8Array[] = [];
  const progress: number[] = [];
  const info = await client.backup(1, (c) => void chunks.push(c), {
    onProgress: (done) => progress.push(done),
  });
  expect(Buffer.concat(chunks).equals(fileBytes)).toBe(true);
  expect(Math.max(...chunks.map((c) => c.byteLength))).toBe(EXPORT_CHUNK_BYTES);
  expect(info).toMatchObject({ address, shardId: 1, index: 77, term: 3, deploymentId: 9, app: "kv" });
  expect(info.sizeBytes).toBe(fileBytes.byteLength);
  expect(info.checksum).toBe(verifySnapshotFile(nodeFileSystem, file).checksum);
  expect(progress.at(0)).toBe(0);
  expect(progress.at(-1)).toBe(fileBytes.byteLength);
  expect(fake.exports.at(-1)!.closed).toBe(true);
});

test("an unreachable first address is skipped; an error of the NodeHost arrives with its code", async () => {
  const client = new NodeHostClient({ addresses: ["127.0.0.1:1", address] });
  expect((await client.backup(1, () => {})).sizeBytes).toBe(fileBytes.byteLength);
  const error = await client.backup(9, () => {}).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  expect((error as ApiError).code).toBe("not_found");
  expect((error as ApiError).message).toContain("shard 9");
});

test("a client that leaves mid-stream has its export closed", async () => {
  const client = new NodeHostClient({ addresses: [address] });
  const stop = new Error("enough");
  const error = await client
    .backup(1, () => {
      throw stop;
    })
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  const e = fake.exports.at(-1)!;
  for (let i = 0; i < 200 && !e.closed; i++) await Bun.sleep(10);
  expect(e.closed).toBe(true);
});

test(`at most ${MAX_EXPORTS} exports run at once; more are resource_exhausted`, async () => {
  const small = snapshotFile(1000);
  fake.exportFile = small;
  let open!: () => void;
  fake.gate = new Promise((resolve) => {
    open = resolve;
  });
  const client = () => new NodeHostClient({ addresses: [address], timeoutMs: 30_000 });
  const running = Array.from({ length: MAX_EXPORTS }, () => client().backup(1, () => {}));
  for (let i = 0; i < 1000 && fake.held < MAX_EXPORTS; i++) await Bun.sleep(10);
  expect(fake.held).toBe(MAX_EXPORTS);
  const refused = await client()
    .backup(1, () => {})
    .catch((e: unknown) => e);
  expect((refused as ApiError).code).toBe("resource_exhausted");
  fake.gate = null;
  open();
  for (const info of await Promise.all(running)) expect(info.sizeBytes).toBe(readFileSync(small).byteLength);
  fake.exportFile = file;
});

for (const kind of CLIENT_KINDS) {
  test(`${kind.name}: ExportSnapshot streams the info and the file`, async () => {
    const client = createClient(
      service("longboat.nodehost.v1.NodeHostService"),
      kind.transport(`http://${address}`),
    ) as unknown as {
      exportSnapshot(req: object): AsyncIterable<{ part: { case: string; value: unknown } }>;
    };
    const chunks: Uint8Array[] = [];
    let info: { index?: bigint } | undefined;
    for await (const m of client.exportSnapshot({ shardId: 1n })) {
      if (m.part.case === "info") info = m.part.value as { index: bigint };
      else chunks.push(m.part.value as Uint8Array);
    }
    expect(info?.index).toBe(77n);
    expect(Buffer.concat(chunks).equals(fileBytes)).toBe(true);
  });
}

test("a NodeHost error before the stream starts is a LongboatError's code", async () => {
  fake.failNext = new LongboatError("invalidOperation", "replica of shard 1 keeps no snapshots");
  const error = await new NodeHostClient({ addresses: [address] })
    .backup(1, () => {})
    .catch((e: unknown) => e);
  expect((error as ApiError).code).toBe("invalid_argument");
  expect((error as ApiError).message).toContain("keeps no snapshots");
});

test("longboat backup starts again when an export is cut by a leader change or a timeout, within --timeout-ms", async () => {
  // Seen under load: the backup failed at once when leadership moved during its export.
  fake.exportFailures = [
    new LongboatError("shardNotReady", "no leader known (an election)"),
    new LongboatError("timeout", "the read index round timed out"),
  ];
  const out = join(dir, "retried.lbsnap");
  const config = { nodehost: [address], shard: 1, out, withoutQuorum: false, json: true, timeoutMs: 30_000 };
  expect(await runBackup(config as BackupConfig)).toBe(0);
  expect(fake.exportFailures).toEqual([]);
  expect(new Uint8Array(readFileSync(out))).toEqual(fileBytes);
});

test("longboat backup does not start again after an answer that cannot change (bad argument)", async () => {
  fake.exportFailures = [new LongboatError("invalidOperation", "not on a witness")];
  const out = join(dir, "refused.lbsnap");
  const config = { nodehost: [address], shard: 1, out, withoutQuorum: false, json: true, timeoutMs: 30_000 };
  expect(await runBackup(config as BackupConfig)).toBe(1);
  expect(existsSync(out)).toBe(false);
  expect(existsSync(`${out}.tmp`)).toBe(false);
});
