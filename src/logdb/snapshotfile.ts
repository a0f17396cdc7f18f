import { basename, dirname, join } from "node:path";
import { copyFileDurably, mkdirDurable, publishFile } from "../fs/durable.ts";
import type { FileHandle, FileSystem } from "../fs/filesystem.ts";
import type { SnapshotMeta } from "../raft/types.ts";
import { decodeSnapshotMeta, encodeSnapshotMeta } from "./codec.ts";
import { LogDBArgumentError, SnapshotCorruptError } from "./errors.ts";

/**
 * Snapshot files: `magic(8) | headerLength u32 | headerCrc u32 | header (SnapshotMeta
 * protobuf) | payload | payloadLength u64 | fileCrc u32 | endMagic u32`, little endian.
 * fileCrc is CRC-32 over everything before the trailer; it is the snapshot's checksum.
 * Written to `<path>.tmp`, then published by publishFile (src/fs/durable.ts: fsync, rename,
 * fsync of the directory): a crash leaves either the old set of files or the new complete one
 * (plus a .tmp that SnapshotDir removes).
 */

const MAGIC = new TextEncoder().encode("LBSNAP\x00\x01");
const END_MAGIC = 0x45534e4c; // "LNSE"
const PREFIX_BYTES = MAGIC.byteLength + 8;
const TRAILER_BYTES = 16;
/** Bytes before the header (magic, header length, header CRC) and after the payload. */
export const SNAPSHOT_PREFIX_BYTES = PREFIX_BYTES;
export const SNAPSHOT_TRAILER_BYTES = TRAILER_BYTES;
/** Bound of the encoded metadata (membership lists included). */
export const MAX_SNAPSHOT_HEADER_BYTES = 4 * 1024 * 1024;
/** snapshot-<index>.lbsnap, or snapshot-<index>-<tag>.lbsnap for one a restore wrote. */
const FILE_PATTERN = /^snapshot-([0-9a-f]{16})(?:-[0-9a-f]{8})?\.lbsnap$/;

const crc32 = (data: Uint8Array, seed: number): number => Bun.hash.crc32(data, seed) >>> 0;

/**
 * Writes a snapshot file durably; `write` streams the payload through `sink`.
 * @example writeSnapshotFile(nodeFileSystem, "/d/s.lbsnap", meta, (sink) => sink(bytes));
 */
export function writeSnapshotFile(
  fs: FileSystem,
  path: string,
  meta: SnapshotMeta,
  write: (sink: (chunk: Uint8Array) => void) => void,
): { sizeBytes: number; checksum: number } {
  const w = new SnapshotFileWriter(fs, path, meta);
  try {
    write((chunk) => w.put(chunk));
    w.endData();
    w.syncData();
    w.publish();
    return { sizeBytes: w.sizeBytes, checksum: w.checksum };
  } catch (error) {
    w.abort();
    throw error;
  }
}

/**
 * A snapshot file written in steps, so that a large one can be written between engine
 * iterations (issue #16 item 4): put() the payload in chunks, endData() (the trailer), then
 * make it durable — syncData(), or syncDataAsync() where the file system can fsync off the
 * thread — and publish() (rename, fsync of the directory). Nothing is promised before
 * publish() returns. abort() at any point closes the file and removes the `.tmp`.
 * @example const w = new SnapshotFileWriter(fs, path, meta); w.put(bytes); w.endData(); w.syncData(); w.publish();
 */
export class SnapshotFileWriter {
  readonly tmpPath: string;
  private readonly file: FileHandle;
  private crc = 0;
  sizeBytes = 0;
  private payloadBytes = 0;
  private state: "data" | "ended" | "synced" | "done" = "data";
  /** CRC-32 of the whole file before the trailer (valid after endData). */
  checksum = 0;

