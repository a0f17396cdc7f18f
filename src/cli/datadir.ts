/**
 * The check of a server's --data-dir at start: before anything opens its data, so that a
 * directory the process cannot write is refused at once, with the path and the cause, instead
 * of SQLite's "unable to open database file" (no path) or a failure at the first write.
 */
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Bytes the probe writes: a disk without room for one page cannot hold a log either. */
const PROBE_BYTES = 4096;

/**
 * Creates `dir` (with its parents) and writes and removes a probe file in it; throws an Error
 * whose message names the flag, the path, the cause and what to do. `what` says whose data it
 * is ("the NodeHost's data").
 */
export function checkDataDir(dir: string, what: string): void {
  const probe = join(dir, `.longboat-write-check-${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(probe, "w");
    try {
      writeSync(fd, new Uint8Array(PROBE_BYTES));
    } finally {
      closeSync(fd);
      rmSync(probe, { force: true });
    }
  } catch (e) {
    const code = (e as { code?: string }).code;
    const { why, fix } = cause(code, e as Error);
    throw new Error(`--data-dir ${dir} cannot hold ${what}: ${why} (${code ?? "error"}); ${fix}`);
  }
}

function cause(code: string | undefined, error: Error): { why: string; fix: string } {
  const elsewhere = "give a directory this user can write (it is created if missing)";
  switch (code) {
    case "EACCES":
    case "EPERM":
      return { why: "this user may not write there", fix: `${elsewhere}, or fix its permissions` };
    case "EROFS":
      return { why: "the file system is read-only", fix: `${elsewhere} on a writable file system` };
    case "ENOTDIR":
    case "EEXIST":
      return { why: "a part of the path is a file, not a directory", fix: elsewhere };
    case "ENOSPC":
    case "EDQUOT":
      return { why: "the disk is full", fix: `free some space, or ${elsewhere} on another disk` };
    default:
      return { why: error.message, fix: elsewhere };
  }
}
