import { afterAll, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LogDBCorruptError, LogDBIdentityError, SnapshotCorruptError } from "../../src/logdb/errors.ts";
import { readSnapshotFile, writeSnapshotFile } from "../../src/logdb/snapshotfile.ts";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { LOGDB_FILE_NAME, openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { ents, IDENTITY, snap, up } from "./logdb.case.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-corrupt-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function filledDb(name: string): string {
  const dir = join(root, name);
  const db = openSqliteLogDB({ dir, identity: IDENTITY });
  for (let b = 0; b < 20; b++) db.saveUpdates([up({ entries: ents(b * 50 + 1, b * 50 + 50, 1, 200) })]);
  db.close();
  return dir;
}

function openError(dir: string, identity = IDENTITY): unknown {
  try {
    openSqliteLogDB({ dir, identity }).close();
  } catch (error) {
    return error;
  }
  return null;
}

test("a truncated database is refused at open with LogDBCorruptError naming the file", () => {
  const dir = filledDb("truncated");
  const file = join(dir, LOGDB_FILE_NAME);
  expect(existsSync(`${file}-wal`)).toBe(false);
  truncateSync(file, Math.floor(statSync(file).size / 2));
  const error = openError(dir);
  expect(error).toBeInstanceOf(LogDBCorruptError);
  expect((error as Error).message).toContain(file);
  expect((error as Error).message).toContain("restore the data directory");
});

test("a database file overwritten with garbage is refused with LogDBCorruptError", () => {
  const dir = join(root, "garbage");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, LOGDB_FILE_NAME), new Uint8Array(8192).fill(0x5a));
  expect(openError(dir)).toBeInstanceOf(LogDBCorruptError);
});

test("a page of the entries table overwritten with zeros is refused, never read as data", () => {
  const dir = filledDb("zeroed");
  const file = join(dir, LOGDB_FILE_NAME);
  const bytes = new Uint8Array(readFileSync(file));
  bytes.fill(0, 8192 * 3, 8192 * 4);
  writeFileSync(file, bytes);
  expect(openError(dir)).toBeInstanceOf(LogDBCorruptError);
});

test("a data directory of another deployment is refused and left untouched", () => {
  const dir = filledDb("other-deployment");
  const error = openError(dir, { ...IDENTITY, deploymentId: 99 });
  expect(error).toBeInstanceOf(LogDBIdentityError);
  expect((error as Error).message).toBe(
    `data directory ${dir} belongs to deployment 7, not 99 (use the original --deployment-id or a new --data-dir)`,
  );
  const db = openSqliteLogDB({ dir, identity: IDENTITY });
  expect(db.readLogState({ shardId: 1, replicaId: 2 }).lastIndex).toBe(1000);
  db.close();
});

function snapshotFile(name: string): { path: string; payload: Uint8Array } {
  const path = join(root, name);
  const payload = new Uint8Array(5000).map((_, i) => i % 251);
  writeSnapshotFile(nodeFileSystem, path, snap(10, 2), (sink) => {
    sink(payload.subarray(0, 1234));
    sink(payload.subarray(1234));
  });
  return { path, payload };
}

function flip(path: string, at: (size: number) => number): void {
  const bytes = new Uint8Array(readFileSync(path));
  const i = at(bytes.byteLength);
  bytes[i] = (bytes[i] as number) ^ 0x01;
  writeFileSync(path, bytes);
}

test("a flipped byte in a snapshot's payload fails the file checksum", () => {
  const { path } = snapshotFile("payload-flip.lbsnap");
  flip(path, (size) => size - 100);
  expect(() => readSnapshotFile(nodeFileSystem, path)).toThrow(SnapshotCorruptError);
  expect(() => readSnapshotFile(nodeFileSystem, path)).toThrow(
    new RegExp(`snapshot file ${path} is corrupt: checksum mismatch`),
  );
});

test("a flipped byte in a snapshot's header fails the header checksum", () => {
  const { path } = snapshotFile("header-flip.lbsnap");
  flip(path, () => 20);
  expect(() => readSnapshotFile(nodeFileSystem, path)).toThrow(/header checksum mismatch/);
});

test("a truncated snapshot file is refused", () => {
  const { path } = snapshotFile("truncated.lbsnap");
  truncateSync(path, statSync(path).size - 7);
  expect(() => readSnapshotFile(nodeFileSystem, path)).toThrow(SnapshotCorruptError);
});

test("a file that is not a snapshot is refused for its magic", () => {
  const path = join(root, "not-a-snapshot.lbsnap");
  writeFileSync(path, "hello, this is not a snapshot file at all");
  expect(() => readSnapshotFile(nodeFileSystem, path)).toThrow(/bad magic/);
});
