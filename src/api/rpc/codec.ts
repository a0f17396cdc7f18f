/**
 * Message codecs: binary protobuf ("proto") and the proto3 JSON mapping ("json"). A request
 * is decoded into a plain object and checked by the method's parse (zod in the NodeHost
 * API); a response object is encoded through its generated message class.
 */
import { ConnectError } from "../errors.ts";
import { normalizeKeys } from "../schemas.ts";
import { type Method, messageName } from "./service.ts";

export type Codec = "proto" | "json";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const toUtf8 = new TextEncoder();

/** The codec named by the part of a content type after "application/", "application/grpc+" etc. */
export function codecByName(name: string): Codec | undefined {
  if (name === "proto" || name === "") return "proto";
  if (name === "json" || name === "json; charset=utf-8") return "json";
  return undefined;
}

/** Decodes one request message and checks it with the method's parse. */
export function decodeRequest(method: Method, codec: Codec, bytes: Uint8Array): unknown {
  const name = messageName(method.input);
  const short = name.slice(name.lastIndexOf(".") + 1);
  let input: unknown;
  if (codec === "json") {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new ConnectError("invalid_argument", `${short}: the JSON body is not valid UTF-8`);
    }
    try {
      input = normalizeKeys(text.trim() === "" ? {} : JSON.parse(text));
    } catch (error) {
      throw new ConnectError("invalid_argument", `malformed JSON in ${short}: ${(error as Error).message}`);
    }
    if (!method.parse) input = fromJsonObject(method, input, short);
  } else {
    try {
      input = method.input.toObject(method.input.decode(bytes), { defaults: true });
    } catch (error) {
      throw new ConnectError(
        "invalid_argument",
        `malformed application/proto ${short}: ${(error as Error).message}`,
      );
    }
  }
  return method.parse ? method.parse(input, short) : input;
}

/** A JSON object through the message class (for methods without their own parse). */
function fromJsonObject(method: Method, input: unknown, short: string): unknown {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new ConnectError("invalid_argument", `${short}: expected a JSON object`);
  }
  try {
    const message = method.input.fromObject(input as Record<string, unknown>);
    return method.input.toObject(message, { defaults: true });
  } catch (error) {
    throw new ConnectError("invalid_argument", `${short}: ${(error as Error).message}`);
  }
}

/** Encodes one response object of the method. */
export function encodeResponse(method: Method, codec: Codec, result: object): Uint8Array {
  const type = method.output;
  const message = type.fromObject(result as Record<string, unknown>);
  if (codec === "proto") return type.encode(message).finish();
  const json = type.toObject(message, { longs: String, bytes: String, enums: String, defaults: true });
  return toUtf8.encode(JSON.stringify(json));
}
