/**
 * gRPC (HTTP/2 with trailers) and gRPC-Web (any HTTP version; trailers as a last body frame
 * flagged 0x80, or base64 text for application/grpc-web-text). Both frame messages in
 * envelopes and end with grpc-status / grpc-message; an error before any message is sent as
 * a "trailers-only" response (the status in the headers).
 */
import { ConnectError, toConnectError } from "../errors.ts";
import { type Call, type CallOutcome, callContext, envelopedRequests, grpcDeadline } from "./call.ts";
import { type Codec, codecByName, encodeResponse } from "./codec.ts";
import { grpcStatusOf } from "./codes.ts";
import { ACCEPTED_ENCODINGS, checkEncoding } from "./compression.ts";
import { encodeEnvelope, FLAG_GRPC_WEB_TRAILERS } from "./envelope.ts";
import { runMethod } from "./service.ts";

export interface GrpcMode {
  web: boolean;
  /** gRPC-Web text: request and response bodies are base64. */
  text: boolean;
  codec: Codec;
  /** The content type answered (the request's, normalised). */
  contentType: string;
}

/** The gRPC mode a content type names, or undefined when it is not a gRPC content type. */
export function grpcModeOf(media: string): GrpcMode | undefined {
  for (const [prefix, web, text] of [
    ["application/grpc-web-text", true, true],
    ["application/grpc-web", true, false],
    ["application/grpc", false, false],
  ] as const) {
    if (media !== prefix && !media.startsWith(`${prefix}+`)) continue;
    const codec = codecByName(media === prefix ? "" : media.slice(prefix.length + 1));
    return codec === undefined ? undefined : { web, text, codec, contentType: media };
  }
  return undefined;
}

const utf8 = new TextEncoder();

export async function serveGrpc(call: Call, mode: GrpcMode): Promise<CallOutcome> {
  const headers = { "content-type": mode.contentType, "grpc-accept-encoding": ACCEPTED_ENCODINGS };
  if (call.refusal) return trailersOnly(call, headers, call.refusal);
  if (!mode.web && !call.ex.supportsTrailers) {
    return trailersOnly(
      call,
      headers,
      new ConnectError(
        "unimplemented",
        "gRPC needs HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2); over HTTP/1.1 use gRPC-Web or Connect",
      ),
    );
  }
  let started = false;
  const write = async (frame: Uint8Array) => {
    if (!started) {
      started = true;
      call.ex.respond(200, headers, { trailers: !mode.web });
    }
    await call.ex.write(mode.text ? utf8.encode(Buffer.from(frame).toString("base64")) : frame);
  };
  let error: ConnectError | undefined;
  try {
    const deadlineMs = grpcDeadline(call.ex.headers.get("grpc-timeout"));
    const encoding = call.ex.headers.get("grpc-encoding");
    checkEncoding(encoding, "grpc-encoding");
    const what = `${call.service.name}/${call.methodName}`;
    const chunks = mode.text ? base64Chunks(call.body) : call.body;
    const requests = envelopedRequests(call, chunks, { codec: mode.codec, encoding, what });
    const protocol = mode.web ? "grpc-web" : "grpc";
    for await (const result of runMethod(call.method, requests, callContext(call, protocol, deadlineMs))) {
      await write(encodeEnvelope(0, encodeResponse(call.method, mode.codec, result)));
    }
  } catch (e) {
    error = toConnectError(e, call.unexpected);
  }
  if (!started) return trailersOnly(call, headers, error);
  const status = statusTrailers(error);
  if (mode.web) {
    const block = Object.entries(status)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    await write(encodeEnvelope(FLAG_GRPC_WEB_TRAILERS, utf8.encode(block)));
    call.ex.end();
  } else {
    call.ex.end(status);
  }
  return error?.code ?? "ok";
}

/** The whole answer in one header block: no message was sent. */
function trailersOnly(call: Call, headers: Record<string, string>, error: ConnectError | undefined) {
  call.ex.respond(200, { ...headers, ...statusTrailers(error) }, { endStream: true });
  call.ex.end();
  return error?.code ?? "ok";
}

function statusTrailers(error: ConnectError | undefined): Record<string, string> {
  if (!error) return { "grpc-status": "0" };
  return { "grpc-status": String(grpcStatusOf(error.code)), "grpc-message": percentEncode(error.message) };
}

/**
 * grpc-message encoding: printable ASCII except "%" as is, every other UTF-8 byte as %XX
 * (the gRPC over HTTP/2 specification, "Responses").
 */
export function percentEncode(message: string): string {
  let out = "";
  for (const byte of utf8.encode(message)) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Whole base64 groups of four characters, any of them padded. */
const BASE64_GROUPS = /^(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)*$/;

/** Base64 text decoded as it arrives, in groups of four characters (padding may end any group). */
async function* base64Chunks(chunks: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  let pending = "";
  const decoder = new TextDecoder();
  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true }).replace(/\s+/g, "");
    const usable = pending.length - (pending.length % 4);
    if (usable === 0) continue;
    const text = pending.slice(0, usable);
    pending = pending.slice(usable);
    if (!BASE64_GROUPS.test(text)) {
      throw new ConnectError("invalid_argument", "application/grpc-web-text body is not base64");
    }
    yield decodeGroups(text);
  }
  if (pending.length > 0) {
    throw new ConnectError("invalid_argument", "application/grpc-web-text body ends inside a base64 group");
  }
}

/** Decodes base64 made of padded segments (each frame may be encoded on its own). */
function decodeGroups(text: string): Uint8Array {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i += 4) {
    if (text[i + 3] === "=") {
      parts.push(Buffer.from(text.slice(start, i + 4), "base64"));
      start = i + 4;
    }
  }
  if (start < text.length) parts.push(Buffer.from(text.slice(start), "base64"));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
