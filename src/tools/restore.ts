/**
 * Offline restore of one replica from a backup (Dragonboat's tools.ImportSnapshot, etcd's
 * `snapshot restore`): for a shard that lost quorum for good. Run on every member of the new
 * membership, each on its own NodeHost data directory while no NodeHost runs on it; the
 * members then start from the backup's state and elect a leader.
 *
 * Atomic: the commit point is one log database transaction (LogDB.importSnapshot). Before it
 * the replica's records are untouched, and the rewritten snapshot file waits under a name no
 * record points to (a later restore removes it); after it, the records point to that file,
 * which is durable before the transaction starts. A kill -9 at any moment leaves the data
 * directory with the replica as it was or as restored, never a mix.
 */
import { mkdirDurable } from "../fs/durable.ts";
import type { FileHandle, FileSystem } from "../fs/filesystem.ts";
import { nodeFileSystem } from "../fs/node.ts";
import { basename, join, resolve } from "node:path";
import { LogDBIdentityError, LogDBLockedError, SnapshotCorruptError } from "../logdb/errors.ts";
import {
  restoredSnapshotFileName,
  SNAPSHOT_PREFIX_BYTES,
  SNAPSHOT_TRAILER_BYTES,
  verifySnapshotFile,
  writeSnapshotFile,
} from "../logdb/snapshotfile.ts";
import { openSqliteLogDB, type SqliteLogDB } from "../logdb/sqlite.ts";
import { DATA_FORMAT_VERSION } from "../nodehost.ts";
import type { Member, Membership, SnapshotMeta } from "../raft/types.ts";
import { readPayloadHead, writePayloadHead } from "../rsm/payload.ts";

/** A restore refused or failed; the message says why and what to do. Nothing was changed. */
export class RestoreError extends Error {
  override readonly name = "RestoreError";
}

export interface RestoreOptions {
  /** The NodeHost data directory (created when absent). */
  dataDir: string;
  shardId: number;
  /** The replica this data directory's NodeHost runs; one of members. */
  replicaId: number;
  /** The shard's new full members; the same list on every member restored. */
  members: Member[];
  /** The backup: a Longboat snapshot file (longboat backup, or an exported snapshot). */
  from: string;
  /** Deployment of the NodeHosts that will run the shard; the backup must be of it. */
  deploymentId: number;
  /** The files' file system (tests record its calls). Default: the real one. */
  fs?: FileSystem;
}

export interface RestoreResult {
  index: number;
  term: number;
  app: string;
  membership: Membership;
  /** The restored snapshot file inside the data directory. */
  snapshotPath: string;
  sizeBytes: number;
}

/** Where a restore can be stopped by a test (a kill -9 right there). */
export type RestorePoint = "verified" | "locked" | "staged" | "committed" | "cleaned";

/** Bytes copied per read while rewriting the snapshot. */
const COPY_CHUNK_BYTES = 1024 * 1024;

/**
 * Restores replica opts.replicaId of opts.shardId in opts.dataDir from opts.from.
 * @throws RestoreError saying what was refused and why (the data directory is unchanged)
 * @example restoreReplica({ dataDir: "/data", shardId: 1, replicaId: 1, members, from: "shard-1.lbsnap", deploymentId: 1 });
 */
export function restoreReplica(
  opts: RestoreOptions,
  at: (point: RestorePoint) => void = () => {},
): RestoreResult {
  const fs = opts.fs ?? nodeFileSystem;
  const self = checkMembers(opts);
  const source = verifySource(opts, fs);
  at("verified");
  const logdb = openDataDir(opts, self.address, fs);
  try {
    at("locked");
    const key = { shardId: opts.shardId, replicaId: opts.replicaId };
    const tombstone = logdb.getTombstone(key);
    if (tombstone !== null) {
      throw new RestoreError(
        `replica ${key.replicaId} of shard ${key.shardId} had its data removed in ${opts.dataDir} (${tombstone.reason}); a removed replica id never returns here: restore with another replica id, or into another data directory`,
      );
    }
    const membership = newMembership(source.meta, opts.members);
    const dir = join(resolve(opts.dataDir), "snapshots", `${key.shardId}-${key.replicaId}`);
    mkdirDurable(fs, dir);
    removeUnreferenced(fs, dir, logdb.readLogState(key).snapshot?.filePath ?? null);
    const staged = stage(opts, fs, source, membership, dir);
    at("staged");
    logdb.importSnapshot(key, {
      bootstrap: {
        addresses: opts.members,
        join: false,
        app: source.meta.app,
        configJson: JSON.stringify(key),
      },
      state: { term: staged.term, vote: 0, commit: staged.index },
      snapshot: staged,
    });
    at("committed");
    removeUnreferenced(fs, dir, staged.filePath);
    at("cleaned");
    return {
      index: staged.index,
      term: staged.term,
      app: staged.app,
      membership,
      snapshotPath: staged.filePath,
      sizeBytes: staged.fileSizeBytes,
    };
  } finally {
    logdb.close();
  }
}

