import { resolve } from "node:path";
import { Hono } from "hono";
import { realEnv } from "../env.ts";
import { longboat } from "../pb/longboat.js";
import { ConnectError, connectErrorBody, isConnectCode, longboatCode } from "./errors.ts";
import { exportSnapshotMethod } from "./export.ts";
import { FORWARDED_HEADER, Forwarder, type ForwardTarget } from "./forward.ts";
import { FORWARDABLE, HANDLERS, type HandlerContext, METHOD_TYPES, shardOfRequest } from "./methods.ts";
import { SERVICE } from "./method-types.ts";

export { SERVICE } from "./method-types.ts";
import { NodeHostMetrics } from "./nodehost-metrics.ts";
import { DASHBOARD_PATHS, mountDashboard } from "../ui/routes.tsx";
import { RpcHandler } from "./rpc/router.ts";
import {
  type CallContext,
  defineService,
  type Method,
  type ServiceDef,
  serverStreaming,
  unary,
} from "./rpc/service.ts";
import { describeIssues, type MethodName, type RequestOf, RequestSchemas } from "./schemas.ts";
import type { NodeHostApiOptions } from "./types.ts";
import { parseWatchRequest, type WatchRequest, watchEvents } from "./watch.ts";

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * The NodeHost API: NodeHostService in Connect, gRPC and gRPC-Web (src/api/rpc), gRPC server
 * reflection, and `GET /healthz` (process up), `GET /readyz` (every hosted shard has a
 * leader) — both open — and `GET /metrics` (Prometheus text; the metrics token or the API
 * token when either is set).
 *
 * ```ts
 * const api = createNodeHostApi({ nodehost, apiToken: "s3cret", resolveApiAddress: (s, r) => apiOf[r] });
 * const server = await serveApi(api, { hostname: "127.0.0.1", port: 8001 });
 * const res = await api.request("/healthz"); // in process, no socket
 * ```
 */
export function createNodeHostApi(opts: NodeHostApiOptions): RpcHandler {
  const env = opts.env ?? realEnv();
  const log = opts.log ?? (() => {});
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(defaultTimeoutMs) || defaultTimeoutMs < 1) {
    throw new Error(`defaultTimeoutMs must be a positive integer, got ${defaultTimeoutMs}`);
  }
  if (opts.apiToken === "") throw new Error("apiToken must not be empty when given");
  if (opts.metricsToken === "") throw new Error("metricsToken must not be empty when given");
  const metrics = opts.metrics ?? new NodeHostMetrics();
  if (!opts.metrics) metrics.watchNodeHost(opts.nodehost);
  // The dashboard's page calls this handler in process (the same API, auth and limits as cmd).
  const self = (request: Request) => handler.fetch(request);
  const handler: RpcHandler = new RpcHandler({
    services: [nodeHostService(opts, metrics, defaultTimeoutMs)],
    routes: nodeHostRoutes(opts, metrics, self).fetch,
    auth: {
      openPaths: ["/healthz", "/readyz", ...DASHBOARD_PATHS],
      ...(opts.apiToken === undefined ? {} : { token: opts.apiToken }),
      ...(opts.metricsToken === undefined ? {} : { pathTokens: { "/metrics": opts.metricsToken } }),
    },
    limits: {
      ...opts.limits,
      maxBodyBytes: opts.maxBodyBytes ?? opts.limits?.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    },
    env,
    log,
    observer: {
      call: (labels, latencyMs) => metrics.observeApiRequest(labels.method, labels.code, latencyMs),
      authFailure: (reason) => metrics.apiAuthFailures.inc({ reason }),
      refused: (reason) => metrics.apiRefused.inc({ reason }),
    },
  });
  return handler;
}

