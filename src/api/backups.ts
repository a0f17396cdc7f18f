/**
 * Open backups of the NodeHost API (OpenBackup, ReadBackup, CloseBackup): a snapshot file
 * held open for a client that reads it in bounded chunks, by offset (a failed chunk is simply
 * asked again). Bounded in number; one nobody read for IDLE_MS is closed.
 *
 * This is unary-call streaming for the Connect server of today, which serves no server
 * streams. Once the API server streams, one `ExportSnapshot` server-streaming method can send
 * the same chunks from the same SnapshotExport (NodeHost.syncExportSnapshot), and this file
 * goes; clients use NodeHostClient.backup either way.
 */
import { randomUUID } from "node:crypto";
import type { Env, TimerHandle } from "../env.ts";
import type { SnapshotExport } from "../nodehost.ts";
import { ConnectError } from "./errors.ts";

/** Backups open at once on one NodeHost; more are refused with resource_exhausted. */
export const MAX_OPEN_BACKUPS = 8;
/** A backup nobody read for this long is closed. */
export const BACKUP_IDLE_MS = 60_000;
/** ReadBackup's chunk when the request says 0, and the most it may ask for. */
export const BACKUP_CHUNK_DEFAULT_BYTES = 1024 * 1024;
export const BACKUP_CHUNK_MAX_BYTES = 4 * 1024 * 1024;

interface OpenBackup {
  export: SnapshotExport;
  idle: TimerHandle;
}

export class BackupRegistry {
  private readonly open = new Map<string, OpenBackup>();
  /** Opens in flight count against the bound too (a snapshot can take a while). */
  private opening = 0;

  constructor(private readonly env: Pick<Env, "setTimer">) {}

  get size(): number {
    return this.open.size;
  }

  /** Registers an export made by `make` (refused when MAX_OPEN_BACKUPS are open); returns its id. */
  async add(make: () => Promise<SnapshotExport>): Promise<{ id: string; export: SnapshotExport }> {
    if (this.open.size + this.opening >= MAX_OPEN_BACKUPS) {
      throw new ConnectError(
        "resource_exhausted",
        `${MAX_OPEN_BACKUPS} backups are open on this NodeHost; close one (CloseBackup) or wait ${BACKUP_IDLE_MS / 1000} s for an idle one to expire`,
      );
    }
    this.opening++;
    let e: SnapshotExport;
    try {
      e = await make();
    } finally {
      this.opening--;
    }
    const id = randomUUID();
    this.open.set(id, { export: e, idle: this.idleTimer(id) });
    return { id, export: e };
  }

  /** Up to maxBytes (0: the default chunk) at offset of backup id. */
  read(id: string, offset: number, maxBytes: number): Uint8Array {
    if (maxBytes > BACKUP_CHUNK_MAX_BYTES) {
      throw new ConnectError(
        "invalid_argument",
        `ReadBackupRequest.maxBytes ${maxBytes} exceeds ${BACKUP_CHUNK_MAX_BYTES}`,
      );
    }
    const b = this.get(id);
    b.idle.cancel();
    b.idle = this.idleTimer(id);
    if (offset > b.export.sizeBytes) {
      throw new ConnectError(
        "out_of_range",
        `offset ${offset} is beyond the backup's ${b.export.sizeBytes} bytes`,
      );
    }
    return b.export.read(offset, maxBytes === 0 ? BACKUP_CHUNK_DEFAULT_BYTES : maxBytes);
  }

  close(id: string): void {
    const b = this.get(id);
    this.drop(id, b);
  }

  /** Closes every open backup (the API server stops). */
  closeAll(): void {
    for (const [id, b] of this.open) this.drop(id, b);
  }

  private get(id: string): OpenBackup {
    const b = this.open.get(id);
    if (b === undefined) {
      throw new ConnectError(
        "not_found",
        `no open backup ${JSON.stringify(id)} on this NodeHost (closed, idle for ${BACKUP_IDLE_MS / 1000} s, or the NodeHost restarted): open a new one`,
      );
    }
    return b;
  }

  private drop(id: string, b: OpenBackup): void {
    b.idle.cancel();
    b.export.close();
    this.open.delete(id);
  }

  private idleTimer(id: string): TimerHandle {
    return this.env.setTimer(BACKUP_IDLE_MS, () => {
      const b = this.open.get(id);
      if (b !== undefined) this.drop(id, b);
    });
  }
}
