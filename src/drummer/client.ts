/**
 * A client of the Drummer API (Connect protocol, application/proto): what NodeHosts report
 * with, what drummers forward with, and what `longboat cmd` uses. The transport is a
 * fetch-like function, so the simulator can route calls to in-process drummers.
 */
import { CERTIFICATE_CODES, type ClientTls } from "../api/client.ts";
import { isConnectCode } from "../api/errors.ts";
import type { FetchLike } from "../api/types.ts";
import { type Env, realEnv } from "../env.ts";
import { DRUMMER_METHOD_TYPES, DRUMMER_SERVICE } from "./api/methods.ts";
import type { DrummerMethod } from "./api/schemas.ts";

/** Header marking a call one drummer forwarded to another; a forwarded call is never forwarded again. */
export const DRUMMER_FORWARDED_HEADER = "x-longboat-drummer-forwarded";

/** A Drummer API error (or a failure to reach a drummer): Connect code, message, address. */
export class DrummerCallError extends Error {
  override readonly name = "DrummerCallError";
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly address: string,
  ) {
    super(`drummer ${address}: ${code}: ${detail}`);
  }
}

export interface CallOptions {
  timeoutMs: number;
  /** Marks the call as forwarded by a drummer (the callee will not forward it again). */
  forwarded?: boolean;
}

export type DrummerCall = (
  address: string,
  method: DrummerMethod,
  request: Record<string, unknown>,
  opts: CallOptions,
) => Promise<Record<string, unknown>>;

/** How calls prove who they are to drummers whose API has a token or TLS (`longboat drummer --api-token`, `--api-tls-*`). */
export interface DrummerSecurity {
  /** Bearer token the drummers' API requires (their --api-token). */
  token?: string;
  /** Speak https with these settings (the CA that signed the drummers' certificates, a client certificate); plain http when absent. */
  tls?: ClientTls;
}

/**
 * Returns a function calling one Drummer API method on one drummer; the answer is the response
 * message as a plain object with every field present (numbers for uint64 and enums).
 * @example const call = drummerCaller(); const r = await call("d1:9001", "GetDeployment", {}, { timeoutMs: 2000 });
 * @example const secure = drummerCaller(undefined, undefined, { token, tls: { ca: readFileSync("ca.pem") } });
 */
export function drummerCaller(
  fetchFn: FetchLike = (url, init) => fetch(url, init),
  env: Pick<Env, "setTimer"> = realEnv(),
  security: DrummerSecurity = {},
): DrummerCall {
  if (security.token === "") throw new Error("the drummer API token must not be empty when given");
  const tls = security.tls;
  const scheme = tls ? "https" : "http";
  const tlsInit =
    tls === undefined
      ? undefined
      : {
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
          rejectUnauthorized: !tls.insecureSkipVerify,
        };
  return async (address, method, request, opts) => {
    const types = DRUMMER_METHOD_TYPES[method];
    const body = types.request.encode(types.request.fromObject(request)).finish();
    const headers: Record<string, string> = {
      "content-type": "application/proto",
      "connect-protocol-version": "1",
    };
    if (opts.forwarded) headers[DRUMMER_FORWARDED_HEADER] = "1";
    if (security.token !== undefined) headers.authorization = `Bearer ${security.token}`;
    const abort = new AbortController();
    const timer = env.setTimer(opts.timeoutMs, () => abort.abort());
    try {
      const init: RequestInit & { tls?: Record<string, unknown> } = {
        method: "POST",
        headers,
        body,
        signal: abort.signal,
      };
      if (tlsInit) init.tls = tlsInit;
      const res = await fetchFn(`${scheme}://${address}/${DRUMMER_SERVICE}/${method}`, init);
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200) throw errorOf(address, res.status, bytes);
      return types.response.toObject(types.response.decode(bytes), { defaults: true, arrays: true });
    } catch (error) {
      if (error instanceof DrummerCallError) throw error;
      const why = abort.signal.aborted
        ? `no answer within ${opts.timeoutMs} ms`
        : connectionProblem(error, tls !== undefined);
      throw new DrummerCallError("unavailable", why, address);
    } finally {
      timer.cancel();
    }
  };
}

function errorOf(address: string, status: number, bytes: Uint8Array): DrummerCallError {
  try {
    const body = JSON.parse(new TextDecoder().decode(bytes)) as { code?: unknown; message?: unknown };
    if (isConnectCode(body.code)) return new DrummerCallError(body.code, String(body.message ?? ""), address);
  } catch {
    // not a Connect error body
  }
  return new DrummerCallError(status >= 500 ? "unavailable" : "unknown", `HTTP ${status}`, address);
}

/** Why a call did not reach a drummer, with what to check for a TLS problem. */
function connectionProblem(error: unknown, https: boolean): string {
  const message = (error as Error)?.message ?? String(error);
  const code = (error as { code?: string })?.code ?? "";
  if (CERTIFICATE_CODES.has(code)) {
    return `the drummer's certificate was refused: ${message} (${code}); check the CA given for the drummers and their --api-tls-cert`;
  }
  if (https && (code === "ECONNRESET" || code === "EPROTO")) {
    return `${message} (over https: the drummer may require a client certificate signed by its --api-tls-ca; or it does not speak TLS)`;
  }
  return message;
}
