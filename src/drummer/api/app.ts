/**
 * The Drummer API: DrummerService in Connect, gRPC and gRPC-Web (the RPC layer of src/api/rpc,
 * with gRPC server reflection), plus `GET /healthz` and `GET /metrics` (Prometheus text).
 * Served with src/api/server.ts like the NodeHost API.
 *
 * ```ts
 * const api = createDrummerApi({ service, metrics });
 * const server = await serveApi(api, { hostname: "0.0.0.0", port: 9001 });
 * const res = await api.request("/healthz"); // in process, no socket
 * ```
 */
import { Hono } from "hono";
import { ConnectError, connectErrorBody } from "../../api/errors.ts";
import { describeIssues } from "../../api/schemas.ts";
import { RpcHandler } from "../../api/rpc/router.ts";
import { defineService, type ServiceDef, unary } from "../../api/rpc/service.ts";
import { type Env, realEnv } from "../../env.ts";
import { DASHBOARD_PATHS, mountDashboard } from "../../ui/routes.tsx";
import { DRUMMER_FORWARDED_HEADER } from "../client.ts";
import type { DrummerMetrics } from "../metrics.ts";
import type { DrummerService } from "../service.ts";
import { DRUMMER_METHOD_TYPES, DRUMMER_SERVICE } from "./methods.ts";
import { parseReport } from "./report-parse.ts";
import { type DrummerMethod, type DrummerRequest, DrummerSchemas } from "./schemas.ts";

/** A report of 100,000 replicas is about 10 MiB in JSON. */
export const DRUMMER_MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface DrummerApiOptions {
  service: DrummerService;
  metrics: DrummerMetrics;
  /** Clock for the server's timeouts (the simulator's virtual one). Default realEnv(). */
  env?: Pick<Env, "nowMs" | "setTimer">;
  log?: (event: Record<string, unknown>) => void;
  maxBodyBytes?: number;
  /** Bearer token every call needs except /healthz (`longboat drummer --api-token`). */
  token?: string;
  /** Token of GET /metrics alone; the API token works there too. */
  metricsToken?: string;
  /** Seconds between the dashboard's refreshes (`GET /`). Default 2. */
  dashboardRefreshSeconds?: number;
}

export function createDrummerApi(opts: DrummerApiOptions): RpcHandler {
  // The dashboard's page calls this handler in process (the same API as cmd).
  const self = (request: Request) => handler.fetch(request);
  const handler: RpcHandler = new RpcHandler({
    services: [drummerService(opts.service)],
    routes: drummerRoutes(opts, self).fetch,
    limits: { maxBodyBytes: opts.maxBodyBytes ?? DRUMMER_MAX_BODY_BYTES },
    auth: {
      openPaths: ["/healthz", "/readyz", ...DASHBOARD_PATHS],
      ...(opts.token === undefined ? {} : { token: opts.token }),
      ...(opts.metricsToken === undefined ? {} : { pathTokens: { "/metrics": opts.metricsToken } }),
    },
    env: opts.env ?? realEnv(),
    log: opts.log ?? (() => {}),
    observer: {
      call: (labels, latencyMs) => opts.metrics.observeApiRequest(labels.method, labels.code, latencyMs),
    },
  });
  return handler;
}

function drummerService(service: DrummerService): ServiceDef {
  const methodOf = <M extends DrummerMethod>(method: M) =>
    unary<DrummerRequest<M>>(
      DRUMMER_METHOD_TYPES[method].request,
      DRUMMER_METHOD_TYPES[method].response,
      (req, call) =>
        service.handle(method, req, { forwarded: call.headers.get(DRUMMER_FORWARDED_HEADER) !== null }),
      method === "Report"
        ? (parseReport as unknown as (input: unknown, messageName: string) => DrummerRequest<M>)
        : (input, messageName) => {
            const parsed = DrummerSchemas[method].safeParse(input);
            if (!parsed.success)
              throw new ConnectError("invalid_argument", describeIssues(messageName, parsed.error));
            return parsed.data as DrummerRequest<M>;
          },
    );
  const methods = Object.fromEntries(
    (Object.keys(DrummerSchemas) as DrummerMethod[]).map((m) => [m, methodOf(m)]),
  );
  return defineService(DRUMMER_SERVICE, methods);
}

/** /healthz, /metrics and the dashboard (`GET /`). */
function drummerRoutes(opts: DrummerApiOptions, self: (request: Request) => Promise<Response>): Hono {
  const metrics = opts.metrics;
  const app = new Hono();
  mountDashboard(app, {
    kind: "deployment",
    title: "Longboat deployment",
    tokenRequired: opts.token !== undefined,
    api: self,
    ...(opts.dashboardRefreshSeconds === undefined ? {} : { refreshSeconds: opts.dashboardRefreshSeconds }),
  });
  app.get("/healthz", (c) => c.text("ok\n"));
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
