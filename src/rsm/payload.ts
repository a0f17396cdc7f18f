import { longboat } from "../pb/longboat.js";
import type { Membership } from "../raft/types.ts";
import { ByteReader, ByteWriter, concatChunks } from "../statemachine/bytes.ts";

/**
 * The payload of a snapshot file (inside the file framing of src/logdb/snapshotfile.ts, which
 * checksums it). Little endian, length-prefixed sections, the machine's data last:
 *
 *   u32 magic 0x4d53524c ("LRSM")  u32 version (1)
 *   u32 appLength         app name, UTF-8
 *   u32 membershipLength  longboat.raft.v1.Membership protobuf
 *   u32 sessionsLength    session table (layout in SessionManager.save)
 *   u32 flags             bit 0: machine data follows (clear: a dummy snapshot of an on-disk
 *                         machine, or a snapshot with no machine)
 *   machine data          the rest of the payload, in the app's own format
 *
 * The machine data comes last and unprefixed so it streams straight from the app to the file.
 */

export const PAYLOAD_MAGIC = 0x4d53524c;
export const PAYLOAD_VERSION = 1;
const FLAG_DATA = 1;

export interface PayloadHead {
  app: string;
  membership: Membership;
  sessions: Uint8Array;
  hasData: boolean;
}

export function writePayloadHead(sink: (chunk: Uint8Array) => void, head: PayloadHead): void {
  const w = new ByteWriter(sink);
  w.u32(PAYLOAD_MAGIC);
  w.u32(PAYLOAD_VERSION);
  w.bytes(new TextEncoder().encode(head.app));
  w.bytes(longboat.raft.v1.Membership.encode(head.membership).finish());
  w.bytes(head.sessions);
  w.u32(head.hasData ? FLAG_DATA : 0);
  w.flush();
}

/** Collects a writer's output (the session table, bounded by maxSessions) into one buffer. */
export function collect(write: (sink: (chunk: Uint8Array) => void) => void): Uint8Array {
  const chunks: Uint8Array[] = [];
  write((c) => chunks.push(c));
  return concatChunks(chunks);
}

/** @throws BytesFormatError / Error naming `where` on a payload that is not ours. */
export function readPayload(payload: Uint8Array, where: string): PayloadHead & { data: Uint8Array } {
  const r = new ByteReader(payload, where);
  const magic = r.u32("magic");
  if (magic !== PAYLOAD_MAGIC) throw new Error(`${where}: not a state machine snapshot payload (bad magic)`);
  const version = r.u32("version");
  if (version !== PAYLOAD_VERSION) {
    throw new Error(`${where}: payload version ${version}, this build reads version ${PAYLOAD_VERSION}`);
  }
  const app = new TextDecoder("utf-8", { fatal: true }).decode(r.bytes("app"));
  const m = longboat.raft.v1.Membership.decode(r.bytes("membership"));
  const membership: Membership = {
    configChangeId: m.configChangeId ?? 0,
    addresses: (m.addresses ?? []).map((x) => ({ replicaId: x.replicaId ?? 0, address: x.address ?? "" })),
    nonVotings: (m.nonVotings ?? []).map((x) => ({ replicaId: x.replicaId ?? 0, address: x.address ?? "" })),
    witnesses: (m.witnesses ?? []).map((x) => ({ replicaId: x.replicaId ?? 0, address: x.address ?? "" })),
    removed: [...(m.removed ?? [])],
  };
  const sessions = r.bytes("sessions");
  const flags = r.u32("flags");
  const hasData = (flags & FLAG_DATA) !== 0;
  const data = r.rest();
  if (!hasData && data.byteLength > 0)
    throw new Error(`${where}: ${data.byteLength} bytes of data after a dummy head`);
  return { app, membership, sessions, hasData, data };
}
