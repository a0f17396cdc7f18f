import type { Env } from "../env.ts";
import type { FileSystem } from "../fs/filesystem.ts";
import { nodeFileSystem } from "../fs/node.ts";
import { BATCH_OVERHEAD_BYTES_MAX } from "./codec.ts";
import { TransportConfigError } from "./errors.ts";
import { FRAME_BYTES_LIMIT } from "./frame.ts";
import type { TransportLog } from "./logonce.ts";
import type { Registry } from "./types.ts";

const MiB = 1024 * 1024;

/** Settings shared by every transport implementation. Sizes in bytes, times in milliseconds. */
export interface TransportOptions {
  /** Raft address host:port, listened on and advertised (port 0: pick a free port, HTTP/2 only). */
  address: string;
  deploymentId: number;
  registry: Registry;
  env: Env;
  /** Directory for snapshots being received (temporary files, handed over when complete). */
  snapshotDir: string;
  /** Where snapshot files are read and written. Default the real file system (the simulator passes its disk). */
  fs?: FileSystem;
  log?: TransportLog;
  /** Messages queued per target NodeHost before send() drops. Default 4096. */
  maxSendQueueMessages?: number;
  /** Bytes (encoded-size upper bound) queued per target before send() drops. Default 64 MiB. */
  maxSendQueueBytes?: number;
  /** Largest frame payload sent or accepted. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Largest single message (encoded-size upper bound). Default maxFrameBytes − batch overhead. */
  maxMessageBytes?: number;
  /** Snapshot data bytes per chunk. Default 2 MiB (less when maxFrameBytes is small). */
  snapshotChunkBytes?: number;
  /** Concurrent incoming snapshot streams. Default 128. */
  maxSnapshotStreamsIn?: number;
  /** Concurrent outgoing snapshot streams; sendSnapshot refuses beyond. Default 64. */
  maxSnapshotStreamsOut?: number;
  /** Largest snapshot file accepted. Default 1 TiB. */
  maxSnapshotFileBytes?: number;
  /** First reconnect delay; doubles per consecutive failure up to backoffMaxMs, ±50% jitter. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Consecutive connect failures after which a target is marked down (until a connect succeeds). */
  downAfterFailures?: number;
  /** Distinct target NodeHosts tracked at once; send() to a new one beyond it drops. Default 4096. */
  maxPeers?: number;
}

export type ResolvedOptions = Required<Omit<TransportOptions, "log">> & Pick<TransportOptions, "log">;

/** Applies defaults and checks every bound, one error naming each rule broken. */
export function resolveOptions(o: TransportOptions): ResolvedOptions {
  const maxFrameBytes = o.maxFrameBytes ?? 64 * MiB;
  const r: ResolvedOptions = {
    address: o.address,
    deploymentId: o.deploymentId,
    registry: o.registry,
    env: o.env,
    snapshotDir: o.snapshotDir,
    fs: o.fs ?? nodeFileSystem,
    log: o.log,
    maxSendQueueMessages: o.maxSendQueueMessages ?? 4096,
    maxSendQueueBytes: o.maxSendQueueBytes ?? 64 * MiB,
    maxFrameBytes,
    maxMessageBytes: o.maxMessageBytes ?? maxFrameBytes - BATCH_OVERHEAD_BYTES_MAX,
    snapshotChunkBytes: o.snapshotChunkBytes ?? Math.min(2 * MiB, maxFrameBytes - 4096),
    maxSnapshotStreamsIn: o.maxSnapshotStreamsIn ?? 128,
    maxSnapshotStreamsOut: o.maxSnapshotStreamsOut ?? 64,
    maxSnapshotFileBytes: o.maxSnapshotFileBytes ?? 1024 * 1024 * MiB,
    backoffInitialMs: o.backoffInitialMs ?? 100,
    backoffMaxMs: o.backoffMaxMs ?? 2000,
    downAfterFailures: o.downAfterFailures ?? 3,
    maxPeers: o.maxPeers ?? 4096,
  };
  const errors: string[] = [];
  if (!/^[^\s:]+:\d{1,5}$/.test(r.address ?? "")) errors.push(`address must be host:port, got ${r.address}`);
  if (!Number.isSafeInteger(r.deploymentId) || r.deploymentId <= 0) {
    errors.push(`deploymentId must be a positive safe integer, got ${r.deploymentId}`);
  }
  if (typeof r.snapshotDir !== "string" || r.snapshotDir === "") errors.push("snapshotDir is required");
  const positive = [
    "maxSendQueueMessages",
    "maxSendQueueBytes",
    "maxMessageBytes",
    "snapshotChunkBytes",
    "maxSnapshotStreamsIn",
    "maxSnapshotStreamsOut",
    "maxSnapshotFileBytes",
    "backoffInitialMs",
    "backoffMaxMs",
    "downAfterFailures",
    "maxPeers",
  ] as const;
  for (const k of positive) {
    if (!Number.isSafeInteger(r[k]) || r[k] <= 0) errors.push(`${k} must be a positive integer, got ${r[k]}`);
  }
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes <= BATCH_OVERHEAD_BYTES_MAX) {
    errors.push(`maxFrameBytes must be an integer > ${BATCH_OVERHEAD_BYTES_MAX}, got ${maxFrameBytes}`);
  } else if (maxFrameBytes > FRAME_BYTES_LIMIT) {
    errors.push(`maxFrameBytes must be ≤ ${FRAME_BYTES_LIMIT}, got ${maxFrameBytes}`);
  }
  if (r.maxMessageBytes > maxFrameBytes - BATCH_OVERHEAD_BYTES_MAX) {
    errors.push(
      `maxMessageBytes must be ≤ maxFrameBytes − ${BATCH_OVERHEAD_BYTES_MAX}, got ${r.maxMessageBytes}`,
    );
  }
  if (r.snapshotChunkBytes > maxFrameBytes - 4096) {
    errors.push(`snapshotChunkBytes must be ≤ maxFrameBytes − 4096, got ${r.snapshotChunkBytes}`);
  }
  if (r.backoffMaxMs < r.backoffInitialMs) {
    errors.push(`backoffMaxMs must be ≥ backoffInitialMs, got ${r.backoffMaxMs} and ${r.backoffInitialMs}`);
  }
  if (errors.length > 0) throw new TransportConfigError(`invalid transport options: ${errors.join("; ")}`);
  return r;
}

/** Reconnect delay after `failures` consecutive failures: exponential, capped, ±50% jitter. */
export function backoffMs(o: ResolvedOptions, failures: number): number {
  const base = Math.min(o.backoffMaxMs, o.backoffInitialMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(base * (0.5 + o.env.random()));
}
