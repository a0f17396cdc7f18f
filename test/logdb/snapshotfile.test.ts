import { afterAll, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnapshotCorruptError } from "../../src/logdb/errors.ts";
import {
  readSnapshotFile,
  SnapshotDir,
  snapshotFileName,
  VERIFY_CHUNK_BYTES,
  verifySnapshotFile,
  writeSnapshotFile,
} from "../../src/logdb/snapshotfile.ts";
import { snap } from "./logdb.case.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-snapfile-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `t${n++}`);
const bytes = (size: number, seed: number) => new Uint8Array(size).map((_, i) => (i * 31 + seed) % 256);

describe("snapshot files", () => {
  test("a written file reads back with its metadata, payload and checksum", () => {
    mkdirSync(fresh(), { recursive: true });
    const path = join(root, `t${n - 1}`, "a.lbsnap");
    const payload = bytes(100_000, 1);
    const { sizeBytes, checksum } = writeSnapshotFile(path, snap(10, 2), (sink) => {
      for (let off = 0; off < payload.byteLength; off += 30_000) sink(payload.subarray(off, off + 30_000));
    });
    const read = readSnapshotFile(path);
    expect(read.payload).toEqual(payload);
    expect(read.checksum).toBe(checksum);
    expect(read.meta).toEqual({ ...snap(10, 2), filePath: path, fileSizeBytes: sizeBytes, checksum });
  });

  test("streaming verification of a file of several chunks agrees with a full read", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "big.lbsnap");
    const payload = bytes(2 * VERIFY_CHUNK_BYTES + 12345, 5);
    const { checksum } = writeSnapshotFile(path, snap(7, 1), (sink) => sink(payload));
    expect(verifySnapshotFile(path)).toEqual({ meta: readSnapshotFile(path).meta, checksum });
  });

  test("streaming verification finds a flipped byte in a later chunk", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "big.lbsnap");
    writeSnapshotFile(path, snap(7, 1), (sink) => sink(bytes(2 * VERIFY_CHUNK_BYTES, 6)));
    const data = new Uint8Array(readFileSync(path));
    const i = VERIFY_CHUNK_BYTES + 777;
    data[i] = (data[i] as number) ^ 0x80;
    writeFileSync(path, data);
    expect(() => verifySnapshotFile(path)).toThrow(/checksum mismatch/);
  });

  test("an empty payload is a valid snapshot", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "empty.lbsnap");
    writeSnapshotFile(path, snap(3, 1), () => {});
    expect(readSnapshotFile(path).payload.byteLength).toBe(0);
  });

  test("a writer that throws leaves neither the file nor its .tmp", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "x.lbsnap");
    expect(() =>
      writeSnapshotFile(path, snap(3, 1), (sink) => {
        sink(bytes(10, 1));
        throw new Error("state machine failed");
      }),
    ).toThrow("state machine failed");
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("SnapshotDir", () => {
  test("create names the file by index and returns meta with path, size and checksum", () => {
    const d = new SnapshotDir(fresh(), 3, 4);
    const meta = d.create(snap(255, 2), (sink) => sink(bytes(10, 2)));
    expect(meta.filePath).toBe(join(d.dir, "snapshot-00000000000000ff.lbsnap"));
    expect(d.dir.endsWith("/3-4")).toBe(true);
    const read = readSnapshotFile(meta.filePath);
    expect([meta.fileSizeBytes, meta.checksum]).toEqual([read.meta.fileSizeBytes, read.checksum]);
  });

  test("latest is the highest index and removeOlderThan keeps it and newer ones", () => {
    const d = new SnapshotDir(fresh(), 1, 1);
    for (const i of [5, 30, 12]) d.create(snap(i, 1), (sink) => sink(bytes(4, i)));
    expect(d.latest()?.index).toBe(30);
    d.removeOlderThan(12);
    expect(d.list().map((f) => f.index)).toEqual([12, 30]);
  });

  test("leftover .tmp files of an interrupted write are removed at open", () => {
    const r = fresh();
    mkdirSync(join(r, "1-1"), { recursive: true });
    writeFileSync(join(r, "1-1", `${snapshotFileName(9)}.tmp`), "half");
    const d = new SnapshotDir(r, 1, 1);
    expect(readdirSync(d.dir)).toEqual([]);
    expect(d.latest()).toBeNull();
  });

  test("importFile verifies a received file and moves it in under its canonical name", () => {
    const d = new SnapshotDir(fresh(), 1, 2);
    const incoming = join(root, `incoming-${n}.part`);
    writeSnapshotFile(incoming, snap(40, 3), (sink) => sink(bytes(64, 3)));
    const meta = d.importFile(incoming);
    expect(meta.filePath).toBe(join(d.dir, snapshotFileName(40)));
    expect(existsSync(incoming)).toBe(false);
    expect(readSnapshotFile(meta.filePath).payload).toEqual(bytes(64, 3));
  });

  test("importFile of a corrupt file throws SnapshotCorruptError and imports nothing", () => {
    const d = new SnapshotDir(fresh(), 1, 2);
    const incoming = join(root, `bad-${n}.part`);
    writeFileSync(incoming, "LBSNAP\x00\x01garbage");
    expect(() => d.importFile(incoming)).toThrow(SnapshotCorruptError);
    expect(d.latest()).toBeNull();
  });

  test("importFile of another shard's snapshot is refused", () => {
    const d = new SnapshotDir(fresh(), 2, 2);
    const incoming = join(root, `other-${n}.part`);
    writeSnapshotFile(incoming, snap(40, 3), () => {});
    expect(() => d.importFile(incoming)).toThrow(/is of shard 1, not 2/);
  });

  test("removeAll removes the folder", () => {
    const d = new SnapshotDir(fresh(), 1, 1);
    d.create(snap(1, 1), () => {});
    d.removeAll();
    expect(existsSync(d.dir)).toBe(false);
  });
});
