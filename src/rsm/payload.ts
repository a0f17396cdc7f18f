import { longboat } from "../pb/longboat.js";
import type { Membership } from "../raft/types.ts";
import { ByteWriter, concatChunks } from "../statemachine/bytes.ts";

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
  let at = 0;
  const take = (n: number) => {
    const out = payload.subarray(at, at + n);
    at += n;
    return out;
  };
  const head = readPayloadHead(take, payload.byteLength, where);
  const data = payload.subarray(at);
  if (!head.hasData && data.byteLength > 0)
    throw new Error(`${where}: ${data.byteLength} bytes of data after a dummy head`);
  return { ...head, data };
}

/**
 * Reads a payload's head through take(n), which returns the next n bytes in order: from
 * memory, or from a file too large for it (a restore rewrites the head and streams the data).
 * Every length is checked against payloadBytes before anything is read.
 * @returns the head and the number of bytes it took (the machine data starts there)
 */
export function readPayloadHead(
  take: (n: number) => Uint8Array,
  payloadBytes: number,
  where: string,
): PayloadHead & { headBytes: number } {
  let used = 0;
  const next = (n: number, field: string): Uint8Array => {
    if (used + n > payloadBytes) {
      throw new Error(`${where}: ${field} needs ${n} bytes at ${used}, the payload has ${payloadBytes}`);
    }
    used += n;
    const out = take(n);
    if (out.byteLength !== n)
      throw new Error(`${where}: ${field} was cut short (${out.byteLength} of ${n} bytes)`);
    return out;
  };
  const u32 = (field: string) => {
    const b = next(4, field);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  };
  const section = (field: string) => next(u32(`${field} length`), field);
  if (u32("magic") !== PAYLOAD_MAGIC)
    throw new Error(`${where}: not a state machine snapshot payload (bad magic)`);
  const version = u32("version");
  if (version !== PAYLOAD_VERSION) {
    throw new Error(`${where}: payload version ${version}, this build reads version ${PAYLOAD_VERSION}`);
  }
  const app = new TextDecoder("utf-8", { fatal: true }).decode(section("app"));
  const m = longboat.raft.v1.Membership.decode(section("membership"));
  const membership: Membership = {
    configChangeId: Number(m.configChangeId ?? 0),
    addresses: (m.addresses ?? []).map((x) => ({
      replicaId: Number(x.replicaId ?? 0),
      address: x.address ?? "",
    })),
    nonVotings: (m.nonVotings ?? []).map((x) => ({
      replicaId: Number(x.replicaId ?? 0),
      address: x.address ?? "",
    })),
    witnesses: (m.witnesses ?? []).map((x) => ({
      replicaId: Number(x.replicaId ?? 0),
      address: x.address ?? "",
    })),
    removed: (m.removed ?? []).map(Number),
  };
  const sessions = section("sessions").slice();
  const hasData = (u32("flags") & FLAG_DATA) !== 0;
  return { app, membership, sessions, hasData, headBytes: used };
}
