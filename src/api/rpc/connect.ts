/**
 * The Connect protocol (https://connectrpc.com/docs/protocol): unary calls as a plain POST
 * (application/proto or application/json; errors as an HTTP status and a JSON body) and
 * streaming calls as enveloped messages (application/connect+proto|json) ending with an
 * end-of-stream message that carries the error, if any.
 */
import { type ConnectCode, ConnectError, connectErrorBody, toConnectError } from "../errors.ts";
import {
  type Call,
  type CallOutcome,
  callContext,
  connectDeadline,
  envelopedRequests,
  readWholeBody,
} from "./call.ts";
import { type Codec, codecByName, decodeRequest, encodeResponse } from "./codec.ts";
import { ACCEPTED_ENCODINGS, checkEncoding, decompress } from "./compression.ts";
import { encodeEnvelope, FLAG_CONNECT_END_STREAM } from "./envelope.ts";
import { runMethod } from "./service.ts";

export interface ConnectMode {
  streaming: boolean;
  codec: Codec;
}

/** The Connect mode a content type names, or undefined when it is not a Connect content type. */
export function connectModeOf(media: string): ConnectMode | undefined {
  if (media.startsWith("application/connect+")) {
    const codec = codecByName(media.slice("application/connect+".length));
    return codec === undefined ? undefined : { streaming: true, codec };
  }
  if (media === "application/proto") return { streaming: false, codec: "proto" };
  if (media === "application/json") return { streaming: false, codec: "json" };
  return undefined;
}

const utf8 = new TextEncoder();

export async function serveConnect(call: Call, mode: ConnectMode): Promise<CallOutcome> {
  return mode.streaming ? serveStreaming(call, mode.codec) : serveUnary(call, mode.codec);
}

function checkVersion(call: Call): void {
  const version = call.ex.headers.get("connect-protocol-version");
  if (version !== null && version !== "1") {
    throw new ConnectError("invalid_argument", `connect-protocol-version must be "1", got "${version}"`);
  }
}

async function serveUnary(call: Call, codec: Codec): Promise<CallOutcome> {
  let response: Uint8Array;
  try {
    if (call.refusal) throw call.refusal;
    checkVersion(call);
    const deadlineMs = connectDeadline(call.ex.headers.get("connect-timeout-ms"));
    const encoding = call.ex.headers.get("content-encoding");
    checkEncoding(encoding, "content-encoding");
    const what = `${call.service.name}/${call.methodName}`;
    const raw = decompress(encoding, await readWholeBody(call, what), call.limits.maxBodyBytes);
    const request = decodeRequest(call.method, codec, raw);
    let result: object | undefined;
    for await (const r of runMethod(call.method, one(request), callContext(call, "connect", deadlineMs)))
      result = r;
    response = encodeResponse(call.method, codec, result ?? {});
  } catch (error) {
    const e = toConnectError(error, call.unexpected);
    call.ex.respond(e.httpStatus, {
      "content-type": "application/json",
      "accept-encoding": ACCEPTED_ENCODINGS,
    });
    call.ex.endWith(utf8.encode(connectErrorBody(e)));
    return e.code;
  }
  call.ex.respond(200, { "content-type": `application/${codec}`, "accept-encoding": ACCEPTED_ENCODINGS });
  if (response.byteLength > 0) call.ex.endWith(response);
  else call.ex.end();
  return "ok";
}

async function serveStreaming(call: Call, codec: Codec): Promise<CallOutcome> {
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    call.ex.respond(200, {
      "content-type": `application/connect+${codec}`,
      "connect-accept-encoding": ACCEPTED_ENCODINGS,
    });
  };
  let outcome: ConnectCode | "ok" = "ok";
  let endMessage: Record<string, unknown> = {};
  try {
    if (call.refusal) throw call.refusal;
    checkVersion(call);
    const deadlineMs = connectDeadline(call.ex.headers.get("connect-timeout-ms"));
    const encoding = call.ex.headers.get("connect-content-encoding");
    checkEncoding(encoding, "connect-content-encoding");
    const what = `${call.service.name}/${call.methodName}`;
    const requests = envelopedRequests(call, call.body, {
      codec,
      encoding,
      what,
      endFlag: FLAG_CONNECT_END_STREAM,
    });
    for await (const result of runMethod(call.method, requests, callContext(call, "connect", deadlineMs))) {
      start();
      await call.ex.write(encodeEnvelope(0, encodeResponse(call.method, codec, result)));
    }
  } catch (error) {
    const e = toConnectError(error, call.unexpected);
    outcome = e.code;
    endMessage = { error: { code: e.code, message: e.message } };
  }
  start();
  await call.ex.write(encodeEnvelope(FLAG_CONNECT_END_STREAM, utf8.encode(JSON.stringify(endMessage))));
  call.ex.end();
  return outcome;
}

async function* one<T>(value: T): AsyncIterable<T> {
  yield value;
}
