import { longboat } from "../pb/longboat.js";
import type { Member, Membership, SnapshotMeta } from "../raft/types.ts";
import type { BootstrapRecord } from "./types.ts";

/** Encodes snapshot metadata as protobuf `longboat.raft.v1.SnapshotMeta`. */
export function encodeSnapshotMeta(meta: SnapshotMeta): Uint8Array {
  return longboat.raft.v1.SnapshotMeta.encode(meta).finish();
}

/** Decodes snapshot metadata into a plain object with every field present. */
export function decodeSnapshotMeta(bytes: Uint8Array): SnapshotMeta {
  const m = longboat.raft.v1.SnapshotMeta.decode(bytes);
  return {
    shardId: Number(m.shardId ?? 0),
    replicaId: Number(m.replicaId ?? 0),
    index: Number(m.index ?? 0),
    term: Number(m.term ?? 0),
    membership: m.membership ? copyMembership(m.membership as Membership) : null,
    filePath: m.filePath ?? "",
    fileSizeBytes: Number(m.fileSizeBytes ?? 0),
    witness: m.witness ?? false,
    dummy: m.dummy ?? false,
    onDiskIndex: Number(m.onDiskIndex ?? 0),
    app: m.app ?? "",
    checksum: Number(m.checksum ?? 0),
    ...(Number(m.deploymentId ?? 0) > 0 ? { deploymentId: Number(m.deploymentId) } : {}),
  };
}

/**
 * A deep copy, so a stored meta never aliases the caller's object. Field by field, never
 * `{ ...meta }`: a decoded protobuf keeps zero-valued fields on its prototype.
 */
export function copySnapshotMeta(meta: SnapshotMeta): SnapshotMeta {
  return {
    shardId: meta.shardId,
    replicaId: meta.replicaId,
    index: meta.index,
    term: meta.term,
    membership: meta.membership ? copyMembership(meta.membership) : null,
    filePath: meta.filePath,
    fileSizeBytes: meta.fileSizeBytes,
    witness: meta.witness,
    dummy: meta.dummy,
    onDiskIndex: meta.onDiskIndex,
    app: meta.app,
    checksum: meta.checksum,
    ...(meta.deploymentId ? { deploymentId: meta.deploymentId } : {}),
  };
}

function copyMembers(list: readonly Member[] | null | undefined): Member[] {
  return (list ?? []).map((m) => ({ replicaId: Number(m.replicaId), address: m.address }));
}

export function copyMembership(m: Membership): Membership {
  return {
    configChangeId: Number(m.configChangeId ?? 0),
    addresses: copyMembers(m.addresses),
    nonVotings: copyMembers(m.nonVotings),
    witnesses: copyMembers(m.witnesses),
    removed: (m.removed ?? []).map(Number),
  };
}

export function encodeBootstrap(record: BootstrapRecord): string {
  return JSON.stringify({
    addresses: record.addresses.map((m) => ({ replicaId: m.replicaId, address: m.address })),
    join: record.join,
    app: record.app,
    configJson: record.configJson,
  });
}

/** Parses a stored bootstrap record; `where` names it in the error. */
export function decodeBootstrap(text: string, where: string): BootstrapRecord {
  const v = JSON.parse(text) as Partial<BootstrapRecord>;
  if (
    !Array.isArray(v.addresses) ||
    typeof v.join !== "boolean" ||
    typeof v.app !== "string" ||
    typeof v.configJson !== "string"
  ) {
    throw new Error(`bootstrap record of ${where} is malformed: ${text.slice(0, 200)}`);
  }
  return { addresses: copyMembers(v.addresses), join: v.join, app: v.app, configJson: v.configJson };
}

export function copyBootstrap(record: BootstrapRecord): BootstrapRecord {
  return decodeBootstrap(encodeBootstrap(record), "a copy");
}
