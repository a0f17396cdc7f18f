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
import { dirname, join } from "node:path";
import { SnapshotCorruptError } from "../../src/logdb/errors.ts";
import {
  readSnapshotFile,
  SnapshotDir,
  SnapshotFileReader,
  SnapshotFileWriter,
  snapshotFileName,
  VERIFY_CHUNK_BYTES,
  verifySnapshotFile,
  writeSnapshotFile,
} from "../../src/logdb/snapshotfile.ts";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { RecordingFileSystem } from "../fs/recording.ts";
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
    const { sizeBytes, checksum } = writeSnapshotFile(nodeFileSystem, path, snap(10, 2), (sink) => {
      for (let off = 0; off < payload.byteLength; off += 30_000) sink(payload.subarray(off, off + 30_000));
    });
    const read = readSnapshotFile(nodeFileSystem, path);
    expect(read.payload).toEqual(payload);
    expect(read.checksum).toBe(checksum);
    expect(read.meta).toEqual({ ...snap(10, 2), filePath: path, fileSizeBytes: sizeBytes, checksum });
  });

  test("streaming verification of a file of several chunks agrees with a full read", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "big.lbsnap");
    const payload = bytes(2 * VERIFY_CHUNK_BYTES + 12345, 5);
    const { checksum } = writeSnapshotFile(nodeFileSystem, path, snap(7, 1), (sink) => sink(payload));
    expect(verifySnapshotFile(nodeFileSystem, path)).toEqual({
      meta: readSnapshotFile(nodeFileSystem, path).meta,
      checksum,
    });
  });

  test("streaming verification finds a flipped byte in a later chunk", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "big.lbsnap");
    writeSnapshotFile(nodeFileSystem, path, snap(7, 1), (sink) => sink(bytes(2 * VERIFY_CHUNK_BYTES, 6)));
    const data = new Uint8Array(readFileSync(path));
    const i = VERIFY_CHUNK_BYTES + 777;
    data[i] = (data[i] as number) ^ 0x80;
    writeFileSync(path, data);
    expect(() => verifySnapshotFile(nodeFileSystem, path)).toThrow(/checksum mismatch/);
  });

  test("an empty payload is a valid snapshot", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "empty.lbsnap");
    writeSnapshotFile(nodeFileSystem, path, snap(3, 1), () => {});
    expect(readSnapshotFile(nodeFileSystem, path).payload.byteLength).toBe(0);
  });

  test("a writer that throws leaves neither the file nor its .tmp", () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, "x.lbsnap");
    expect(() =>
      writeSnapshotFile(nodeFileSystem, path, snap(3, 1), (sink) => {
        sink(bytes(10, 1));
        throw new Error("state machine failed");
      }),
    ).toThrow("state machine failed");
    expect(readdirSync(dir)).toEqual([]);
  });
});

/** The recorded operations after the folder dir was made (mkdir dir, fsync of its parent). */
const afterFolder = (ops: string[], dir: string): string[] => {
  const made = ops.indexOf(`mkdir ${dir}`);
  expect(ops[made + 1]).toBe(`syncDir ${dirname(dir)}`);
  return ops.slice(made + 2);
};

