/**
 * The length-prefixed message framing shared by gRPC, gRPC-Web and Connect streaming: one
 * flags byte, a 4-byte big-endian length, then that many bytes.
 *
 * Flags: bit 0 (0x01) the message is compressed; Connect sets 0x02 on its end-of-stream
 * message; gRPC-Web sets 0x80 on its trailers frame.
 *
 * ```ts
 * const frame = encodeEnvelope(0, message);
 * const reader = new EnvelopeReader(body, { maxMessageBytes: 1 << 20 });
 * for await (const { flags, data } of reader) …
 * ```
 */
import { ConnectError } from "../errors.ts";

export const ENVELOPE_HEADER_BYTES = 5;
export const FLAG_COMPRESSED = 0x01;
export const FLAG_CONNECT_END_STREAM = 0x02;
export const FLAG_GRPC_WEB_TRAILERS = 0x80;

export interface Envelope {
  flags: number;
  data: Uint8Array;
}

/** One frame: flags, length, data. */
export function encodeEnvelope(flags: number, data: Uint8Array): Uint8Array {
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) {
    throw new Error(`envelope flags must be one byte, got ${flags}`);
  }
  const out = new Uint8Array(ENVELOPE_HEADER_BYTES + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength, false);
  out.set(data, ENVELOPE_HEADER_BYTES);
  return out;
}

/**
 * Reads envelopes from a stream of byte chunks, refusing a message longer than
 * maxMessageBytes before buffering it (resource_exhausted) and a stream that ends inside a
 * frame (invalid_argument). Holds at most one message plus one chunk in memory.
 */
export class EnvelopeReader implements AsyncIterable<Envelope> {
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;

  constructor(
    private readonly chunks: AsyncIterable<Uint8Array>,
    private readonly opts: { maxMessageBytes: number; what: string },
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Envelope> {
    let need = ENVELOPE_HEADER_BYTES;
    let header: Uint8Array | null = null;
    for await (const chunk of this.chunks) {
      if (chunk.byteLength === 0) continue;
      this.buffered.push(chunk);
      this.bufferedBytes += chunk.byteLength;
      while (this.bufferedBytes >= need) {
        if (header === null) {
          header = this.take(ENVELOPE_HEADER_BYTES);
          const length = new DataView(header.buffer, header.byteOffset, 5).getUint32(1, false);
          if (length > this.opts.maxMessageBytes) {
            throw new ConnectError(
              "resource_exhausted",
              `${this.opts.what}: a message of ${length} bytes exceeds the limit of ${this.opts.maxMessageBytes} bytes`,
            );
          }
          need = length;
          continue;
        }
        const data = this.take(need);
        const flags = header[0]!;
        header = null;
        need = ENVELOPE_HEADER_BYTES;
        yield { flags, data };
      }
    }
    if (header !== null || this.bufferedBytes > 0) {
      throw new ConnectError(
        "invalid_argument",
        `${this.opts.what}: the body ends inside a message frame (${this.bufferedBytes} of ${
          header === null ? ENVELOPE_HEADER_BYTES : need
        } bytes)`,
      );
    }
  }

  /** Removes and returns the first n buffered bytes (n ≤ bufferedBytes). */
  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.buffered[0]!;
    if (first.byteLength >= n) {
      const out = first.subarray(0, n);
      if (first.byteLength === n) this.buffered.shift();
      else this.buffered[0] = first.subarray(n);
      this.bufferedBytes -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const head = this.buffered[0]!;
      const part = Math.min(head.byteLength, n - filled);
      out.set(head.subarray(0, part), filled);
      filled += part;
      if (part === head.byteLength) this.buffered.shift();
      else this.buffered[0] = head.subarray(part);
    }
    this.bufferedBytes -= n;
    return out;
  }
}
