/**
 * The simulated disk of one simulated machine: a FileSystem (src/fs/filesystem.ts) in memory
 * that knows what is durable. A write is durable once its file is synced; a name (created,
 * renamed, removed, a new directory) once its directory is synced. powerLoss() throws away
 * what was not: a file written and not synced keeps its synced content plus a random part of
 * what was appended since (possibly nothing: empty or truncated), and a directory with unsynced
 * changes either keeps all of them or falls back to its last synced entries (a rename undone,
 * a new file or directory gone, a removed one back). A process crash keeps everything (the
 * page cache survives kill -9): only powerLoss() loses data.
 *
 * Its randomness is its own stream (one draw per unsynced file or directory at a power loss),
 * so a run whose files are all synced draws nothing and replays as before the disk existed.
 *
 * @example
 * const disk = new SimDisk(new ManualEnv(seed + 2 * 2 ** 32));
 * const nh = new NodeHost({ nodeHostDir: "/host-1", ..., expert: { fs: disk } });
 * disk.powerLoss(); // after nh.stop(): the machine lost power
 */
import { posix } from "node:path";
import type { FileHandle, FileSystem } from "../../src/fs/filesystem.ts";
import type { Rng } from "../../src/raft/storage.ts";

interface Inode {
  /** Current content is bytes[0, sizeBytes). */
  bytes: Uint8Array;
  sizeBytes: number;
  /** Content as of the last sync (what a power loss cannot take). */
  durable: Uint8Array;
  /** Written or truncated since the last sync. */
  dirty: boolean;
  /** Only appended to since the last sync (the durable content is a prefix of the current). */
  appendOnly: boolean;
}

type DiskNode = { kind: "file"; inode: Inode } | { kind: "dir"; dir: Dir };

interface Dir {
  entries: Map<string, DiskNode>;
  /** Entries as of the last syncDir. */
  durable: Map<string, DiskNode>;
}

export interface SimDiskStats {
  powerLosses: number;
  /** Files that lost some or all of their unsynced data at a power loss. */
  filesTruncated: number;
  /** Directories whose unsynced changes a power loss undid. */
  dirsReverted: number;
}