describe("SnapshotDir", () => {
  test("create names the file by index and returns meta with path, size and checksum", () => {
    const d = new SnapshotDir(fresh(), 3, 4, { fs: nodeFileSystem });
    const meta = d.create(snap(255, 2), (sink) => sink(bytes(10, 2)));
    expect(meta.filePath).toBe(join(d.dir, "snapshot-00000000000000ff.lbsnap"));
    expect(d.dir.endsWith("/3-4")).toBe(true);
    const read = readSnapshotFile(nodeFileSystem, meta.filePath);
    expect([meta.fileSizeBytes, meta.checksum]).toEqual([read.meta.fileSizeBytes, read.checksum]);
  });

  test("latest is the highest index and removeOlderThan keeps it and newer ones", () => {
    const d = new SnapshotDir(fresh(), 1, 1, { fs: nodeFileSystem });
    for (const i of [5, 30, 12]) d.create(snap(i, 1), (sink) => sink(bytes(4, i)));
    expect(d.latest()?.index).toBe(30);
    d.removeOlderThan(12);
    expect(d.list().map((f) => f.index)).toEqual([12, 30]);
  });

  test("leftover .tmp files of an interrupted write are removed on first use; the folder's parent is fsynced then", () => {
    const r = fresh();
    mkdirSync(join(r, "1-1"), { recursive: true });
    writeFileSync(join(r, "1-1", `${snapshotFileName(9)}.tmp`), "half");
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(r, 1, 1, { fs });
    expect(d.latest()).toBeNull();
    d.create(snap(12, 1), (sink) => sink(bytes(4, 1)));
    expect(readdirSync(d.dir)).toEqual([snapshotFileName(12)]);
    const ops = fs.ops;
    expect(ops.indexOf(`syncDir ${r}`)).toBeGreaterThanOrEqual(0);
    expect(ops.indexOf(`syncDir ${r}`)).toBeLessThan(
      ops.findIndex((op) => op.startsWith(`create ${d.dir}/`)),
    );
  });

  test("constructing touches no file system; the first write makes the folder and its new parents durably", () => {
    const r = join(fresh(), "snapshots");
    mkdirSync(dirname(r));
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(r, 5, 6, { fs });
    expect(fs.ops).toEqual([]);
    expect(existsSync(r)).toBe(false);
    expect(d.list()).toEqual([]);
    d.removeOlderThan(100);
    expect(existsSync(r)).toBe(false);
    d.create(snap(3, 1), (sink) => sink(bytes(4, 1)));
    const made = fs.ops.slice(0, 4);
    expect(made).toEqual([`mkdir ${r}`, `syncDir ${dirname(r)}`, `mkdir ${d.dir}`, `syncDir ${r}`]);
    expect(fs.ops[4]?.startsWith(`create ${d.dir}/`)).toBe(true);
    expect(d.latest()?.index).toBe(3);
  });

  test("a received snapshot for a replica without a folder is published into a durably made one", () => {
    const r = fresh();
    mkdirSync(r);
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(r, 1, 2, { fs });
    const incoming = join(root, `lazy-incoming-${n}.part`);
    writeSnapshotFile(nodeFileSystem, incoming, snap(40, 3), (sink) => sink(bytes(64, 3)));
    const meta = d.importFile(incoming);
    const ops = fs.ops;
    expect(ops.slice(0, 2)).toEqual([`mkdir ${d.dir}`, `syncDir ${r}`]);
    expect(ops.indexOf(`rename ${incoming} -> ${meta.filePath}`)).toBeGreaterThan(1);
    expect(ops.at(-1)).toBe(`syncDir ${d.dir}`);
  });

  test("importFile verifies a received file and moves it in under its canonical name", () => {
    const d = new SnapshotDir(fresh(), 1, 2, { fs: nodeFileSystem });
    const incoming = join(root, `incoming-${n}.part`);
    writeSnapshotFile(nodeFileSystem, incoming, snap(40, 3), (sink) => sink(bytes(64, 3)));
    const meta = d.importFile(incoming);
    expect(meta.filePath).toBe(join(d.dir, snapshotFileName(40)));
    expect(existsSync(incoming)).toBe(false);
    expect(readSnapshotFile(nodeFileSystem, meta.filePath).payload).toEqual(bytes(64, 3));
  });

  test("importFile of a corrupt file throws SnapshotCorruptError and imports nothing", () => {
    const d = new SnapshotDir(fresh(), 1, 2, { fs: nodeFileSystem });
    const incoming = join(root, `bad-${n}.part`);
    writeFileSync(incoming, "LBSNAP\x00\x01garbage");
    expect(() => d.importFile(incoming)).toThrow(SnapshotCorruptError);
    expect(d.latest()).toBeNull();
  });

  test("importFile of another shard's snapshot is refused", () => {
    const d = new SnapshotDir(fresh(), 2, 2, { fs: nodeFileSystem });
    const incoming = join(root, `other-${n}.part`);
    writeSnapshotFile(nodeFileSystem, incoming, snap(40, 3), () => {});
    expect(() => d.importFile(incoming)).toThrow(/is of shard 1, not 2/);
  });

  test("removeAll removes the folder", () => {
    const d = new SnapshotDir(fresh(), 1, 1, { fs: nodeFileSystem });
    d.create(snap(1, 1), () => {});
    d.removeAll();
    expect(existsSync(d.dir)).toBe(false);
  });

  // The fsync order of every path that hands out a promise (issue #13): file data, then the
  // rename, then the directory. Each test fails on the code before the fix.

  test("create fsyncs the file, renames it, then fsyncs the directory", () => {
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(fresh(), 1, 1, { fs });
    fs.ops.length = 0;
    const meta = d.create(snap(7, 1), (sink) => sink(bytes(8, 1)));
    expect(afterFolder(fs.ops, d.dir)).toEqual([
      `create ${meta.filePath}.tmp`,
      `sync ${meta.filePath}.tmp`,
      `rename ${meta.filePath}.tmp -> ${meta.filePath}`,
      `syncDir ${d.dir}`,
    ]);
  });

  test("the first write into a SnapshotDir fsyncs the parent of every directory it creates", () => {
    const r = fresh();
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(join(r, "snapshots"), 1, 2, { fs });
    d.create(snap(1, 1), (sink) => sink(bytes(4, 1)));
    expect(fs.ops.slice(0, 6)).toEqual([
      `mkdir ${r}`,
      `syncDir ${root}`,
      `mkdir ${r}/snapshots`,
      `syncDir ${r}`,
      `mkdir ${d.dir}`,
      `syncDir ${r}/snapshots`,
    ]);
  });

  test("importFile fsyncs the received file before the rename and the directory after it", () => {
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(fresh(), 1, 2, { fs });
    const incoming = join(root, `received-${n}.snap`);
    writeSnapshotFile(nodeFileSystem, incoming, snap(40, 3), (sink) => sink(bytes(64, 3)));
    fs.ops.length = 0;
    const meta = d.importFile(incoming);
    expect(afterFolder(fs.ops, d.dir)).toEqual([
      `sync ${incoming}`,
      `rename ${incoming} -> ${meta.filePath}`,
      `syncDir ${d.dir}`,
    ]);
  });

  test("with the planted bug snapshot-no-fsync importFile skips the file's fsync (the old code)", () => {
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(fresh(), 1, 2, { fs, plantedNoFileSync: true });
    const incoming = join(root, `received-${n}.snap`);
    writeSnapshotFile(nodeFileSystem, incoming, snap(40, 3), () => {});
    fs.ops.length = 0;
    const meta = d.importFile(incoming);
    expect(afterFolder(fs.ops, d.dir)).toEqual([
      `rename ${incoming} -> ${meta.filePath}`,
      `syncDir ${d.dir}`,
    ]);
  });

  test("exportFile copies the snapshot durably into the export directory", () => {
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(fresh(), 1, 1, { fs });
    const meta = d.create(snap(9, 1), (sink) => sink(bytes(100, 9)));
    const out = fresh();
    mkdirSync(out);
    fs.ops.length = 0;
    const exported = d.exportFile(meta.filePath, out);
    expect(exported).toBe(join(out, snapshotFileName(9)));
    expect(fs.ops).toEqual([
      `create ${exported}.tmp`,
      `sync ${exported}.tmp`,
      `rename ${exported}.tmp -> ${exported}`,
      `syncDir ${out}`,
    ]);
    expect(readSnapshotFile(nodeFileSystem, exported).payload).toEqual(bytes(100, 9));
  });

  test("exportFile into a directory that does not exist is refused", () => {
    const d = new SnapshotDir(fresh(), 1, 1, { fs: nodeFileSystem });
    const meta = d.create(snap(9, 1), () => {});
    expect(() => d.exportFile(meta.filePath, join(root, "missing"))).toThrow(/does not exist/);
  });
});

