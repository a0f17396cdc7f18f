/**
 * The test side of faultfs.c (read its comment first): builds the LD_PRELOAD layer, and
 * after a killed process replays its undo log backwards to leave the watched directory as a
 * power loss at the kill could have: every file keeps what was fsynced and a random prefix of
 * its unsynced writes, and the directory keeps its synced names and a random prefix of its
 * unsynced creates and unlinks.
 */
import {
  closeSync,
  existsSync,
  ftruncateSync,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { Rng } from "../../src/raft/storage.ts";

/** Compiles faultfs.c into dir; returns the shared object's path. */
export function buildFaultFs(dir: string): string {
  const out = join(dir, "faultfs.so");
  const cc = Bun.spawnSync(
    ["cc", "-shared", "-fPIC", "-O2", "-o", out, join(import.meta.dir, "faultfs.c"), "-ldl"],
    {
      stderr: "pipe",
    },
  );
  if (cc.exitCode !== 0)
    throw new Error(`cc faultfs.c failed (a C compiler is needed): ${cc.stderr.toString()}`);
  return out;
}

/** Paths of one watched run: the directory, its undo log and its grave of unlinked files. */
export interface FaultFsRun {
  dir: string;
  log: string;
  grave: string;
}

/** Environment for a child that runs under the layer. */
export function faultFsEnv(so: string, run: FaultFsRun, dropSync = false): Record<string, string> {
  rmSync(run.log, { force: true });
  rmSync(run.grave, { recursive: true, force: true });
  mkdirSync(run.grave, { recursive: true });
  return {
    LD_PRELOAD: so,
    FAULTFS_DIR: run.dir,
    FAULTFS_LOG: run.log,
    FAULTFS_GRAVE: run.grave,
    ...(dropSync ? { FAULTFS_DROP_SYNC: "1" } : {}),
  };
}

type LogRecord =
  | { kind: "W"; name: string; offset: number; oldSize: number; old: Uint8Array }
  | { kind: "T"; name: string; offset: number; oldSize: number; old: Uint8Array }
  | { kind: "S"; name: string }
  | { kind: "C"; name: string }
  | { kind: "D"; name: string }
  | { kind: "U"; name: string; grave: number };

export function parseLog(bytes: Uint8Array): LogRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: LogRecord[] = [];
  const HEAD = 1 + 2;
  for (let p = 0; p < bytes.byteLength; ) {
    // The kill may have torn the last record: it was written before the change it describes
    // (or after the fsync it reports, before the call returned), so dropping it is safe.
    if (!recordFits(bytes, view, p)) break;
    const kind = String.fromCharCode(bytes[p] as number);
    const nameLength = view.getUint16(p + 1, true);
    const name = new TextDecoder().decode(bytes.subarray(p + HEAD, p + HEAD + nameLength));
    let q = p + HEAD + nameLength;
    const offset = Number(view.getBigUint64(q, true));
    const length = Number(view.getBigUint64(q + 8, true));
    const oldSize = Number(view.getBigUint64(q + 16, true));
    q += 24;
    if (kind === "W" || kind === "T")
      out.push({ kind, name, offset, oldSize, old: bytes.slice(q, q + length) });
    else if (kind === "U") out.push({ kind, name, grave: offset });
    else if (kind === "S" || kind === "C" || kind === "D") out.push({ kind, name } as LogRecord);
    else throw new Error(`faultfs log: unknown record kind ${kind} at byte ${p}`);
    p = q + (kind === "W" || kind === "T" ? length : 0);
  }
  return out;
}

function recordFits(bytes: Uint8Array, view: DataView, p: number): boolean {
  if (p + 3 > bytes.byteLength) return false;
  const head = p + 3 + view.getUint16(p + 1, true) + 24;
  if (head > bytes.byteLength) return false;
  const kind = String.fromCharCode(bytes[p] as number);
  const data = kind === "W" || kind === "T" ? Number(view.getBigUint64(head - 16, true)) : 0;
  return head + data <= bytes.byteLength;
}

/** What a power loss undid, for the test's report. */
export interface PowerLossOutcome {
  /** Unsynced data writes and truncations undone. */
  writesUndone: number;
  /** Unsynced creates and unlinks undone. */
  namesUndone: number;
}

/**
 * Applies a power loss to run.dir after its process was killed: per file, the unsynced
 * writes after a random prefix are undone, last first; then the directory's unsynced
 * creates and unlinks after a random prefix.
 */
export function powerLoss(run: FaultFsRun, rng: Rng): PowerLossOutcome {
  const records = existsSync(run.log) ? parseLog(new Uint8Array(readFileSync(run.log))) : [];
  const pendingData = new Map<string, Extract<LogRecord, { kind: "W" | "T" }>[]>();
  let pendingNames: Extract<LogRecord, { kind: "C" | "U" }>[] = [];
  for (const r of records) {
    if (r.kind === "W" || r.kind === "T") {
      const list = pendingData.get(r.name) ?? [];
      list.push(r);
      pendingData.set(r.name, list);
    } else if (r.kind === "S") pendingData.delete(r.name);
    else if (r.kind === "D") pendingNames = [];
    else pendingNames.push(r);
  }
  const graves = gravesOf(records);
  const outcome: PowerLossOutcome = { writesUndone: 0, namesUndone: 0 };
  for (const [name, list] of [...pendingData].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const keep = rng.nextInt(list.length + 1);
    // A file unlinked since is still reachable through its grave link (the same inode).
    const grave = graves.get(name);
    const path = grave === undefined ? join(run.dir, name) : join(run.grave, String(grave));
    const fd = openSync(path, "r+");
    try {
      for (let i = list.length - 1; i >= keep; i--) undoData(fd, list[i]!);
    } finally {
      closeSync(fd);
    }
    outcome.writesUndone += list.length - keep;
  }
  const keepNames = rng.nextInt(pendingNames.length + 1);
  for (let i = pendingNames.length - 1; i >= keepNames; i--) {
    const r = pendingNames[i]!;
    const path = join(run.dir, r.name);
    if (r.kind === "C") rmSync(path, { force: true });
    else {
      rmSync(path, { force: true });
      linkSync(join(run.grave, String(r.grave)), path);
    }
    outcome.namesUndone++;
  }
  return outcome;
}

/** name → the grave of its unlink; a name created again after an unlink is not modelled. */
function gravesOf(records: LogRecord[]): Map<string, number> {
  const graves = new Map<string, number>();
  for (const r of records) {
    if (r.kind === "U") graves.set(r.name, r.grave);
    else if (r.kind === "C" && graves.has(r.name))
      throw new Error(`faultfs: ${r.name} was created again after an unlink (not modelled)`);
  }
  return graves;
}

function undoData(fd: number, r: Extract<LogRecord, { kind: "W" | "T" }>): void {
  if (r.kind === "W") {
    if (r.old.byteLength > 0) writeSync(fd, r.old, 0, r.old.byteLength, r.offset);
    if (fstatSync(fd).size > r.oldSize) ftruncateSync(fd, r.oldSize);
    return;
  }
  ftruncateSync(fd, r.oldSize);
  if (r.old.byteLength > 0) writeSync(fd, r.old, 0, r.old.byteLength, r.offset);
}