/** /healthz, /readyz, /metrics and the dashboard (`GET /`). */
function nodeHostRoutes(
  opts: NodeHostApiOptions,
  metrics: NodeHostMetrics,
  self: (request: Request) => Promise<Response>,
): Hono {
  const app = new Hono();
  mountDashboard(app, {
    kind: "nodehost",
    title: () => `Longboat NodeHost ${opts.nodehost.getNodeHostInfo({ skipLogInfo: true }).raftAddress}`,
    tokenRequired: opts.apiToken !== undefined,
    api: self,
    ...(opts.dashboardRefreshSeconds === undefined ? {} : { refreshSeconds: opts.dashboardRefreshSeconds }),
  });
  app.get("/healthz", (c) => c.text("ok\n"));
  app.get("/readyz", (c) => {
    const shards = opts.nodehost.getNodeHostInfo({ skipLogInfo: true }).shards;
    const leaderless = shards.filter((s) => !(s.leaderId > 0)).map((s) => s.shardId);
    if (leaderless.length === 0) return c.text("ok\n");
    return c.json({ ready: false, shardsWithoutLeader: leaderless }, 503);
  });
  app.get("/metrics", (c) =>
    c.body(metrics.registry.expose(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );
  app.notFound((c) =>
    c.body(
      connectErrorBody(new ConnectError("unimplemented", `no such path ${c.req.method} ${c.req.path}`)),
      404,
      {
        "content-type": "application/json",
      },
    ),
  );
  return app;
}

/** NodeHostService: every method of methods.ts, checked by its zod schema, forwarded to the leader where it must run there. */
function nodeHostService(
  opts: NodeHostApiOptions,
  metrics: NodeHostMetrics,
  defaultTimeoutMs: number,
): ServiceDef {
  const env = opts.env ?? realEnv();
  const forwarder = new Forwarder(
    opts.nodehost,
    opts.resolveApiAddress ?? (() => undefined),
    opts.forward ?? ((url, init) => fetch(url, init)),
    env,
    opts.forwardTls,
  );
  const exportDir = opts.snapshotExportDir === undefined ? undefined : resolve(opts.snapshotExportDir);
  const contextOf = (call: CallContext): HandlerContext => ({
    nodehost: opts.nodehost,
    timeoutMs: (requested) => (requested > 0 ? requested : (call.deadlineMs ?? defaultTimeoutMs)),
    apiAddress: opts.apiAddress ?? "",
    region: opts.region ?? "",
    ...(exportDir === undefined ? {} : { snapshotExportDir: exportDir }),
  });
  const forwardTo = async (method: MethodName, target: ForwardTarget, req: unknown, call: CallContext) => {
    const ctx = contextOf(call);
    const types = METHOD_TYPES[method];
    try {
      const res = await forwarder.send(target, {
        path: `/${SERVICE}/${method}`,
        body: types.request.encode(types.request.fromObject(req as Record<string, unknown>)).finish(),
        contentType: "application/proto",
        authorization: call.headers.get("authorization"),
        timeoutMs: ctx.timeoutMs((req as { timeoutMs?: number }).timeoutMs ?? 0),
      });
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200) throw relayedError(res.status, bytes, target);
      metrics.apiForwarded.inc({ method, result: "ok" });
      return types.response.toObject(types.response.decode(bytes), { defaults: true });
    } catch (error) {
      metrics.apiForwarded.inc({ method, result: "error" });
      throw error;
    }
  };
  const methodOf = <M extends MethodName>(method: M) =>
    unary<RequestOf<M>>(
      METHOD_TYPES[method].request,
      METHOD_TYPES[method].response,
      async (req, call) => {
        const forwardable = FORWARDABLE.has(method) && call.headers.get(FORWARDED_HEADER) === null;
        const shardId = shardOfRequest(method, req);
        const elsewhere = forwardable ? forwarder.leaderElsewhere(shardId) : undefined;
        if (elsewhere) return forwardTo(method, elsewhere, req, call);
        try {
          const handler = HANDLERS[method] as (c: HandlerContext, r: unknown) => Promise<object> | object;
          return await handler(contextOf(call), req);
        } catch (error) {
          const code = longboatCode(error);
          if (code === "shardNotFound") forwarder.forget(shardId);
          const target =
            forwardable && code === "shardNotReady" ? forwarder.leaderElsewhere(shardId) : undefined;
          if (target) return forwardTo(method, target, req, call);
          throw error;
        }
      },
      (input, messageName) => {
        const parsed = RequestSchemas[method].safeParse(input);
        if (!parsed.success)
          throw new ConnectError("invalid_argument", describeIssues(messageName, parsed.error));
        return parsed.data as RequestOf<M>;
      },
    );
  const methods: Record<string, Method> = Object.fromEntries(
    (Object.keys(RequestSchemas) as MethodName[]).map((m) => [m, methodOf(m)]),
  );
  methods.WatchEvents = serverStreaming<WatchRequest>(
    longboat.nodehost.v1.WatchEventsRequest,
    longboat.nodehost.v1.WatchEventsResponse,
    (req, call) => watchEvents(opts.nodehost, req, call.signal, env),
    parseWatchRequest,
  );
  const timeoutMs = (requested: number, call: CallContext) => contextOf(call).timeoutMs(requested);
  methods.ExportSnapshot = exportSnapshotMethod(opts.nodehost, timeoutMs);
  return defineService(SERVICE, methods);
}

/** The error a leader's NodeHost answered, as this host's own answer. */
function relayedError(status: number, bytes: Uint8Array, target: ForwardTarget): ConnectError {
  try {
    const body = JSON.parse(new TextDecoder().decode(bytes)) as { code?: unknown; message?: unknown };
    if (isConnectCode(body.code)) return new ConnectError(body.code, String(body.message ?? ""));
  } catch {
    // not a Connect error body
  }
  return new ConnectError(
    "unavailable",
    `the leader's NodeHost at ${target.apiAddress} answered HTTP ${status} without a Connect error`,
  );
}
