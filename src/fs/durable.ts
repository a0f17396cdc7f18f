import { dirname } from "node:path";
import type { FileHandle, FileSystem } from "./filesystem.ts";

/**
 * The fsync discipline, in one place. A file that a message or a reply promises (a snapshot
 * saved, received or exported) becomes durable under its name in this order: its data
 * (fsync of the file), then its name (rename), then the name's durability (fsync of the
 * directory). Without the first, a power loss can leave the name pointing at an empty or
 * truncated file; without the last, the rename itself can be undone.
 */

/**
 * Publishes the finished file at tmpPath under finalPath durably. Pass the handle it was
 * written through (it is synced and closed), or none to sync the file by path.
 * @example publishFile(fs, "/d/s.snap.tmp", "/d/s.snap", handle);
 */
export function publishFile(fs: FileSystem, tmpPath: string, finalPath: string, written?: FileHandle): void {
  if (written === undefined) syncFile(fs, tmpPath);
  else {
    written.sync();
    written.close();
  }
  fs.rename(tmpPath, finalPath);
  fs.syncDir(dirname(finalPath));
}

/** fsync of a file by path (the data of every handle of it). */
export function syncFile(fs: FileSystem, path: string): void {
  const h = fs.open(path, "read");
  try {
    h.sync();
  } finally {
    h.close();
  }
}

/** Bytes copied per read in copyFileDurably. */
export const COPY_CHUNK_BYTES = 1024 * 1024;

/**
 * Copies from into to durably (through to + ".tmp" and publishFile); a failed copy leaves
 * no file behind.
 */
export function copyFileDurably(fs: FileSystem, from: string, to: string): void {
  const tmp = `${to}.tmp`;
  const src = fs.open(from, "read");
  let out: FileHandle | null = null;
  try {
    out = fs.open(tmp, "create");
    const chunk = new Uint8Array(COPY_CHUNK_BYTES);
    for (let pos = 0; ; ) {
      const n = src.read(chunk, pos);
      if (n === 0) break;
      out.write(chunk.subarray(0, n));
      pos += n;
    }
    publishFile(fs, tmp, to, out);
    out = null;
  } catch (error) {
    out?.close();
    fs.remove(tmp);
    throw error;
  } finally {
    src.close();
  }
}

/**
 * Creates dir and any missing parent, each followed by an fsync of its parent, so that a
 * file later made durable inside it cannot lose its directory in a power loss.
 */
export function mkdirDurable(fs: FileSystem, dir: string): void {
  const missing: string[] = [];
  for (let d = dir; fs.stat(d) === null; d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    fs.mkdir(d);
    fs.syncDir(dirname(d));
  }
}