function checkMembers(opts: RestoreOptions): Member {
  const self = opts.members.find((m) => m.replicaId === opts.replicaId);
  if (self === undefined) {
    throw new RestoreError(
      `replica ${opts.replicaId} is not among the members (${opts.members.map((m) => m.replicaId).join(", ")})`,
    );
  }
  const ids = new Set(opts.members.map((m) => m.replicaId));
  const addresses = new Set(opts.members.map((m) => m.address));
  if (ids.size !== opts.members.length || addresses.size !== opts.members.length) {
    throw new RestoreError("the members list a replica id or an address twice");
  }
  return self;
}

/** Verifies the backup file in full (both checksums) and that it is of this shard and deployment. */
function verifySource(
  opts: RestoreOptions,
  fs: FileSystem,
): { meta: SnapshotMeta; checksum: number; sizeBytes: number } {
  if (fs.stat(opts.from) === null) throw new RestoreError(`backup file ${opts.from} does not exist`);
  let verified: { meta: SnapshotMeta; checksum: number };
  try {
    verified = verifySnapshotFile(fs, opts.from);
  } catch (error) {
    if (error instanceof SnapshotCorruptError) {
      throw new RestoreError(
        `backup file ${opts.from} is not a complete Longboat snapshot: ${error.detail} (take or copy the backup again)`,
      );
    }
    throw new RestoreError(`backup file ${opts.from} cannot be read: ${(error as Error).message}`);
  }
  const meta = verified.meta;
  if (meta.shardId !== opts.shardId) {
    throw new RestoreError(
      `backup file ${opts.from} is a snapshot of shard ${meta.shardId}, not shard ${opts.shardId}`,
    );
  }
  const deployment = meta.deploymentId ?? 0;
  if (deployment !== opts.deploymentId) {
    const of = deployment === 0 ? "an unknown deployment (it names none)" : `deployment ${deployment}`;
    throw new RestoreError(
      `backup file ${opts.from} is of ${of}, not deployment ${opts.deploymentId} (--deployment-id): restore a backup of this deployment`,
    );
  }
  if (meta.dummy || meta.witness) {
    throw new RestoreError(
      `backup file ${opts.from} holds no state machine data (a ${meta.witness ? "witness" : "metadata-only"} snapshot)`,
    );
  }
  return { meta, checksum: verified.checksum, sizeBytes: meta.fileSizeBytes };
}

/** Opens (creating when absent) the data directory's log database: its lock is the NodeHost's. */
function openDataDir(opts: RestoreOptions, raftAddress: string, fs: FileSystem): SqliteLogDB {
  const dir = resolve(opts.dataDir);
  mkdirDurable(fs, dir);
  const identity = { raftAddress, deploymentId: opts.deploymentId, formatVersion: DATA_FORMAT_VERSION };
  try {
    return openSqliteLogDB({ dir, identity });
  } catch (error) {
    if (error instanceof LogDBLockedError) {
      throw new RestoreError(
        `data directory ${opts.dataDir} is in use by another process (a NodeHost running on it?): stop it before restoring`,
      );
    }
    if (error instanceof LogDBIdentityError && error.kind === "raftAddress") {
      throw new RestoreError(
        `data directory ${opts.dataDir} belongs to another raft address, while the members put replica ${opts.replicaId} at ${raftAddress}: ${error.message}`,
      );
    }
    if (error instanceof LogDBIdentityError && error.kind === "deploymentId") {
      throw new RestoreError(
        `data directory ${opts.dataDir} belongs to another deployment: ${error.message}`,
      );
    }
    throw error;
  }
}

/**
 * The shard's membership after the restore: the new full members, everyone else the backup
 * knew removed for good (a replica of the old membership must never vote in the new one).
 */
