import { join } from "node:path";
import { mkdirDurable } from "../fs/durable.ts";
import type { FileHandle, FileSystem } from "../fs/filesystem.ts";
import { longboat } from "../pb/longboat.js";
import { type Message, MessageType, makeMessage } from "../raft/types.ts";
import { invalidMessageReason, invalidSnapshotReason, normaliseSnapshot, type WireHeader } from "./codec.ts";
import { SnapshotChunkError } from "./errors.ts";
import { checksum } from "./frame.ts";
import { WIRE_FORMAT_VERSION } from "./types.ts";

const pb = longboat.raft.v1;

/** Test-only fault injection shared by both transports (never set in production). */
export interface TransportFaults {
  /** Corrupts the data of this chunk index (after its checksum was computed) in every snapshot sent. */
  corruptSnapshotChunkIndex: number;
}

/**
 * Reads a snapshot file in chunks and encodes each as a SnapshotChunk payload. File reads are
 * synchronous (one chunk at a time, ≤ snapshotChunkBytes) so the simulator stays deterministic.
 */
export class SnapshotChunker {
  readonly chunkCount: number;
  readonly fileSizeBytes: number;
  private fd: FileHandle | null = null;
  private nextIndex = 0;

  constructor(
    fs: FileSystem,
    private readonly message: Message,
    private readonly header: WireHeader,
    private readonly chunkBytes: number,
    private readonly faults: TransportFaults,
  ) {
    const reason = sendableSnapshotReason(message);
    if (reason !== null) throw new SnapshotChunkError(`cannot send snapshot: ${reason}`);
    const meta = message.snapshot!;
    if (meta.filePath === "" || meta.witness || meta.dummy) {
      this.fileSizeBytes = 0;
    } else {
      this.fd = fs.open(meta.filePath, "read");
      this.fileSizeBytes = this.fd.sizeBytes();
    }
    this.chunkCount = Math.max(1, Math.ceil(this.fileSizeBytes / chunkBytes));
  }

  /** The next chunk's payload, or null after the last one (the file is then closed). */
  next(): Uint8Array | null {
    if (this.nextIndex >= this.chunkCount) {
      this.close();
      return null;
    }
    const index = this.nextIndex++;
    const sizeBytes = Math.min(this.chunkBytes, this.fileSizeBytes - index * this.chunkBytes);
    const data = new Uint8Array(Math.max(0, sizeBytes));
    let filled = 0;
    while (filled < data.byteLength) {
      const n = this.fd!.read(data.subarray(filled), index * this.chunkBytes + filled);
      if (n === 0)
        throw new SnapshotChunkError(`snapshot file ${this.message.snapshot!.filePath} shrank while sent`);
      filled += n;
    }
    const sum = checksum(data);
    const corrupt = index === this.faults.corruptSnapshotChunkIndex;
    // An empty chunk has no byte to flip, so its checksum is altered instead.
    if (corrupt && data.byteLength > 0) data[0] = data[0]! ^ 0xff;
    const m = this.message;
    return pb.SnapshotChunk.encode({
      deploymentId: this.header.deploymentId,
      sourceAddress: this.header.sourceAddress,
      formatVersion: WIRE_FORMAT_VERSION,
      shardId: m.shardId,
      to: m.to,
      from: m.from,
      term: m.term,
      chunkIndex: index,
      chunkCount: this.chunkCount,
      fileSizeBytes: this.fileSizeBytes,
      meta: index === 0 ? m.snapshot : null,
      data,
      checksum: corrupt && data.byteLength === 0 ? (sum ^ 1) >>> 0 : sum,
    }).finish();
  }

  close(): void {
    this.fd?.close();
    this.fd = null;
  }
}

function sendableSnapshotReason(m: Message): string | null {
  if (m.type !== MessageType.InstallSnapshot) return `message type ${m.type} is not InstallSnapshot`;
  if (m.snapshot === null) return "message has no snapshot metadata";
  return invalidMessageReason(m);
}

/**
 * Rebuilds one incoming snapshot from its chunks into `<dir>/<name>.receiving`, verifying
 * each chunk (deployment, format, order, same stream, CRC-32 of data, sizes) and renaming the
 * file to `<name>.snap` when complete. Any violation throws SnapshotChunkError; call abort()
 * to remove the partial file.
 *
 * The receiving directory is scratch: nothing in it is promised to anyone, and a restart
 * empties it (clearIncoming). A received file becomes durable only when the engine imports it
 * (SnapshotDir.importFile: fsync of the file, rename, fsync of the directory), before the
 * log database records it and the replica acknowledges it.
 */
export class SnapshotAssembler {
  private fd: FileHandle | null = null;
  private first: longboat.raft.v1.SnapshotChunk | null = null;
  private writtenBytes = 0;
  private expectedIndex = 0;
  private readonly tempPath: string;
  private readonly finalPath: string;

  constructor(
    private readonly o: { fs: FileSystem; dir: string; deploymentId: number; maxFileBytes: number },
    name: string,
  ) {
    this.tempPath = join(o.dir, `${name}.receiving`);
    this.finalPath = join(o.dir, `${name}.snap`);
  }

