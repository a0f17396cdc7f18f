import {
  close,
  closeSync,
  fstatSync,
  fsync,
  fsyncSync,
  mkdirSync,
  open,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import type { FileHandle, FileSystem } from "./filesystem.ts";

const FLAGS = { read: "r", create: "w", createNew: "wx" } as const;

/** The real file system (node:fs, synchronous). */
export const nodeFileSystem: FileSystem = {
  open(path, mode) {
    return new NodeFile(openSync(path, FLAGS[mode]));
  },
  readFile: (path) => new Uint8Array(readFileSync(path)),
  list: (dir) => readdirSync(dir),
  stat(path) {
    const s = statSync(path, { throwIfNoEntry: false });
    return s === undefined ? null : { isDirectory: s.isDirectory(), sizeBytes: s.size };
  },
  mkdir(path) {
    mkdirSync(path);
  },
  rename: (from, to) => renameSync(from, to),
  remove: (path) => rmSync(path, { force: true }),
  removeTree: (path) => rmSync(path, { recursive: true, force: true }),
  syncDir(dir) {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  },
  syncDirAsync(dir, done) {
    open(dir, "r", (error, fd) => {
      if (error) {
        done(error);
        return;
      }
      fsync(fd, (syncError) => close(fd, () => done(syncError ?? null)));
    });
  },
};

class NodeFile implements FileHandle {
  private fd: number | null;

  constructor(fd: number) {
    this.fd = fd;
  }

  write(data: Uint8Array): void {
    let off = 0;
    while (off < data.byteLength) off += writeSync(this.open(), data, off, data.byteLength - off);
  }

  read(into: Uint8Array, position: number): number {
    return readSync(this.open(), into, 0, into.byteLength, position);
  }

  sizeBytes(): number {
    return fstatSync(this.open()).size;
  }

  sync(): void {
    fsyncSync(this.open());
  }

  syncAsync(done: (error: Error | null) => void): void {
    fsync(this.open(), (error) => done(error ?? null));
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private open(): number {
    if (this.fd === null) throw new Error("file handle used after close");
    return this.fd;
  }
}
