import { longboat } from "../pb/longboat.js";
import {
  type Entry,
  LOCAL_MESSAGE_TYPES,
  MESSAGE_TYPE_MAX,
  type Member,
  type Membership,
  type Message,
  MessageType,
  type SnapshotMeta,
} from "../raft/types.ts";
import { WIRE_FORMAT_VERSION } from "./types.ts";

const pb = longboat.raft.v1;

/** Who sent a batch; carried in every MessageBatch and SnapshotChunk. */
export interface WireHeader {
  deploymentId: number;
  sourceAddress: string;
}

/** Encodes a MessageBatch payload (without the frame header). */
export function encodeBatch(header: WireHeader, messages: Message[]): Uint8Array {
  return pb.MessageBatch.encode({
    deploymentId: header.deploymentId,
    sourceAddress: header.sourceAddress,
    formatVersion: WIRE_FORMAT_VERSION,
    messages,
  }).finish();
}

/** What decodeBatch made of a payload. Only "ok" carries messages, all validated. */
export type DecodedBatch =
  | { kind: "ok"; sourceAddress: string; messages: Message[]; invalidCount: number; invalidReason: string }
  | { kind: "deployment"; sourceAddress: string; deploymentId: number }
  | { kind: "format"; sourceAddress: string; formatVersion: number }
  | { kind: "malformed"; reason: string };

/** Longest source address accepted (a host:port); longer batches are malformed. */
export const SOURCE_ADDRESS_CHARS_MAX = 512;

/**
 * Decodes and validates one MessageBatch payload. Never throws: protobuf errors come back as
 * "malformed", a batch of another deployment or format as such, and each invalid message is
 * left out of "ok" and counted.
 */
export function decodeBatch(payload: Uint8Array, deploymentId: number): DecodedBatch {
  let batch: longboat.raft.v1.MessageBatch;
  try {
    batch = pb.MessageBatch.decode(payload);
  } catch (e) {
    return { kind: "malformed", reason: `protobuf: ${(e as Error).message}` };
  }
  const sourceAddress = batch.sourceAddress;
  if (typeof sourceAddress !== "string" || sourceAddress.length > SOURCE_ADDRESS_CHARS_MAX) {
    return { kind: "malformed", reason: `source address longer than ${SOURCE_ADDRESS_CHARS_MAX} chars` };
  }
  if (batch.deploymentId !== deploymentId) {
    return { kind: "deployment", sourceAddress, deploymentId: batch.deploymentId };
  }
  if (batch.formatVersion !== WIRE_FORMAT_VERSION) {
    return { kind: "format", sourceAddress, formatVersion: batch.formatVersion };
  }
  const messages: Message[] = [];
  let invalidCount = 0;
  let invalidReason = "";
  for (const raw of batch.messages) {
    const reason = invalidMessageReason(raw);
    if (reason === null) {
      messages.push(normaliseMessage(raw));
    } else {
      invalidCount++;
      if (invalidReason === "") invalidReason = reason;
    }
  }
  return { kind: "ok", sourceAddress, messages, invalidCount, invalidReason };
}

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf objects are checked field by field here
type Raw = any;