  /** Source address from the first chunk ("" before it). */
  get sourceAddress(): string {
    return this.first?.sourceAddress ?? "";
  }

  /** Consumes one chunk payload; returns the InstallSnapshot message after the last chunk. */
  push(payload: Uint8Array): Message | null {
    let c: longboat.raft.v1.SnapshotChunk;
    try {
      c = pb.SnapshotChunk.decode(payload);
    } catch (e) {
      throw new SnapshotChunkError(
        `chunk ${this.expectedIndex} is not a SnapshotChunk: ${(e as Error).message}`,
      );
    }
    this.check(c);
    if (checksum(c.data) !== c.checksum) {
      throw new SnapshotChunkError(`chunk ${c.chunkIndex} of ${c.chunkCount}: data checksum mismatch`);
    }
    if (this.writtenBytes + c.data.byteLength > c.fileSizeBytes) {
      throw new SnapshotChunkError(
        `chunk ${c.chunkIndex} carries data beyond fileSizeBytes ${c.fileSizeBytes}`,
      );
    }
    if (this.fd === null) this.fd = this.o.fs.open(this.tempPath, "createNew");
    this.fd.write(c.data);
    this.writtenBytes += c.data.byteLength;
    this.expectedIndex++;
    if (this.expectedIndex < c.chunkCount) return null;
    if (this.writtenBytes !== c.fileSizeBytes) {
      throw new SnapshotChunkError(
        `snapshot ended at ${this.writtenBytes} bytes, expected ${c.fileSizeBytes}`,
      );
    }
    return this.finish();
  }

  private check(c: longboat.raft.v1.SnapshotChunk): void {
    const at = `chunk ${c.chunkIndex} (expected ${this.expectedIndex})`;
    if (c.deploymentId !== this.o.deploymentId)
      throw new SnapshotChunkError(`${at}: deployment ${c.deploymentId}`);
    if (c.formatVersion !== WIRE_FORMAT_VERSION)
      throw new SnapshotChunkError(`${at}: format ${c.formatVersion}`);
    if (c.chunkIndex !== this.expectedIndex) throw new SnapshotChunkError(`${at}: out of order`);
    const f = this.first;
    if (f === null) {
      this.checkFirst(c, at);
      this.first = c;
      return;
    }
    if (
      c.shardId !== f.shardId ||
      c.to !== f.to ||
      c.from !== f.from ||
      c.chunkCount !== f.chunkCount ||
      c.fileSizeBytes !== f.fileSizeBytes
    ) {
      throw new SnapshotChunkError(`${at}: shard/to/from/chunkCount/fileSizeBytes differ from chunk 0`);
    }
  }

  private checkFirst(c: longboat.raft.v1.SnapshotChunk, at: string): void {
    const m = { ...makeMessage({ type: MessageType.InstallSnapshot }), ...pick(c), snapshot: c.meta ?? null };
    const reason = invalidMessageReason(m);
    if (reason !== null) throw new SnapshotChunkError(`${at}: ${reason}`);
    if (!Number.isSafeInteger(c.fileSizeBytes) || c.fileSizeBytes > this.o.maxFileBytes) {
      throw new SnapshotChunkError(
        `${at}: fileSizeBytes ${c.fileSizeBytes} over limit ${this.o.maxFileBytes}`,
      );
    }
    const maxChunks = Math.max(1, c.fileSizeBytes);
    if (!Number.isSafeInteger(c.chunkCount) || c.chunkCount < 1 || c.chunkCount > maxChunks) {
      throw new SnapshotChunkError(`${at}: chunkCount ${c.chunkCount} not in [1, ${maxChunks}]`);
    }
    const snapReason = invalidSnapshotReason(c.meta);
    if (snapReason !== null) throw new SnapshotChunkError(`${at}: ${snapReason}`);
  }

  private finish(): Message {
    if (this.fd === null) this.fd = this.o.fs.open(this.tempPath, "createNew");
    this.fd.close();
    this.fd = null;
    this.o.fs.rename(this.tempPath, this.finalPath);
    const f = this.first!;
    const meta = normaliseSnapshot(f.meta);
    meta.filePath = this.finalPath;
    meta.fileSizeBytes = f.fileSizeBytes;
    return makeMessage({ type: MessageType.InstallSnapshot, ...pick(f), snapshot: meta });
  }

  /** Removes the partial file; safe to call more than once and after finish. */
  abort(): void {
    this.fd?.close();
    this.fd = null;
    this.o.fs.remove(this.tempPath);
  }
}

/**
 * Creates the receiving directory, or empties it of what a crash left there: partial
 * `.receiving` files and complete `.snap` files the engine never imported (nothing refers to
 * either: the engine imports a received file before anything records it).
 */
export function clearIncoming(fs: FileSystem, dir: string): void {
  mkdirDurable(fs, dir);
  for (const name of fs.list(dir)) {
    if (name.endsWith(".receiving") || name.endsWith(".snap")) fs.remove(join(dir, name));
  }
}

function pick(c: longboat.raft.v1.SnapshotChunk) {
  return { shardId: c.shardId, to: c.to, from: c.from, term: c.term };
}