describe("snapshot files read in steps (SnapshotFileReader)", () => {
  test("reads the payload in any step sizes and verifies the file at the last read", () => {
    const dir = fresh();
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "r.lbsnap");
    const payload = bytes(300_001, 4);
    const { checksum } = writeSnapshotFile(nodeFileSystem, path, snap(9, 2), (sink) => sink(payload));
    for (const step of [1 << 10, 65_536, 300_001]) {
      const r = new SnapshotFileReader(nodeFileSystem, path);
      expect(r.meta.index).toBe(9);
      expect(r.payloadBytes).toBe(payload.byteLength);
      const got: Uint8Array[] = [];
      while (r.remaining > 0) {
        expect(r.verified).toBe(false);
        got.push(r.read(step));
      }
      expect(r.verified).toBe(true);
      expect(r.meta.checksum).toBe(checksum);
      expect(Buffer.concat(got).equals(Buffer.from(payload))).toBe(true);
      r.close();
    }
  });

  test("a changed payload byte, a cut file and a bad header are refused", () => {
    const dir = fresh();
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "c.lbsnap");
    writeSnapshotFile(nodeFileSystem, path, snap(9, 2), (sink) => sink(bytes(100_000, 5)));
    const good = readFileSync(path);
    const flipped = Buffer.from(good);
    flipped[good.byteLength - 5_000] = (flipped[good.byteLength - 5_000]! + 1) % 256;
    writeFileSync(path, flipped);
    const r = new SnapshotFileReader(nodeFileSystem, path);
    r.read(50_000); // nothing is known yet
    expect(() => r.read(1 << 20)).toThrow(/checksum mismatch/);
    r.close();
    writeFileSync(path, good.subarray(0, good.byteLength - 3));
    const cut = new SnapshotFileReader(nodeFileSystem, path);
    expect(() => cut.read(1 << 20)).toThrow(SnapshotCorruptError);
    cut.close();
    const header = Buffer.from(good);
    header[20] = (header[20]! + 1) % 256;
    writeFileSync(path, header);
    expect(() => new SnapshotFileReader(nodeFileSystem, path)).toThrow(/header/);
    writeFileSync(path, good.subarray(0, 10));
    expect(() => new SnapshotFileReader(nodeFileSystem, path)).toThrow(/truncated/);
  });
});

