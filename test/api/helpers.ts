import { expect } from "bun:test";
import { SERVICE } from "../../src/api/app.ts";

/** An API that answers in process (createNodeHostApi's RpcHandler). */
export interface InProcessApi {
  request(path: string, init?: RequestInit): Promise<Response>;
}

export const path = (method: string) => `/${SERVICE}/${method}`;

/** POSTs a JSON body (an object, or a raw string for malformed input) to a method. */
export function postJson(
  app: InProcessApi,
  method: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  return app.request(path(method), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

export function postProto(
  app: InProcessApi,
  method: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
) {
  return app.request(path(method), {
    method: "POST",
    headers: { "content-type": "application/proto", ...headers },
    body,
  });
}

/** The Connect error of a response: HTTP status, code, message. */
export async function connectError(res: Response) {
  expect(res.headers.get("content-type")).toContain("application/json");
  const body = (await res.json()) as { code: string; message: string };
  return { status: res.status, code: body.code, message: body.message };
}

export const b64 = (s: string) => Buffer.from(s).toString("base64");
export const text = (bytes: Uint8Array | string) =>
  typeof bytes === "string" ? Buffer.from(bytes, "base64").toString() : new TextDecoder().decode(bytes);
