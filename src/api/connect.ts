/**
 * The Connect protocol's unary plumbing, shared by every service Longboat serves (the NodeHost
 * API, the Drummer API): content types, bounded body reading, decoding a request message in
 * either codec and checking it with its zod schema, encoding the answer, error responses.
 */
import type { z } from "zod";
import type { PbType } from "./rpc/service.ts";
import { ConnectError, connectErrorBody } from "./errors.ts";
import { describeIssues, normalizeKeys } from "./schemas.ts";

export type Codec = "json" | "proto";

export type { PbType } from "./rpc/service.ts";

export function codecOf(contentType: string | null): Codec {
  const media = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (media === "application/json") return "json";
  if (media === "application/proto") return "proto";
  throw new ConnectError(
    "invalid_argument",
    `content-type "${contentType ?? ""}" is not supported; use application/json or application/proto`,
    415,
  );
}

/** Reads the body, refusing more than maxBytes without reading further. */
export async function readBody(req: Request, maxBytes: number): Promise<Uint8Array> {
  const tooBig = (what: string) =>
    new ConnectError("resource_exhausted", `request body of ${what} exceeds the limit of ${maxBytes} bytes`);
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooBig(`${declared} bytes`);
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let sizeBytes = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    sizeBytes += value.byteLength;
    if (sizeBytes > maxBytes) {
      await reader.cancel();
      throw tooBig(`more than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * Decodes a request message (proto3 JSON or binary) and checks it with its schema; a problem
 * is invalid_argument naming the message and field.
 */
export function decodeMessage<S extends z.ZodType>(
  type: PbType,
  schema: S,
  messageName: string,
  codec: Codec,
  body: Uint8Array,
): z.output<S> {
  let input: unknown;
  if (codec === "json") {
    const text = new TextDecoder().decode(body);
    try {
      input = normalizeKeys(text.trim() === "" ? {} : JSON.parse(text));
    } catch (error) {
      throw new ConnectError(
        "invalid_argument",
        `malformed JSON in ${messageName}: ${(error as Error).message}`,
      );
    }
  } else {
    try {
      input = type.toObject(type.decode(body), { defaults: true });
    } catch (error) {
      throw new ConnectError(
        "invalid_argument",
        `malformed application/proto ${messageName}: ${(error as Error).message}`,
      );
    }
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new ConnectError("invalid_argument", describeIssues(messageName, parsed.error));
  return parsed.data;
}

export function encodeMessage(type: PbType, codec: Codec, result: object): Response {
  const message = type.fromObject(result as Record<string, unknown>);
  if (codec === "proto") {
    return new Response(type.encode(message).finish(), {
      status: 200,
      headers: { "content-type": "application/proto" },
    });
  }
  const json = type.toObject(message, { longs: String, bytes: String, enums: String, defaults: true });
  return new Response(JSON.stringify(json), { status: 200, headers: { "content-type": "application/json" } });
}

export function errorResponse(error: ConnectError, headers: Record<string, string> = {}): Response {
  return new Response(connectErrorBody(error), {
    status: error.httpStatus,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The Connect code of an error response (also one relayed from another host). */
export async function codeOf(response: Response): Promise<string> {
  try {
    const body = (await response.clone().json()) as { code?: unknown };
    return typeof body.code === "string" ? body.code : "unknown";
  } catch {
    return "unknown";
  }
}
