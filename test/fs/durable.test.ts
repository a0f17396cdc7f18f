import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COPY_CHUNK_BYTES, copyFileDurably, mkdirDurable, publishFile } from "../../src/fs/durable.ts";
import type { FileSystem } from "../../src/fs/filesystem.ts";
import { nodeFileSystem } from "../../src/fs/node.ts";
import { RecordingFileSystem } from "./recording.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-fs-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => {
  const d = join(root, String(n++));
  mkdirSync(d);
  return d;
};

describe("publishFile", () => {
  test("fsyncs the file, then renames it, then fsyncs the directory", () => {
    const d = fresh();
    writeFileSync(join(d, "a.tmp"), "data");
    const fs = new RecordingFileSystem(nodeFileSystem);
    publishFile(fs, join(d, "a.tmp"), join(d, "a"));
    expect(fs.ops).toEqual([`sync ${d}/a.tmp`, `rename ${d}/a.tmp -> ${d}/a`, `syncDir ${d}`]);
    expect(readFileSync(join(d, "a"), "utf8")).toBe("data");
  });

  test("syncs and closes the handle it was written through", () => {
    const d = fresh();
    const fs = new RecordingFileSystem(nodeFileSystem);
    const h = fs.open(join(d, "b.tmp"), "create");
    h.write(new TextEncoder().encode("xyz"));
    publishFile(fs, join(d, "b.tmp"), join(d, "b"), h);
    expect(fs.ops).toEqual([
      `create ${d}/b.tmp`,
      `sync ${d}/b.tmp`,
      `rename ${d}/b.tmp -> ${d}/b`,
      `syncDir ${d}`,
    ]);
    expect(() => h.sync()).toThrow(/after close/);
  });

  test("into another directory fsyncs the destination directory", () => {
    const a = fresh();
    const b = fresh();
    writeFileSync(join(a, "f"), "x");
    const fs = new RecordingFileSystem(nodeFileSystem);
    publishFile(fs, join(a, "f"), join(b, "g"));
    expect(fs.ops.at(-1)).toBe(`syncDir ${b}`);
  });
});

describe("copyFileDurably", () => {
  test("copies every byte (across chunks) and publishes the copy in the fsync order", () => {
    const d = fresh();
    const data = new Uint8Array(COPY_CHUNK_BYTES * 2 + 17).map((_, i) => (i * 7) & 0xff);
    writeFileSync(join(d, "src"), data);
    const fs = new RecordingFileSystem(nodeFileSystem);
    copyFileDurably(fs, join(d, "src"), join(d, "dst"));
    expect(new Uint8Array(readFileSync(join(d, "dst")))).toEqual(data);
    expect(fs.ops).toEqual([
      `create ${d}/dst.tmp`,
      `sync ${d}/dst.tmp`,
      `rename ${d}/dst.tmp -> ${d}/dst`,
      `syncDir ${d}`,
    ]);
  });

  test("a failed copy leaves no temporary file and throws", () => {
    const d = fresh();
    writeFileSync(join(d, "src"), "abc");
    const failing: FileSystem = {
      ...nodeFileSystem,
      rename: () => {
        throw new Error("disk full");
      },
    };
    expect(() => copyFileDurably(failing, join(d, "src"), join(d, "dst"))).toThrow("disk full");
    expect(readdirSync(d)).toEqual(["src"]);
  });
});

describe("mkdirDurable", () => {
  test("creates each missing directory and fsyncs its parent", () => {
    const d = fresh();
    const fs = new RecordingFileSystem(nodeFileSystem);
    mkdirDurable(fs, join(d, "x", "y"));
    expect(fs.ops).toEqual([`mkdir ${d}/x`, `syncDir ${d}`, `mkdir ${d}/x/y`, `syncDir ${d}/x`]);
    expect(nodeFileSystem.stat(join(d, "x", "y"))?.isDirectory).toBe(true);
  });

  test("does nothing for a directory that exists", () => {
    const d = fresh();
    const fs = new RecordingFileSystem(nodeFileSystem);
    mkdirDurable(fs, d);
    expect(fs.ops).toEqual([]);
  });
});