  constructor(
    private readonly fs: FileSystem,
    readonly path: string,
    meta: SnapshotMeta,
  ) {
    const header = encodeSnapshotMeta({ ...meta, filePath: "", checksum: 0, fileSizeBytes: 0 });
    if (header.byteLength > MAX_SNAPSHOT_HEADER_BYTES) {
      throw new LogDBArgumentError(
        `snapshot metadata is ${header.byteLength} bytes, above ${MAX_SNAPSHOT_HEADER_BYTES}`,
      );
    }
    const prefix = new Uint8Array(PREFIX_BYTES);
    prefix.set(MAGIC, 0);
    const view = new DataView(prefix.buffer);
    view.setUint32(MAGIC.byteLength, header.byteLength, true);
    view.setUint32(MAGIC.byteLength + 4, crc32(header, 0), true);
    this.tmpPath = `${path}.tmp`;
    this.file = fs.open(this.tmpPath, "create");
    try {
      this.raw(prefix);
      this.raw(header);
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  private raw(chunk: Uint8Array): void {
    this.file.write(chunk);
    this.crc = crc32(chunk, this.crc);
    this.sizeBytes += chunk.byteLength;
  }

  /** Appends payload bytes. */
  put(chunk: Uint8Array): void {
    this.expect("data", "put");
    this.raw(chunk);
    this.payloadBytes += chunk.byteLength;
  }

  /** Writes the trailer (payload length, checksum); no more payload after it. */
  endData(): void {
    this.expect("data", "endData");
    const trailer = new Uint8Array(TRAILER_BYTES);
    const tv = new DataView(trailer.buffer);
    tv.setUint32(0, this.payloadBytes % 2 ** 32, true);
    tv.setUint32(4, Math.floor(this.payloadBytes / 2 ** 32), true);
    tv.setUint32(8, this.crc, true);
    tv.setUint32(12, END_MAGIC, true);
    this.checksum = this.crc;
    this.raw(trailer);
    this.state = "ended";
  }

  /** fsync of the file's data, on this thread. */
  syncData(): void {
    this.expect("ended", "syncData");
    this.file.sync();
    this.state = "synced";
  }

  /**
   * fsync of the file's data off this thread when the file system can (FileHandle.syncAsync);
   * otherwise on it, with done deferred by the caller's own scheduling. done(null) once durable.
   */
  syncDataAsync(done: (error: Error | null) => void): boolean {
    this.expect("ended", "syncDataAsync");
    if (this.file.syncAsync === undefined) return false;
    this.file.syncAsync((error) => {
      if (error === null) this.state = "synced";
      done(error);
    });
    return true;
  }

  /** Closes the synced file and gives it its name durably (rename, fsync of the directory). */
  publish(): void {
    this.expect("synced", "publish");
    this.closeAndRename();
    this.fs.syncDir(dirname(this.path));
  }

  /**
   * Closes the file and renames it; done only once renamed. A failed rename removes the
   * `.tmp` (nothing was promised) and leaves the writer done, so abort() has nothing left to do.
   */
  private closeAndRename(): void {
    this.state = "done";
    try {
      this.file.close();
      this.fs.rename(this.tmpPath, this.path);
    } catch (error) {
      try {
        this.fs.remove(this.tmpPath);
      } catch {
        // the .tmp is removed when the snapshot directory is next opened
      }
      throw error;
    }
  }

  /**
   * publish() with the directory's fsync off this thread (FileSystem.syncDirAsync): false, and
   * nothing done, when the file system cannot; then call publish(). done(null) once durable.
   */
  publishAsync(done: (error: Error | null) => void): boolean {
    this.expect("synced", "publishAsync");
    const syncDirAsync = this.fs.syncDirAsync;
    if (syncDirAsync === undefined) return false;
    this.closeAndRename();
    syncDirAsync.call(this.fs, dirname(this.path), done);
    return true;
  }

  /** Closes the file and removes the `.tmp` (nothing happens after publish). */
  abort(): void {
    if (this.state === "done") return;
    this.state = "done";
    try {
      this.file.close();
    } finally {
      this.fs.remove(this.tmpPath);
    }
  }

  private expect(state: SnapshotFileWriter["state"], op: string): void {
    if (this.state !== state) throw new Error(`snapshot file ${this.tmpPath}: ${op} while ${this.state}`);
  }
}

/**
 * Reads and verifies a snapshot file: both checksums, lengths and magics.
 * @throws SnapshotCorruptError naming the file and what is wrong.
 */
export function readSnapshotFile(
  fs: FileSystem,
  path: string,
): {
  meta: SnapshotMeta;
  payload: Uint8Array;
  checksum: number;
} {
  const bytes = fs.readFile(path);
  const { meta, headerEnd } = parseHeader(path, bytes);
  if (bytes.byteLength < headerEnd + TRAILER_BYTES) {
    throw new SnapshotCorruptError(path, `truncated: ${bytes.byteLength} bytes, no room for the trailer`);
  }
  const payloadEnd = bytes.byteLength - TRAILER_BYTES;
  const stored = checkTrailer(
    path,
    bytes.subarray(payloadEnd),
    payloadEnd - headerEnd,
    crc32(bytes.subarray(0, payloadEnd), 0),
  );
  const payload = bytes.subarray(headerEnd, payloadEnd);
  return {
    meta: { ...meta, filePath: path, fileSizeBytes: bytes.byteLength, checksum: stored },
    payload,
    checksum: stored,
  };
}

/**
 * Reads a snapshot file's payload in steps (recovery off the engine loop, issue #16 item 4):
 * the constructor reads and checks the header; read(n) returns the next n payload bytes (fewer
 * at its end) while the file's CRC runs; the read that reaches the payload's end checks the
 * trailer (length, checksum, end marker). Same checks as readSnapshotFile; nothing read before
 * that last read is verified. close() at any point.
 * @throws SnapshotCorruptError naming the file and what is wrong.
 */
export class SnapshotFileReader {
  readonly meta: SnapshotMeta;
  readonly payloadBytes: number;
  private readonly fd: FileHandle;
  private readonly payloadEnd: number;
  private pos: number;
  private crc = 0;
  private closed = false;
  /** The trailer was read and matched: the whole file is verified. */
  verified = false;

  constructor(
    fs: FileSystem,
    readonly path: string,
  ) {
    this.fd = fs.open(path, "read");
    try {
      const sizeBytes = this.fd.sizeBytes();
      const prefix = new Uint8Array(Math.min(sizeBytes, PREFIX_BYTES));
      readFully(this.fd, prefix, 0);
      if (prefix.byteLength < PREFIX_BYTES)
        throw new SnapshotCorruptError(path, `truncated: ${sizeBytes} bytes`);
      const stated = new DataView(prefix.buffer).getUint32(MAGIC.byteLength, true);
      const head = new Uint8Array(
        Math.min(sizeBytes, PREFIX_BYTES + Math.min(stated, MAX_SNAPSHOT_HEADER_BYTES)),
      );
      readFully(this.fd, head, 0);
      const { meta, headerEnd } = parseHeader(path, head);
      if (sizeBytes < headerEnd + TRAILER_BYTES) {
        throw new SnapshotCorruptError(path, `truncated: ${sizeBytes} bytes, no room for the trailer`);
      }
      this.crc = crc32(head.subarray(0, headerEnd), 0);
      this.pos = headerEnd;
      this.payloadEnd = sizeBytes - TRAILER_BYTES;
      this.payloadBytes = this.payloadEnd - headerEnd;
      this.meta = { ...meta, filePath: path, fileSizeBytes: sizeBytes };
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** Payload bytes not read yet. */
  get remaining(): number {
    return this.payloadEnd - this.pos;
  }

  /** The next min(n, remaining) payload bytes, in a new buffer; the last read checks the trailer. */
  read(n: number): Uint8Array {
    if (this.closed) throw new Error(`snapshot file ${this.path}: read after close`);
    const out = new Uint8Array(Math.min(n, this.remaining));
    readFully(this.fd, out, this.pos);
    this.crc = crc32(out, this.crc);
    this.pos += out.byteLength;
    if (this.remaining === 0 && !this.verified) {
      const trailer = new Uint8Array(TRAILER_BYTES);
      readFully(this.fd, trailer, this.payloadEnd);
      this.meta.checksum = checkTrailer(this.path, trailer, this.payloadBytes, this.crc);
      this.verified = true;
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fd.close();
  }
}

/**
 * A snapshot file copied into an export directory in steps (issue #16 item 4: an export does
 * not stall the host): step() copies up to maxBytes into `<to>.tmp`; publish(done) then fsyncs
 * it (off the thread where the file system can), renames it and fsyncs the directory (same),
 * and calls done(null) once the copy is durable under its name. abort() removes the `.tmp`.
 * The source stays open, so a newer snapshot removing its name meanwhile does not cut the copy.
 * @throws LogDBArgumentError when exportDir is not a directory.
 */
export class SnapshotFileCopy {
  readonly to: string;
  readonly tmpPath: string;
  private readonly src: FileHandle;
  private readonly out: FileHandle;
  private readonly sizeBytes: number;
  private pos = 0;
  private state: "copying" | "publishing" | "done" = "copying";

  constructor(
    private readonly fs: FileSystem,
    from: string,
    exportDir: string,
  ) {
    if (fs.stat(exportDir)?.isDirectory !== true) {
      throw new LogDBArgumentError(`export directory ${exportDir} does not exist`);
    }
    this.to = join(exportDir, basename(from));
    this.tmpPath = `${this.to}.tmp`;
    this.src = fs.open(from, "read");
    try {
      this.sizeBytes = this.src.sizeBytes();
      this.out = fs.open(this.tmpPath, "create");
    } catch (error) {
      this.src.close();
      throw error;
    }
  }

  /** Copies up to maxBytes; true once the whole file is copied. */
  step(maxBytes: number): boolean {
    if (this.state !== "copying")
      throw new Error(`snapshot export ${this.tmpPath}: step while ${this.state}`);
    const end = Math.min(this.sizeBytes, this.pos + maxBytes);
    if (end > this.pos) {
      const chunk = new Uint8Array(end - this.pos);
      readFully(this.src, chunk, this.pos);
      this.out.write(chunk);
      this.pos = end;
    }
    return this.pos >= this.sizeBytes;
  }

  /** fsync, rename, fsync of the directory; done(null) once durable, done(error) after abort. */
  publish(done: (error: Error | null) => void): void {
    if (this.state !== "copying")
      throw new Error(`snapshot export ${this.tmpPath}: publish while ${this.state}`);
    this.state = "publishing";
    const fail = (error: Error) => {
      this.abort();
      done(error);
    };
    const named = () => {
      try {
        this.out.close();
        this.fs.rename(this.tmpPath, this.to);
      } catch (error) {
        fail(error as Error);
        return;
      }
      this.state = "done";
      this.src.close();
      const dir = dirname(this.to);
      if (this.fs.syncDirAsync !== undefined) this.fs.syncDirAsync(dir, done);
      else {
        try {
          this.fs.syncDir(dir);
        } catch (error) {
          done(error as Error);
          return;
        }
        done(null);
      }
    };
    if (this.out.syncAsync !== undefined) {
      this.out.syncAsync((error) => (error === null ? named() : fail(error)));
      return;
    }
    try {
      this.out.sync();
    } catch (error) {
      fail(error as Error);
      return;
    }
    named();
  }

  /** Closes both files and removes the `.tmp` (nothing happens once renamed). */
  abort(): void {
    if (this.state === "done") return;
    this.state = "done";
    for (const close of [
      () => this.src.close(),
      () => this.out.close(),
      () => this.fs.remove(this.tmpPath),
    ]) {
      try {
        close();
      } catch {
        // already closed, or the .tmp already gone
      }
    }
  }
}

/**
 * A received snapshot file imported in steps (issue #16 item 4: a large snapshot received does
 * not stall the host): step() reads and checksums up to maxBytes (SnapshotFileReader; the last
 * step checks the trailer); publish(done) then makes it durable under its canonical name in
 * the replica's directory — fsync of the file, rename, fsync of the directory, each fsync off
 * the thread where the file system can — and calls done(null, meta) once it is. abort() stops
 * (the received file stays where it was: the caller removes it).
 */
export class SnapshotImport {
  private reader: SnapshotFileReader | null;
  private state: "reading" | "publishing" | "done" = "reading";
  readonly filePath: string;

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    shardId: number,
    private readonly replicaId: number,
    private readonly plantedNoFileSync: boolean,
    readonly from: string,
    /** Makes the replica's folder durably on first use (SnapshotDir.ensureDir), before the rename. */
    private readonly ensureDir: () => void,
  ) {
    this.reader = new SnapshotFileReader(fs, from);
    const meta = this.reader.meta;
    if (meta.shardId !== 0 && meta.shardId !== shardId) {
      this.abort();
      throw new LogDBArgumentError(`snapshot file ${from} is of shard ${meta.shardId}, not ${shardId}`);
    }
    this.filePath = join(dir, snapshotFileName(meta.index));
  }

  /** Reads and checksums up to maxBytes; true once the whole file is verified. */
  step(maxBytes: number): boolean {
    const reader = this.reader;
    if (reader === null || this.state !== "reading")
      throw new Error(`snapshot import of ${this.from}: step while ${this.state}`);
    try {
      reader.read(Math.min(maxBytes, reader.remaining));
    } catch (error) {
      this.abort();
      throw error;
    }
    return reader.verified;
  }

  /** Makes the verified file durable under its name; done(null, meta) once it is. */
  publish(done: (error: Error | null, meta: SnapshotMeta | null) => void): void {
    const reader = this.reader;
    if (reader === null || !reader.verified || this.state !== "reading")
      throw new Error(`snapshot import of ${this.from}: publish before it is verified`);
    this.state = "publishing";
    const meta: SnapshotMeta = { ...reader.meta, replicaId: this.replicaId, filePath: this.filePath };
    reader.close();
    this.reader = null;
    const fail = (error: Error) => {
      this.state = "done";
      done(error, null);
    };
    try {
      this.ensureDir();
    } catch (error) {
      fail(error as Error);
      return;
    }
    const synced = () => {
      try {
        this.fs.rename(this.from, this.filePath);
      } catch (error) {
        if ((error as { code?: string }).code !== "EXDEV") return fail(error as Error);
        try {
          copyFileDurably(this.fs, this.from, this.filePath);
          this.fs.remove(this.from);
        } catch (e) {
          return fail(e as Error);
        }
      }
      const ended = (error: Error | null) => {
        this.state = "done";
        done(error, error === null ? meta : null);
      };
      if (this.fs.syncDirAsync !== undefined) this.fs.syncDirAsync(this.dir, ended);
      else {
        try {
          this.fs.syncDir(this.dir);
        } catch (error) {
          return ended(error as Error);
        }
        ended(null);
      }
    };
    // test-only: the planted bug snapshot-no-fsync (the import before issue #13)
    if (this.plantedNoFileSync) {
      synced();
      return;
    }
    let file: FileHandle;
    try {
      file = this.fs.open(this.from, "read");
    } catch (error) {
      fail(error as Error);
      return;
    }
    const closeThen = (error: Error | null) => {
      try {
        file.close();
      } catch {
        // the fsync's outcome is what counts
      }
      if (error !== null) fail(error);
      else synced();
    };
    if (file.syncAsync !== undefined) {
      file.syncAsync(closeThen);
      return;
    }
    let error: Error | null = null;
    try {
      file.sync();
    } catch (e) {
      error = e as Error;
    }
    closeThen(error);
  }

  abort(): void {
    if (this.state === "done") return;
    this.state = "done";
    this.reader?.close();
    this.reader = null;
  }
}

/** Chunk size of verifySnapshotFile: memory stays bounded whatever the snapshot size. */
export const VERIFY_CHUNK_BYTES = 1024 * 1024;

/**
 * Verifies a snapshot file by streaming it in VERIFY_CHUNK_BYTES chunks (a received
 * snapshot may be larger than memory). Same checks as readSnapshotFile, without the payload.
 * @throws SnapshotCorruptError naming the file and what is wrong.
 */
export function verifySnapshotFile(fs: FileSystem, path: string): { meta: SnapshotMeta; checksum: number } {
  const fd = fs.open(path, "read");
  try {
    const sizeBytes = fd.sizeBytes();
    const head = new Uint8Array(Math.min(sizeBytes, PREFIX_BYTES + MAX_SNAPSHOT_HEADER_BYTES));
    readFully(fd, head, 0);
    const { meta, headerEnd } = parseHeader(path, head);
    if (sizeBytes < headerEnd + TRAILER_BYTES) {
      throw new SnapshotCorruptError(path, `truncated: ${sizeBytes} bytes, no room for the trailer`);
    }
    const payloadEnd = sizeBytes - TRAILER_BYTES;
    let crc = 0;
    const chunk = new Uint8Array(VERIFY_CHUNK_BYTES);
    for (let pos = 0; pos < payloadEnd; ) {
      const n = Math.min(VERIFY_CHUNK_BYTES, payloadEnd - pos);
      readFully(fd, chunk.subarray(0, n), pos);
      crc = crc32(chunk.subarray(0, n), crc);
      pos += n;
    }
    const trailer = new Uint8Array(TRAILER_BYTES);
    readFully(fd, trailer, payloadEnd);
    const checksum = checkTrailer(path, trailer, payloadEnd - headerEnd, crc);
    return { meta: { ...meta, filePath: path, fileSizeBytes: sizeBytes, checksum }, checksum };
  } finally {
    fd.close();
  }
}

function readFully(fd: FileHandle, into: Uint8Array, position: number): void {
  let off = 0;
  while (off < into.byteLength) {
    const n = fd.read(into.subarray(off), position + off);
    if (n === 0) throw new Error(`unexpected end of file at ${position + off}`);
    off += n;
  }
}

/** Checks the trailer against the payload length and the computed CRC; returns the stored checksum. */
function checkTrailer(path: string, trailer: Uint8Array, payloadBytes: number, computed: number): number {
  const tv = new DataView(trailer.buffer, trailer.byteOffset, TRAILER_BYTES);
  if (tv.getUint32(12, true) !== END_MAGIC)
    throw new SnapshotCorruptError(path, "bad end marker (truncated or overwritten)");
  const stated = tv.getUint32(0, true) + tv.getUint32(4, true) * 2 ** 32;
  if (stated !== payloadBytes) {
    throw new SnapshotCorruptError(path, `payload is ${payloadBytes} bytes, the trailer says ${stated}`);
  }
  const stored = tv.getUint32(8, true);
  if (stored !== computed) {
    throw new SnapshotCorruptError(
      path,
      `checksum mismatch: stored ${hex(stored)}, computed ${hex(computed)}`,
    );
  }
  return stored;
}

function parseHeader(path: string, bytes: Uint8Array): { meta: SnapshotMeta; headerEnd: number } {
  if (bytes.byteLength < PREFIX_BYTES)
    throw new SnapshotCorruptError(path, `truncated: ${bytes.byteLength} bytes`);
  for (let i = 0; i < MAGIC.byteLength; i++) {
    if (bytes[i] !== MAGIC[i])
      throw new SnapshotCorruptError(path, "not a Longboat snapshot file (bad magic)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, PREFIX_BYTES);
  const headerBytes = view.getUint32(MAGIC.byteLength, true);
  if (headerBytes > MAX_SNAPSHOT_HEADER_BYTES || PREFIX_BYTES + headerBytes > bytes.byteLength) {
    throw new SnapshotCorruptError(
      path,
      `header length ${headerBytes} does not fit the file of ${bytes.byteLength} bytes`,
    );
  }
  const header = bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes);
  const storedCrc = view.getUint32(MAGIC.byteLength + 4, true);
  if (crc32(header, 0) !== storedCrc) throw new SnapshotCorruptError(path, "header checksum mismatch");
  try {
    return { meta: decodeSnapshotMeta(header), headerEnd: PREFIX_BYTES + headerBytes };
  } catch (error) {
    throw new SnapshotCorruptError(path, `header does not decode: ${(error as Error).message}`);
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

export function snapshotFileName(index: number): string {
  return `snapshot-${index.toString(16).padStart(16, "0")}.lbsnap`;
}

export interface SnapshotDirOptions {
  fs: FileSystem;
  /**
   * Test-only, the planted bug "snapshot-no-fsync" (src/engine/bugs.ts): importFile renames
   * a received file and fsyncs the directory without fsyncing the file first, as Longboat did
   * before issue #13. Never set in production.
   */
  plantedNoFileSync?: boolean;
}

/**
 * The name of a snapshot a restore writes: tagged (8 hex digits), so it never replaces a file
 * that the replica's current record may still point to.
 */
export function restoredSnapshotFileName(index: number, tag: string): string {
  if (!/^[0-9a-f]{8}$/.test(tag))
    throw new LogDBArgumentError(`restore tag must be 8 hex digits, got ${tag}`);
  return `snapshot-${index.toString(16).padStart(16, "0")}-${tag}.lbsnap`;
}

/**
 * One replica's snapshot folder, `<root>/<shardId>-<replicaId>/`. Constructing it touches no
 * file system (a host starts 10,000 replicas: a mkdir and fsync each was half of their start);
 * the folder is made on first use — the first snapshot written or received — durably (new
 * parents fsynced; an existing folder's parent fsynced once too, as a crashed process may have
 * made it) before a file in it is written, so the fsync of a published file's name in the folder
 * is worth something. Leftover `.tmp` files of an interrupted write are removed then. Reading
 * (list, latest, read) copes with a folder that does not exist: recovery never depends on it.
 * @example const dir = new SnapshotDir("./data/snapshots", 1, 2, { fs: nodeFileSystem }); const meta = dir.create(m, (sink) => sink(state));
 */
export class SnapshotDir {
  readonly dir: string;
  readonly fs: FileSystem;
  private readonly plantedNoFileSync: boolean;
  /** The folder exists durably and its leftovers are gone (ensureDir ran). */
  private ready = false;

  constructor(
    root: string,
    readonly shardId: number,
    readonly replicaId: number,
    options: SnapshotDirOptions,
  ) {
    this.fs = options.fs;
    this.plantedNoFileSync = options.plantedNoFileSync === true;
    this.dir = join(root, `${shardId}-${replicaId}`);
  }

  /**
   * Makes the folder on first use: created with its new parents fsynced, or, when it exists
   * already, its parent fsynced (its name may not be durable yet) and leftover `.tmp` files of
   * an interrupted write removed. Called before any file is written into the folder.
   */
  private ensureDir(): void {
    if (this.ready) return;
    if (this.fs.stat(this.dir) === null) mkdirDurable(this.fs, this.dir);
    else {
      this.fs.syncDir(dirname(this.dir));
      for (const name of this.fs.list(this.dir))
        if (name.endsWith(".tmp")) this.fs.remove(join(this.dir, name));
    }
    this.ready = true;
  }

  /** Writes the snapshot of meta.index; returns meta with filePath, fileSizeBytes and checksum set. */
  create(meta: SnapshotMeta, write: (sink: (chunk: Uint8Array) => void) => void): SnapshotMeta {
    this.ensureDir();
    const filePath = join(this.dir, snapshotFileName(meta.index));
    const { sizeBytes, checksum } = writeSnapshotFile(this.fs, filePath, meta, write);
    return { ...meta, filePath, fileSizeBytes: sizeBytes, checksum };
  }

  /**
   * Starts writing the snapshot of meta.index in steps (SnapshotFileWriter); the meta it
   * returns gets its fileSizeBytes and checksum from the writer once published.
   */
  begin(meta: SnapshotMeta): { writer: SnapshotFileWriter; filePath: string } {
    this.ensureDir();
    const filePath = join(this.dir, snapshotFileName(meta.index));
    return { writer: new SnapshotFileWriter(this.fs, filePath, meta), filePath };
  }

  /** Reads and verifies a snapshot file of this replica (readSnapshotFile). */
  read(path: string): ReturnType<typeof readSnapshotFile> {
    return readSnapshotFile(this.fs, path);
  }

  /** Index and path of every snapshot file, ascending by index. */
  list(): { index: number; filePath: string }[] {
    if (this.fs.stat(this.dir) === null) return [];
    const out: { index: number; filePath: string }[] = [];
    for (const name of this.fs.list(this.dir)) {
      const m = FILE_PATTERN.exec(name);
      if (m) out.push({ index: Number.parseInt(m[1] as string, 16), filePath: join(this.dir, name) });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /** The newest snapshot file, or null. */
  latest(): { index: number; filePath: string } | null {
    return this.list().at(-1) ?? null;
  }

  /** Removes snapshot files below index; call only once the snapshot at index is durable. */
  removeOlderThan(index: number): void {
    let removed = 0;
    for (const f of this.list()) {
      if (f.index >= index) continue;
      this.fs.remove(f.filePath);
      removed++;
    }
    if (removed === 0) return;
    // Nothing is promised by a removal (a file that comes back after a power loss is older than
    // the recorded snapshot and removed next time): off the thread where the file system can.
    if (this.fs.syncDirAsync !== undefined) this.fs.syncDirAsync(this.dir, () => {});
    else this.fs.syncDir(this.dir);
  }

  removeAll(): void {
    this.fs.removeTree(this.dir);
  }

  /**
   * Verifies a received snapshot file and makes it durable under its canonical name here
   * (publishFile: fsync of the file, rename, fsync of this directory) before the caller
   * records it in the log database and acknowledges it.
   * @throws SnapshotCorruptError (the file stays where it was), LogDBArgumentError for another shard.
   */
  importFile(path: string): SnapshotMeta {
    const { meta, checksum } = verifySnapshotFile(this.fs, path);
    if (meta.shardId !== 0 && meta.shardId !== this.shardId) {
      throw new LogDBArgumentError(`snapshot file ${path} is of shard ${meta.shardId}, not ${this.shardId}`);
    }
    this.ensureDir();
    const filePath = join(this.dir, snapshotFileName(meta.index));
    const sizeBytes = this.fs.stat(path)?.sizeBytes ?? 0;
    if (this.plantedNoFileSync) {
      // test-only: the planted bug snapshot-no-fsync (the import before issue #13)
      this.fs.rename(path, filePath);
      this.fs.syncDir(this.dir);
    } else {
      try {
        publishFile(this.fs, path, filePath);
      } catch (error) {
        if ((error as { code?: string }).code !== "EXDEV") throw error;
        copyFileDurably(this.fs, path, filePath);
        this.fs.remove(path);
      }
    }
    return { ...meta, replicaId: this.replicaId, filePath, fileSizeBytes: sizeBytes, checksum };
  }

  /**
   * Starts importing a received snapshot file in steps (SnapshotImport): importFile's checks
   * and durability, with the file read and checksummed a bounded part per step and the fsyncs
   * off the thread where the file system can.
   * @throws SnapshotCorruptError (a bad header), LogDBArgumentError for another shard.
   */
  beginImport(path: string): SnapshotImport {
    return new SnapshotImport(
      this.fs,
      this.dir,
      this.shardId,
      this.replicaId,
      this.plantedNoFileSync,
      path,
      () => this.ensureDir(),
    );
  }

  /**
   * Copies a snapshot file of this replica into exportDir durably (a caller told "exported"
   * finds it there after a power loss); returns the exported path.
   * @throws LogDBArgumentError when exportDir is not a directory.
   */
  /** Starts copying a snapshot file of this replica into exportDir in steps (SnapshotFileCopy). */
  beginExport(filePath: string, exportDir: string): SnapshotFileCopy {
    return new SnapshotFileCopy(this.fs, filePath, exportDir);
  }

  exportFile(filePath: string, exportDir: string): string {
    if (this.fs.stat(exportDir)?.isDirectory !== true) {
      throw new LogDBArgumentError(`export directory ${exportDir} does not exist`);
    }
    const to = join(exportDir, basename(filePath));
    copyFileDurably(this.fs, filePath, to);
    return to;
  }
}
