import { createHash, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { realEnv } from "../env.ts";
import {
  type Codec,
  codecOf,
  codeOf,
  decodeMessage,
  encodeMessage,
  errorResponse,
  readBody,
} from "./connect.ts";
import { BackupRegistry } from "./backups.ts";
import { ConnectError, longboatCode, toConnectError } from "./errors.ts";
import { FORWARDED_HEADER, Forwarder } from "./forward.ts";
import {
  FORWARDABLE,
  HANDLERS,
  type HandlerContext,
  isMethodName,
  METHOD_TYPES,
  shardOfRequest,
} from "./methods.ts";
import { NodeHostMetrics } from "./nodehost-metrics.ts";
import { type MethodName, type RequestOf, RequestSchemas } from "./schemas.ts";
import type { NodeHostApiOptions } from "./types.ts";

export const SERVICE = "longboat.nodehost.v1.NodeHostService";
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * The NodeHost API as a Hono app: Connect protocol unary calls at
 * `POST /longboat.nodehost.v1.NodeHostService/<Method>` (application/json or application/proto),
 * `GET /healthz` (never needs the token) and `GET /metrics` (Prometheus text).
 *
 * ```ts
 * const app = createNodeHostApi({ nodehost, apiToken: "s3cret", resolveApiAddress: (s, r) => apiOf[r] });
 * const server = serveApi(app, { hostname: "127.0.0.1", port: 8001 });
 * ```
 */
export function createNodeHostApi(opts: NodeHostApiOptions): Hono {
  const env = opts.env ?? realEnv();
  const log = opts.log ?? (() => {});
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new Error(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  }
  if (!Number.isSafeInteger(defaultTimeoutMs) || defaultTimeoutMs < 1) {
    throw new Error(`defaultTimeoutMs must be a positive integer, got ${defaultTimeoutMs}`);
  }
  if (opts.apiToken !== undefined && opts.apiToken === "")
    throw new Error("apiToken must not be empty when given");
  const metrics = opts.metrics ?? new NodeHostMetrics();
  if (!opts.metrics) metrics.watchNodeHost(opts.nodehost);
  const forwarder = new Forwarder(
    opts.nodehost,
    opts.resolveApiAddress ?? (() => undefined),
    opts.forward ?? ((url, init) => fetch(url, init)),
    env,
  );
  const ctx: HandlerContext = {
    nodehost: opts.nodehost,
    backups: new BackupRegistry(env),
    timeoutMs: (requested) => (requested > 0 ? requested : defaultTimeoutMs),
    apiAddress: opts.apiAddress ?? "",
    region: opts.region ?? "",
  };
  const logUnexpected = (method: string) => (error: unknown) =>
    log({ event: "api.internal_error", method, error: String(error), stack: (error as Error)?.stack });
  const tokenCheck = opts.apiToken === undefined ? undefined : tokenChecker(opts.apiToken);

  const app = new Hono();

  app.get("/healthz", (c) => c.text("ok\n"));

  app.use("*", async (c, next) => {
    if (!tokenCheck) return next();
    const problem = tokenCheck(c.req.header("authorization"));
    if (!problem) return next();
    const error = new ConnectError("unauthenticated", problem);
    metrics.observeApiRequest(methodLabel(c.req.path), error.code, 0);
    return errorResponse(error);
  });

  app.get("/metrics", (c) =>
    c.body(metrics.registry.expose(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );

  app.post(`/${SERVICE}/:method`, async (c) => {
    const startMs = env.nowMs();
    const name = c.req.param("method");
    const label = isMethodName(name) ? name : "unknown";
    let response: Response;
    try {
      if (!isMethodName(name)) {
        throw new ConnectError("unimplemented", `${SERVICE}/${name} is not a method of ${SERVICE}`, 404);
      }
      response = await handleCall(name, c.req.raw);
    } catch (error) {
      response = errorResponse(toConnectError(error, logUnexpected(label)));
    }
    const code = response.status === 200 ? "ok" : await codeOf(response);
    metrics.observeApiRequest(label, code, env.nowMs() - startMs);
    return response;
  });

  app.all(`/${SERVICE}/:method`, (c) =>
    errorResponse(
      new ConnectError("unimplemented", `${c.req.method} is not supported on ${c.req.path}; use POST`, 405),
      { allow: "POST" },
    ),
  );

  app.notFound((c) =>
    errorResponse(new ConnectError("unimplemented", `no such path ${c.req.method} ${c.req.path}`, 404)),
  );
  app.onError((error, c) => errorResponse(toConnectError(error, logUnexpected(c.req.path))));

  async function handleCall(method: MethodName, raw: Request): Promise<Response> {
    const codec = codecOf(raw.headers.get("content-type"));
    const body = await readBody(raw, maxBodyBytes);
    const req = decodeRequest(method, codec, body) as RequestOf<MethodName>;
    const forwardable = FORWARDABLE.has(method) && raw.headers.get(FORWARDED_HEADER) === null;
    const shardId = shardOfRequest(method, req);
    const forwardTo = async (target: NonNullable<ReturnType<Forwarder["leaderElsewhere"]>>) => {
      try {
        const res = await forwarder.send(target, {
          path: `/${SERVICE}/${method}`,
          body,
          contentType: raw.headers.get("content-type") ?? "application/json",
          authorization: raw.headers.get("authorization"),
          timeoutMs: ctx.timeoutMs((req as { timeoutMs?: number }).timeoutMs ?? 0),
        });
        metrics.apiForwarded.inc({ method, result: "ok" });
        return res;
      } catch (error) {
        metrics.apiForwarded.inc({ method, result: "error" });
        throw error;
      }
    };
    if (forwardable) {
      const target = forwarder.leaderElsewhere(shardId);
      if (target) return forwardTo(target);
    }
    try {
      const result = await (HANDLERS[method] as (c: HandlerContext, r: unknown) => Promise<object> | object)(
        ctx,
        req,
      );
      return encodeResponse(method, codec, result);
    } catch (error) {
      const code = longboatCode(error);
      if (code === "shardNotFound") forwarder.forget(shardId);
      if (forwardable && code === "shardNotReady") {
        const target = forwarder.leaderElsewhere(shardId);
        if (target) return forwardTo(target);
      }
      throw error;
    }
  }

  return app;
}

function decodeRequest(method: MethodName, codec: Codec, body: Uint8Array): unknown {
  const messageName = `${method === "StaleRead" ? "StaleRead" : method}Request`;
  return decodeMessage(METHOD_TYPES[method].request, RequestSchemas[method], messageName, codec, body);
}

function encodeResponse(method: MethodName, codec: Codec, result: object): Response {
  return encodeMessage(METHOD_TYPES[method].response, codec, result);
}

function methodLabel(path: string): string {
  const prefix = `/${SERVICE}/`;
  if (!path.startsWith(prefix)) return "other";
  const name = path.slice(prefix.length);
  return isMethodName(name) ? name : "unknown";
}

/** Returns a function giving the problem with an Authorization header, or undefined when it is right. */
function tokenChecker(token: string): (header: string | undefined) => string | undefined {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  const expected = digest(token);
  return (header) => {
    if (!header) return "missing bearer token: send the header Authorization: Bearer <api token>";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) return "Authorization header must be Bearer <api token>";
    if (!timingSafeEqual(digest(match[1]!.trim()), expected)) return "wrong bearer token";
    return undefined;
  };
}