/** An error shaped like node:fs's (code, syscall-like message). */
function fsError(code: string, op: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${op} '${path}' (simulated disk)`), { code });
}

export class SimDisk implements FileSystem {
  private readonly root: Dir = { entries: new Map(), durable: new Map() };
  /** Bumped by powerLoss: handles opened before it are dead (the process died with the power). */
  private generation = 0;
  readonly stats: SimDiskStats = { powerLosses: 0, filesTruncated: 0, dirsReverted: 0 };

  constructor(private readonly rng: Rng) {}

  open(path: string, mode: "read" | "create" | "createNew"): FileHandle {
    const { dir, name } = this.parent(path, "open");
    const existing = dir.entries.get(name);
    if (existing?.kind === "dir") throw fsError("EISDIR", "open", path);
    let inode: Inode;
    if (mode === "read") {
      if (existing === undefined) throw fsError("ENOENT", "open", path);
      inode = existing.inode;
    } else if (existing !== undefined) {
      if (mode === "createNew") throw fsError("EEXIST", "open", path);
      inode = existing.inode;
      truncate(inode);
    } else {
      inode = {
        bytes: new Uint8Array(256),
        sizeBytes: 0,
        durable: new Uint8Array(0),
        dirty: false,
        appendOnly: true,
      };
      dir.entries.set(name, { kind: "file", inode });
    }
    return this.handle(inode, path);
  }

  readFile(path: string): Uint8Array {
    const node = this.lookup(path, "readFile");
    if (node.kind === "dir") throw fsError("EISDIR", "readFile", path);
    return node.inode.bytes.slice(0, node.inode.sizeBytes);
  }

  list(path: string): string[] {
    const node = this.lookup(path, "scandir");
    if (node.kind !== "dir") throw fsError("ENOTDIR", "scandir", path);
    return [...node.dir.entries.keys()];
  }

  stat(path: string): { isDirectory: boolean; sizeBytes: number } | null {
    let node: DiskNode;
    try {
      node = this.lookup(path, "stat");
    } catch {
      return null;
    }
    return node.kind === "dir"
      ? { isDirectory: true, sizeBytes: 0 }
      : { isDirectory: false, sizeBytes: node.inode.sizeBytes };
  }

  mkdir(path: string): void {
    const { dir, name } = this.parent(path, "mkdir");
    if (dir.entries.has(name)) throw fsError("EEXIST", "mkdir", path);
    dir.entries.set(name, { kind: "dir", dir: { entries: new Map(), durable: new Map() } });
  }

  rename(from: string, to: string): void {
    const src = this.parent(from, "rename");
    const dst = this.parent(to, "rename");
    const node = src.dir.entries.get(src.name);
    if (node === undefined) throw fsError("ENOENT", "rename", from);
    if (node.kind === "dir" || dst.dir.entries.get(dst.name)?.kind === "dir")
      throw fsError("EISDIR", "rename", to);
    src.dir.entries.delete(src.name);
    dst.dir.entries.set(dst.name, node);
  }

  remove(path: string): void {
    const { dir, name } = this.parent(path, "unlink");
    const node = dir.entries.get(name);
    if (node?.kind === "dir") throw fsError("EISDIR", "unlink", path);
    dir.entries.delete(name);
  }

  removeTree(path: string): void {
    const { dir, name } = this.parent(path, "rm");
    dir.entries.delete(name);
  }

  syncDir(path: string): void {
    const node = this.lookup(path, "fsync");
    if (node.kind !== "dir") throw fsError("ENOTDIR", "fsync", path);
    node.dir.durable = new Map(node.dir.entries);
  }

  /**
   * The machine loses power: every file and directory falls back to what was synced, each
   * unsynced one keeping a random part of its unsynced changes (see the file comment).
   */
  powerLoss(): void {
    this.stats.powerLosses++;
    this.generation++;
    const seen = new Set<Inode>();
    const dirs: Dir[] = [this.root];
    for (let d = dirs.pop(); d !== undefined; d = dirs.pop()) {
      if (changed(d) && this.rng.nextInt(2) === 0) {
        d.entries = new Map(d.durable);
        this.stats.dirsReverted++;
      }
      d.durable = new Map(d.entries);
      for (const node of d.entries.values()) {
        if (node.kind === "dir") dirs.push(node.dir);
        else if (!seen.has(node.inode)) {
          seen.add(node.inode);
          this.loseUnsynced(node.inode);
        }
      }
    }
  }

  /** What survives of an unsynced file: its synced content and a random part of the rest. */
  private loseUnsynced(inode: Inode): void {
    if (!inode.dirty) return;
    const synced = inode.durable.byteLength;
    let keep: Uint8Array;
    if (inode.appendOnly) {
      keep = inode.bytes.slice(0, synced + this.rng.nextInt(inode.sizeBytes - synced + 1));
    } else {
      // Rewritten since the sync: the old content, or a random prefix of the new one.
      keep =
        this.rng.nextInt(2) === 0
          ? inode.durable
          : inode.bytes.slice(0, this.rng.nextInt(inode.sizeBytes + 1));
    }
    if (keep.byteLength !== inode.sizeBytes) this.stats.filesTruncated++;
    inode.bytes = keep.slice();
    inode.sizeBytes = keep.byteLength;
    inode.durable = keep;
    inode.dirty = false;
    inode.appendOnly = true;
  }

  private handle(inode: Inode, path: string): FileHandle {
    const generation = this.generation;
    let position = 0;
    let closed = false;
    const live = (op: string) => {
      if (closed) throw new Error(`${op} on ${path}: file handle used after close`);
      if (generation !== this.generation)
        throw new Error(`${op} on ${path}: file handle from before a power loss`);
    };
    return {
      write(data) {
        live("write");
        writeAt(inode, position, data);
        position += data.byteLength;
      },
      read(into, at) {
        live("read");
        const n = Math.max(0, Math.min(into.byteLength, inode.sizeBytes - at));
        into.set(inode.bytes.subarray(at, at + n));
        return n;
      },
      sizeBytes() {
        live("fstat");
        return inode.sizeBytes;
      },
      sync() {
        live("fsync");
        inode.durable = inode.bytes.slice(0, inode.sizeBytes);
        inode.dirty = false;
        inode.appendOnly = true;
      },
      close() {
        closed = true;
      },
    };
  }

  private lookup(path: string, op: string): DiskNode {
    let node: DiskNode = { kind: "dir", dir: this.root };
    for (const part of parts(path)) {
      if (node.kind !== "dir") throw fsError("ENOTDIR", op, path);
      const next = node.dir.entries.get(part);
      if (next === undefined) throw fsError("ENOENT", op, path);
      node = next;
    }
    return node;
  }

  /** The directory that holds path, which must exist, and path's last name. */
  private parent(path: string, op: string): { dir: Dir; name: string } {
    const all = parts(path);
    const name = all.pop();
    if (name === undefined) throw fsError("EINVAL", op, path);
    const node = this.lookup(`/${all.join("/")}`, op);
    if (node.kind !== "dir") throw fsError("ENOTDIR", op, path);
    return { dir: node.dir, name };
  }
}

function parts(path: string): string[] {
  if (!path.startsWith("/")) throw new Error(`simulated disk paths are absolute, got ${path}`);
  return posix
    .normalize(path)
    .split("/")
    .filter((p) => p !== "");
}

function changed(d: Dir): boolean {
  if (d.entries.size !== d.durable.size) return true;
  for (const [name, node] of d.entries) if (d.durable.get(name) !== node) return true;
  return false;
}

function truncate(inode: Inode): void {
  if (inode.sizeBytes === 0) return;
  inode.sizeBytes = 0;
  inode.dirty = true;
  inode.appendOnly = inode.durable.byteLength === 0;
}

function writeAt(inode: Inode, at: number, data: Uint8Array): void {
  const end = at + data.byteLength;
  if (end > inode.bytes.byteLength) {
    const grown = new Uint8Array(Math.max(end, inode.bytes.byteLength * 2));
    grown.set(inode.bytes.subarray(0, inode.sizeBytes));
    inode.bytes = grown;
  }
  inode.bytes.set(data, at);
  if (at < inode.durable.byteLength) inode.appendOnly = false;
  inode.sizeBytes = Math.max(inode.sizeBytes, end);
  inode.dirty = true;
}
