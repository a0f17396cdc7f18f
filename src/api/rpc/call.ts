/**
 * What every protocol adapter gets for one call, and the helpers they share: reading a whole
 * body, decoding a stream of envelopes into request messages, and the deadline headers.
 */
import { ConnectError } from "../errors.ts";
import { decodeRequest, type Codec } from "./codec.ts";
import { decompress } from "./compression.ts";
import { EnvelopeReader, FLAG_COMPRESSED } from "./envelope.ts";
import type { Exchange } from "./exchange.ts";
import type { GuardedBody, Limits } from "./limits.ts";
import type { CallContext, Method, Protocol, ServiceDef } from "./service.ts";

export interface Call {
  readonly ex: Exchange;
  readonly service: ServiceDef;
  readonly methodName: string;
  readonly method: Method;
  readonly body: GuardedBody;
  readonly limits: Limits;
  /** An answer decided before the call (limits, token): the adapter sends it without reading the body. */
  readonly refusal?: ConnectError;
  /**
   * Logs errors that are not ConnectErrors or LongboatErrors (bugs), before they become
   * "internal"; returns the correlation id the log line and the caller's message both carry.
   */
  readonly unexpected: (error: unknown) => string;
}

/** The outcome of a call for metrics: "ok" or a Connect code. */
export type CallOutcome = string;

export function callContext(call: Call, protocol: Protocol, deadlineMs: number | undefined): CallContext {
  return {
    service: call.service.name,
    method: call.methodName,
    protocol,
    headers: call.ex.headers,
    peer: call.ex.peer,
    signal: call.ex.signal,
    deadlineMs,
  };
}

/** The whole body, refused beyond maxBytes (by its content-length first, without reading it). */
export async function readWholeBody(call: Call, what: string): Promise<Uint8Array> {
  const maxBytes = call.limits.maxBodyBytes;
  const tooBig = (size: string) =>
    new ConnectError(
      "resource_exhausted",
      `${what}: a body of ${size} exceeds the limit of ${maxBytes} bytes`,
    );
  const declared = call.ex.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooBig(`${declared} bytes`);
  const chunks: Uint8Array[] = [];
  let sizeBytes = 0;
  for await (const chunk of call.body) {
    sizeBytes += chunk.byteLength;
    if (sizeBytes > maxBytes) throw tooBig(`more than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/**
 * The request messages of an enveloped body (gRPC, gRPC-Web, Connect streaming), decoded
 * and parsed; each message's bytes go back to the budget once it is decoded.
 */
export async function* envelopedRequests(
  call: Call,
  chunks: AsyncIterable<Uint8Array>,
  opts: { codec: Codec; encoding: string | null; what: string; endFlag?: number },
): AsyncIterable<unknown> {
  const reader = new EnvelopeReader(chunks, { maxMessageBytes: call.limits.maxBodyBytes, what: opts.what });
  for await (const { flags, data } of reader) {
    call.body.release(data.byteLength + 5);
    if (opts.endFlag !== undefined && (flags & opts.endFlag) !== 0) {
      throw new ConnectError(
        "invalid_argument",
        `${opts.what}: a client may not send an end-of-stream frame`,
      );
    }
    if ((flags & ~FLAG_COMPRESSED) !== 0) {
      throw new ConnectError(
        "invalid_argument",
        `${opts.what}: unknown message flags 0x${flags.toString(16)}`,
      );
    }
    let bytes = data;
    if ((flags & FLAG_COMPRESSED) !== 0) {
      if (opts.encoding === null || opts.encoding === "identity") {
        throw new ConnectError(
          "invalid_argument",
          `${opts.what}: a message is flagged compressed but the request names no encoding`,
        );
      }
      bytes = decompress(opts.encoding, data, call.limits.maxBodyBytes);
    }
    yield decodeRequest(call.method, opts.codec, bytes);
  }
}

/** connect-timeout-ms: a positive decimal of at most 10 digits. */
export function connectDeadline(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (!/^[0-9]{1,10}$/.test(value)) {
    throw new ConnectError(
      "invalid_argument",
      `connect-timeout-ms must be a number of milliseconds, got "${value}"`,
    );
  }
  return Number(value);
}

const GRPC_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/** grpc-timeout: at most 8 digits and a unit (H M S m u n). */
export function grpcDeadline(value: string | null): number | undefined {
  if (value === null) return undefined;
  const match = /^([0-9]{1,8})([HMSmun])$/.exec(value);
  if (!match) throw new ConnectError("invalid_argument", `grpc-timeout "${value}" is not digits and a unit`);
  return Math.ceil(Number(match[1]) * GRPC_UNIT_MS[match[2]!]!);
}