function isId(v: unknown): boolean {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0;
}
function isU64(v: unknown): boolean {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Why a decoded message must not reach the engine, or null when it is well formed. */
export function invalidMessageReason(m: Raw): string | null {
  const type = m.type;
  if (!Number.isInteger(type) || type < 0 || type > MESSAGE_TYPE_MAX) return `unknown message type ${type}`;
  if (LOCAL_MESSAGE_TYPES.has(type)) return `local message type ${type} on the wire`;
  if (!isId(m.shardId)) return `shardId ${m.shardId} is not a positive safe integer`;
  if (!isId(m.to)) return `to ${m.to} is not a positive safe integer`;
  if (!isId(m.from)) return `from ${m.from} is not a positive safe integer`;
  for (const f of ["term", "logTerm", "logIndex", "commit", "hint", "hintHigh"] as const) {
    if (!isU64(m[f])) return `${f} ${m[f]} is not a safe integer`;
  }
  if (typeof m.reject !== "boolean") return "reject is not a boolean";
  const entries = m.entries;
  if (!Array.isArray(entries)) return "entries is not a list";
  for (let i = 0; i < entries.length; i++) {
    const reason = invalidEntryReason(entries[i]);
    if (reason !== null) return `entry ${i}: ${reason}`;
  }
  const snapshot = m.snapshot;
  if (snapshot === null || snapshot === undefined) {
    if (type === MessageType.InstallSnapshot) return "InstallSnapshot without snapshot metadata";
    return null;
  }
  const reason = invalidSnapshotReason(snapshot);
  return reason === null ? null : `snapshot: ${reason}`;
}

function invalidEntryReason(e: Raw): string | null {
  if (e === null || typeof e !== "object") return "not an object";
  if (!isU64(e.term) || !isU64(e.index)) return `term ${e.term} / index ${e.index} not safe integers`;
  if (!Number.isInteger(e.type) || e.type < 0 || e.type > 3) return `unknown entry type ${e.type}`;
  if (!isU64(e.key) || !isU64(e.clientId) || !isU64(e.seriesId) || !isU64(e.respondedTo)) {
    return "key/clientId/seriesId/respondedTo not safe integers";
  }
  if (!isU64(e.proposerId) || !isU64(e.proposerEpoch)) return "proposerId/proposerEpoch not safe integers";
  if (!(e.cmd instanceof Uint8Array)) return "cmd is not bytes";
  return null;
}

export function invalidSnapshotReason(s: Raw): string | null {
  for (const f of ["shardId", "replicaId", "index", "term", "fileSizeBytes", "onDiskIndex"] as const) {
    if (!isU64(s[f])) return `${f} ${s[f]} is not a safe integer`;
  }
  if (typeof s.filePath !== "string" || typeof s.app !== "string") return "filePath/app not strings";
  if (typeof s.witness !== "boolean" || typeof s.dummy !== "boolean") return "witness/dummy not booleans";
  if (!Number.isInteger(s.checksum) || s.checksum < 0) return `checksum ${s.checksum} invalid`;
  const mem = s.membership;
  if (mem === null || mem === undefined) return null;
  if (!isU64(mem.configChangeId)) return "membership configChangeId not a safe integer";
  for (const list of [mem.addresses, mem.nonVotings, mem.witnesses]) {
    if (!Array.isArray(list)) return "membership member list missing";
    for (const member of list) {
      if (!isId(member?.replicaId) || typeof member.address !== "string") return "membership member invalid";
    }
  }
  if (!Array.isArray(mem.removed) || !mem.removed.every(isId)) return "membership removed list invalid";
  return null;
}

/**
 * Copies a validated decoded message into a plain Message with every field (and every entry
 * field) an own property.
 */
export function normaliseMessage(m: Raw): Message {
  return {
    type: m.type,
    to: m.to,
    from: m.from,
    shardId: m.shardId,
    term: m.term,
    logTerm: m.logTerm,
    logIndex: m.logIndex,
    commit: m.commit,
    reject: m.reject,
    hint: m.hint,
    hintHigh: m.hintHigh,
    entries: normaliseEntries(m.entries),
    snapshot: m.snapshot ? normaliseSnapshot(m.snapshot) : null,
  };
}

/**
 * Copies decoded entries into plain objects with every field an own property: protobufjs keeps
 * zero-valued fields on the prototype, which object spread and structuredClone silently drop.
 */
function normaliseEntries(raw: Raw[]): Entry[] {
  const out: Entry[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const e = raw[i];
    out[i] = {
      term: e.term,
      index: e.index,
      type: e.type,
      key: e.key,
      clientId: e.clientId,
      seriesId: e.seriesId,
      respondedTo: e.respondedTo,
      cmd: e.cmd,
      proposerId: e.proposerId,
      proposerEpoch: e.proposerEpoch,
    };
  }
  return out;
}

/** Copies a validated decoded SnapshotMeta into a plain one with every field present. */
export function normaliseSnapshot(s: Raw): SnapshotMeta {
  const members = (list: Raw[]): Member[] =>
    list.map((x) => ({ replicaId: x.replicaId, address: x.address }));
  const mem = s.membership;
  const membership: Membership | null = mem
    ? {
        configChangeId: mem.configChangeId,
        addresses: members(mem.addresses),
        nonVotings: members(mem.nonVotings),
        witnesses: members(mem.witnesses),
        removed: [...mem.removed],
      }
    : null;
  return {
    shardId: s.shardId,
    replicaId: s.replicaId,
    index: s.index,
    term: s.term,
    membership,
    filePath: s.filePath,
    fileSizeBytes: s.fileSizeBytes,
    witness: s.witness,
    dummy: s.dummy,
    onDiskIndex: s.onDiskIndex,
    app: s.app,
    checksum: s.checksum,
  };
}

/** Bytes of protobuf overhead per entry, at most (7 varints of ≤ 10 bytes, tags, lengths). */
const ENTRY_OVERHEAD_BYTES_MAX = 96;
/** Bytes of protobuf overhead per message besides entries and snapshot, at most. */
const MESSAGE_OVERHEAD_BYTES_MAX = 160;
/** Bytes a batch adds besides its messages (ids, version, a bounded source address). */
export const BATCH_OVERHEAD_BYTES_MAX = 64 + 3 * SOURCE_ADDRESS_CHARS_MAX;

/**
 * An upper bound of the bytes message takes inside an encoded MessageBatch. Queues and frame
 * packing count with it, so a batch packed to maxFrameBytes by this bound never encodes larger.
 */
export function messageSizeBoundBytes(m: Message): number {
  let size = MESSAGE_OVERHEAD_BYTES_MAX;
  const entries = m.entries;
  for (let i = 0; i < entries.length; i++) size += ENTRY_OVERHEAD_BYTES_MAX + entries[i]!.cmd.byteLength;
  const s = m.snapshot;
  if (s !== null) {
    size += 256 + 3 * (s.filePath.length + s.app.length);
    const mem = s.membership;
    if (mem !== null) {
      for (const list of [mem.addresses, mem.nonVotings, mem.witnesses]) {
        for (const member of list) size += 32 + 3 * member.address.length;
      }
      size += 11 * mem.removed.length;
    }
  }
  return size;
}