describe("SnapshotFileWriter publish", () => {
  for (const mode of ["publish", "publishAsync"] as const) {
    test(`${mode}: a failed rename removes the .tmp and leaves the writer done (abort does nothing more)`, () => {
      const dir = fresh();
      mkdirSync(dir, { recursive: true });
      const failing = {
        ...nodeFileSystem,
        rename: () => {
          throw Object.assign(new Error("rename refused"), { code: "EIO" });
        },
      };
      const w = new SnapshotFileWriter(failing, join(dir, "p.lbsnap"), snap(4, 1));
      w.put(bytes(1000, 1));
      w.endData();
      w.syncData();
      if (mode === "publish") expect(() => w.publish()).toThrow(/rename refused/);
      else expect(() => w.publishAsync(() => {})).toThrow(/rename refused/);
      expect(readdirSync(dir)).toEqual([]);
      expect(() => w.abort()).not.toThrow();
      expect(() => w.publish()).toThrow(/while done/);
    });
  }
});

describe("a received snapshot imported in steps (SnapshotImport)", () => {
  test("verifies in steps, then fsyncs the file, renames it and fsyncs the directory", () => {
    const fs = new RecordingFileSystem(nodeFileSystem);
    const d = new SnapshotDir(fresh(), 1, 2, { fs });
    const incoming = join(root, `stepped-${n}.snap`);
    writeSnapshotFile(nodeFileSystem, incoming, snap(40, 3), (sink) => sink(bytes(300_000, 3)));
    fs.ops.length = 0;
    const imp = d.beginImport(incoming);
    let steps = 1;
    while (!imp.step(65_536)) steps++;
    expect(steps).toBeGreaterThanOrEqual(5);
    expect(fs.ops).toEqual([]); // nothing written or moved while verifying
    let result: { error: Error | null; filePath?: string } | null = null;
    imp.publish((error, meta) => {
      result = { error, filePath: meta?.filePath };
    });
    const filePath = join(d.dir, snapshotFileName(40));
    expect(result!).toEqual({ error: null, filePath });
    // (the replica's folder is made on first use, before them)
    expect(fs.ops.slice(-3)).toEqual([
      `sync ${incoming}`,
      `rename ${incoming} -> ${filePath}`,
      `syncDir ${d.dir}`,
    ]);
    expect(readSnapshotFile(nodeFileSystem, filePath).payload).toEqual(bytes(300_000, 3));
  });

  test("a changed byte is found by the step that reaches the end; another shard's file at once", () => {
    const d = new SnapshotDir(fresh(), 1, 2, { fs: nodeFileSystem });
    const incoming = join(root, `stepped-bad-${n}.snap`);
    writeSnapshotFile(nodeFileSystem, incoming, snap(40, 3), (sink) => sink(bytes(200_000, 3)));
    const good = readFileSync(incoming);
    const bad = Buffer.from(good);
    bad[1000] = (bad[1000]! + 1) % 256;
    writeFileSync(incoming, bad);
    const imp = d.beginImport(incoming);
    expect(imp.step(100_000)).toBe(false);
    expect(() => imp.step(1 << 20)).toThrow(/checksum mismatch/);
    expect(() => imp.publish(() => {})).toThrow(/before it is verified/);
    expect(existsSync(incoming)).toBe(true);
    expect(d.latest()).toBeNull();
    const other = new SnapshotDir(fresh(), 2, 2, { fs: nodeFileSystem });
    writeFileSync(incoming, good);
    expect(() => other.beginImport(incoming)).toThrow(/is of shard 1, not 2/);
  });
});