function newMembership(meta: SnapshotMeta, members: Member[]): Membership {
  const old = meta.membership;
  const ids = new Set(members.map((m) => m.replicaId));
  const reused = (old?.removed ?? []).filter((id) => ids.has(id));
  if (reused.length > 0) {
    throw new RestoreError(
      `replica ${reused.join(", ")} was removed from shard ${meta.shardId} before the backup and removed ids never return: give the member a new id`,
    );
  }
  const removed = new Set(old?.removed ?? []);
  for (const list of [old?.addresses, old?.nonVotings, old?.witnesses]) {
    for (const m of list ?? []) if (!ids.has(m.replicaId)) removed.add(m.replicaId);
  }
  return {
    // Later config changes come at indexes above the snapshot's; ordered changes quote this.
    configChangeId: meta.index,
    addresses: [...members].sort((a, b) => a.replicaId - b.replicaId),
    nonVotings: [],
    witnesses: [],
    removed: [...removed].sort((a, b) => a - b),
  };
}

/**
 * Writes the backup anew, with the new membership in its header and payload head and the
 * machine data copied through, under a name no record points to; durable when it returns.
 * The source's CRC is recomputed over everything read and must match the file's again.
 */
function stage(
  opts: RestoreOptions,
  fs: FileSystem,
  source: { meta: SnapshotMeta; checksum: number },
  membership: Membership,
  dir: string,
): SnapshotMeta {
  const meta: SnapshotMeta = {
    ...source.meta,
    replicaId: opts.replicaId,
    membership,
    filePath: "",
    fileSizeBytes: 0,
    checksum: 0,
    deploymentId: opts.deploymentId,
  };
  const path = join(dir, restoredSnapshotFileName(meta.index, randomHex()));
  const reader = new SourceReader(fs, opts.from);
  try {
    const written = writeSnapshotFile(fs, path, meta, (sink) => {
      const head = readPayloadHead((n) => reader.take(n), reader.payloadBytes, `backup file ${opts.from}`);
      writePayloadHead(sink, { app: head.app, membership, sessions: head.sessions, hasData: head.hasData });
      for (let left = reader.payloadBytes - head.headBytes; left > 0; ) {
        const chunk = reader.take(Math.min(COPY_CHUNK_BYTES, left));
        sink(chunk);
        left -= chunk.byteLength;
      }
      if (reader.crc !== source.checksum) {
        throw new RestoreError(
          `backup file ${opts.from} changed while it was restored (CRC-32 differs): try again`,
        );
      }
    });
    return { ...meta, filePath: path, fileSizeBytes: written.sizeBytes, checksum: written.checksum };
  } finally {
    reader.close();
  }
}

/**
 * Reads a snapshot file front to back, computing the CRC-32 of everything before its trailer:
 * first the framing and header (skipped), then the payload through take().
 */
class SourceReader {
  readonly payloadBytes: number;
  crc = 0;
  private readonly file: FileHandle;
  private position: number;

  constructor(fs: FileSystem, path: string) {
    this.file = fs.open(path, "read");
    const sizeBytes = this.file.sizeBytes();
    const prefix = this.read(0, SNAPSHOT_PREFIX_BYTES);
    // The header length follows the 8-byte magic (src/logdb/snapshotfile.ts has the layout).
    const headerBytes = new DataView(prefix.buffer, prefix.byteOffset).getUint32(8, true);
    const headerEnd = SNAPSHOT_PREFIX_BYTES + headerBytes;
    this.crc = Bun.hash.crc32(prefix, 0) >>> 0;
    this.crc = Bun.hash.crc32(this.read(SNAPSHOT_PREFIX_BYTES, headerBytes), this.crc) >>> 0;
    this.position = headerEnd;
    this.payloadBytes = sizeBytes - SNAPSHOT_TRAILER_BYTES - headerEnd;
  }

  take(n: number): Uint8Array {
    const out = this.read(this.position, n);
    this.position += n;
    this.crc = Bun.hash.crc32(out, this.crc) >>> 0;
    return out;
  }

  close(): void {
    this.file.close();
  }

  private read(position: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let done = 0; done < n; ) {
      const got = this.file.read(out.subarray(done), position + done);
      if (got === 0)
        throw new RestoreError(`backup file ended at ${position + done} bytes while it was restored`);
      done += got;
    }
    return out;
  }
}

/**
 * Removes every file of the replica's snapshot directory but the one the record points to
 * (compared by name: a record's path may be relative to the NodeHost's working directory).
 * Anything else there is garbage: older snapshots, or one written but never recorded.
 */
function removeUnreferenced(fs: FileSystem, dir: string, recorded: string | null): void {
  const keep = recorded === null ? null : basename(recorded);
  let removed = 0;
  for (const name of fs.list(dir)) {
    if (name === keep) continue;
    const path = join(dir, name);
    if (fs.stat(path)?.isDirectory) fs.removeTree(path);
    else fs.remove(path);
    removed++;
  }
  if (removed > 0) fs.syncDir(dir);
}

function randomHex(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
