import { crc32 } from "node:zlib";
import { FrameError } from "./errors.ts";

/**
 * Wire frame: `[u32 payload length][u32 CRC-32 of payload][payload]`, big-endian.
 * Used for MessageBatch frames on the message stream and SnapshotChunk frames on a snapshot stream.
 */
export const FRAME_HEADER_BYTES = 8;

/** Largest frame a u32 length can state; maxFrameBytes options must stay below it. */
export const FRAME_BYTES_LIMIT = 0xffff_ffff;

/** CRC-32 (IEEE) of bytes. */
export function checksum(bytes: Uint8Array): number {
  return crc32(bytes) >>> 0;
}

/** Wraps payload in a frame header (one copy of the payload). */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  const view = new DataView(frame.buffer);
  view.setUint32(0, payload.byteLength);
  view.setUint32(4, checksum(payload));
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Splits a byte stream into verified frame payloads. Buffers at most one frame
 * (maxFrameBytes + header); an over-size length or a bad checksum throws FrameError and the
 * decoder must not be used again (the stream is closed).
 */
export class FrameDecoder {
  private readonly chunks: Uint8Array[] = [];
  private bufferedBytes = 0;
  private failed = false;

  constructor(readonly maxFrameBytes: number) {
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > FRAME_BYTES_LIMIT) {
      throw new RangeError(
        `maxFrameBytes must be an integer in [0, ${FRAME_BYTES_LIMIT}], got ${maxFrameBytes}`,
      );
    }
  }

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** Feeds bytes; returns the payloads of every frame completed by them, in order. */
  push(bytes: Uint8Array): Uint8Array[] {
    if (this.failed) throw new Error("FrameDecoder used after a FrameError");
    const out: Uint8Array[] = [];
    if (bytes.byteLength === 0) return out;
    this.chunks.push(bytes);
    this.bufferedBytes += bytes.byteLength;
    for (;;) {
      if (this.bufferedBytes < FRAME_HEADER_BYTES) return out;
      const head = this.peekHeader();
      const length = head.getUint32(0);
      if (length > this.maxFrameBytes) {
        this.failed = true;
        throw new FrameError(
          "oversize",
          `length ${length} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`,
        );
      }
      if (this.bufferedBytes < FRAME_HEADER_BYTES + length) return out;
      const frame = this.take(FRAME_HEADER_BYTES + length);
      const payload = frame.subarray(FRAME_HEADER_BYTES);
      const expected = head.getUint32(4);
      const actual = checksum(payload);
      if (expected !== actual) {
        this.failed = true;
        throw new FrameError(
          "checksum",
          `CRC-32 ${actual} of a ${length}-byte payload, header says ${expected}`,
        );
      }
      out.push(payload);
    }
  }

  private peekHeader(): DataView {
    const first = this.chunks[0]!;
    if (first.byteLength >= FRAME_HEADER_BYTES) {
      return new DataView(first.buffer, first.byteOffset, FRAME_HEADER_BYTES);
    }
    const head = new Uint8Array(FRAME_HEADER_BYTES);
    let filled = 0;
    for (const c of this.chunks) {
      const n = Math.min(c.byteLength, FRAME_HEADER_BYTES - filled);
      head.set(c.subarray(0, n), filled);
      filled += n;
      if (filled === FRAME_HEADER_BYTES) break;
    }
    return new DataView(head.buffer);
  }

  /** Removes and returns the first sizeBytes buffered bytes (a view when one chunk holds them). */
  private take(sizeBytes: number): Uint8Array {
    this.bufferedBytes -= sizeBytes;
    const first = this.chunks[0]!;
    if (first.byteLength >= sizeBytes) {
      if (first.byteLength === sizeBytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(sizeBytes);
      return first.subarray(0, sizeBytes);
    }
    const out = new Uint8Array(sizeBytes);
    let filled = 0;
    while (filled < sizeBytes) {
      const c = this.chunks[0]!;
      const n = Math.min(c.byteLength, sizeBytes - filled);
      out.set(c.subarray(0, n), filled);
      filled += n;
      if (n === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(n);
    }
    return out;
  }
}
