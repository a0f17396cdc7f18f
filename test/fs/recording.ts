import type { FileHandle, FileSystem } from "../../src/fs/filesystem.ts";

/**
 * A FileSystem that records every durability-relevant call of the one it wraps, as lines
 * such as `sync /d/a.tmp`, `rename /d/a.tmp -> /d/a`, `syncDir /d`, `mkdir /d`, so a test can
 * assert the fsync order (src/fs/durable.ts) a code path keeps.
 */
export class RecordingFileSystem implements FileSystem {
  readonly ops: string[] = [];

  constructor(private readonly inner: FileSystem) {}

  open(path: string, mode: "read" | "create" | "createNew"): FileHandle {
    const h = this.inner.open(path, mode);
    if (mode !== "read") this.ops.push(`create ${path}`);
    const ops = this.ops;
    return {
      write: (data) => h.write(data),
      read: (into, position) => h.read(into, position),
      sizeBytes: () => h.sizeBytes(),
      sync() {
        ops.push(`sync ${path}`);
        h.sync();
      },
      close: () => h.close(),
    };
  }

  readFile(path: string): Uint8Array {
    return this.inner.readFile(path);
  }

  list(dir: string): string[] {
    return this.inner.list(dir);
  }

  stat(path: string): { isDirectory: boolean; sizeBytes: number } | null {
    return this.inner.stat(path);
  }

  mkdir(path: string): void {
    this.ops.push(`mkdir ${path}`);
    this.inner.mkdir(path);
  }

  rename(from: string, to: string): void {
    this.ops.push(`rename ${from} -> ${to}`);
    this.inner.rename(from, to);
  }

  remove(path: string): void {
    this.ops.push(`remove ${path}`);
    this.inner.remove(path);
  }

  removeTree(path: string): void {
    this.ops.push(`removeTree ${path}`);
    this.inner.removeTree(path);
  }

  syncDir(dir: string): void {
    this.ops.push(`syncDir ${dir}`);
    this.inner.syncDir(dir);
  }

  /** The recorded operations that mention path (a substring), in order. */
  about(path: string): string[] {
    return this.ops.filter((op) => op.includes(path));
  }
}
