import type { FileHandle, FileSystem } from "../fs/filesystem.ts";
import type { SnapshotMeta } from "../raft/types.ts";
import { LongboatError } from "./errors.ts";

/**
 * A snapshot file held open for a backup (NodeHost.syncExportSnapshot). The open file keeps
 * its bytes readable until close(), even when a newer snapshot removes its name meanwhile; a
 * crash closes it with the process, so nothing is left behind to clean up.
 */
export class SnapshotExport {
  readonly shardId: number;
  readonly replicaId: number;
  readonly index: number;
  readonly term: number;
  readonly app: string;
  /** CRC-32 of the file (header and payload): the last bytes of the file repeat it. */
  readonly checksum: number;
  readonly sizeBytes: number;
  private file: FileHandle | null;

  constructor(
    meta: SnapshotMeta,
    readonly deploymentId: number,
    fs: FileSystem,
  ) {
    this.shardId = meta.shardId;
    this.replicaId = meta.replicaId;
    this.index = meta.index;
    this.term = meta.term;
    this.app = meta.app;
    this.checksum = meta.checksum;
    this.file = fs.open(meta.filePath, "read");
    this.sizeBytes = this.file.sizeBytes();
    if (meta.fileSizeBytes > 0 && meta.fileSizeBytes !== this.sizeBytes) {
      const size = this.sizeBytes;
      this.close();
      throw new LongboatError(
        "aborted",
        `snapshot file ${meta.filePath} is ${size} bytes, its record says ${meta.fileSizeBytes}`,
      );
    }
  }

  /** Up to maxBytes from offset (fewer at the end of the file, none past it). */
  read(offset: number, maxBytes: number): Uint8Array {
    if (this.file === null) throw new LongboatError("invalidOperation", "the snapshot export is closed");
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.sizeBytes) {
      throw new LongboatError(
        "outOfRange",
        `offset ${offset} is outside the file of ${this.sizeBytes} bytes`,
      );
    }
    const length = Math.max(0, Math.min(maxBytes, this.sizeBytes - offset));
    const out = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const n = this.file.read(out.subarray(done), offset + done);
      if (n === 0) throw new LongboatError("aborted", `snapshot file ended at ${offset + done} bytes`);
      done += n;
    }
    return out;
  }

  get closed(): boolean {
    return this.file === null;
  }

  close(): void {
    this.file?.close();
    this.file = null;
  }
}
