/**
 * The Drummer API as a Hono app: Connect protocol unary calls at
 * `POST /longboat.drummer.v1.DrummerService/<Method>` (application/json or application/proto),
 * `GET /healthz` and `GET /metrics`. Served with src/api/server.ts like the NodeHost API.
 *
 * ```ts
 * const server = serveApi(createDrummerApi({ service, metrics }), { hostname: "0.0.0.0", port: 9001 });
 * ```
 */
import { Hono } from "hono";
import { codecOf, decodeMessage, encodeMessage, errorResponse, readBody } from "../../api/connect.ts";
import { ConnectError, toConnectError } from "../../api/errors.ts";
import { DRUMMER_FORWARDED_HEADER } from "../client.ts";
import type { DrummerMetrics } from "../metrics.ts";
import type { DrummerService } from "../service.ts";
import { DRUMMER_METHOD_TYPES, DRUMMER_SERVICE } from "./methods.ts";
import { type DrummerMethod, DrummerSchemas, isDrummerMethod } from "./schemas.ts";

/** A report of 100,000 replicas is about 10 MiB in JSON. */
export const DRUMMER_MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface DrummerApiOptions {
  service: DrummerService;
  metrics: DrummerMetrics;
  log?: (event: Record<string, unknown>) => void;
  maxBodyBytes?: number;
}

export function createDrummerApi(opts: DrummerApiOptions): Hono {
  const log = opts.log ?? (() => {});
  const maxBodyBytes = opts.maxBodyBytes ?? DRUMMER_MAX_BODY_BYTES;
  const logUnexpected = (where: string) => (error: unknown) =>
    log({
      level: "error",
      event: "drummer-api-internal-error",
      where,
      error: String(error),
      stack: (error as Error)?.stack,
    });
  const app = new Hono();
  app.get("/healthz", (c) => c.text("ok\n"));
  app.get("/metrics", (c) =>
    c.body(opts.metrics.registry.expose(), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    }),
  );
  app.post(`/${DRUMMER_SERVICE}/:method`, async (c) => {
    const name = c.req.param("method");
    try {
      if (!isDrummerMethod(name)) {
        throw new ConnectError(
          "unimplemented",
          `${DRUMMER_SERVICE}/${name} is not a method of ${DRUMMER_SERVICE}`,
          404,
        );
      }
      return await call(opts.service, name, c.req.raw, maxBodyBytes);
    } catch (error) {
      return errorResponse(toConnectError(error, logUnexpected(name)));
    }
  });
  app.all(`/${DRUMMER_SERVICE}/:method`, (c) =>
    errorResponse(
      new ConnectError("unimplemented", `${c.req.method} is not supported on ${c.req.path}; use POST`, 405),
      {
        allow: "POST",
      },
    ),
  );
  app.notFound((c) =>
    errorResponse(new ConnectError("unimplemented", `no such path ${c.req.method} ${c.req.path}`, 404)),
  );
  app.onError((error, c) => errorResponse(toConnectError(error, logUnexpected(c.req.path))));
  return app;
}

async function call(
  service: DrummerService,
  method: DrummerMethod,
  raw: Request,
  maxBodyBytes: number,
): Promise<Response> {
  const codec = codecOf(raw.headers.get("content-type"));
  const body = await readBody(raw, maxBodyBytes);
  const types = DRUMMER_METHOD_TYPES[method];
  const req = decodeMessage(types.request, DrummerSchemas[method], `${method}Request`, codec, body);
  const forwarded = raw.headers.get(DRUMMER_FORWARDED_HEADER) !== null;
  const result = await service.handle(method, req, { forwarded });
  return encodeMessage(types.response, codec, result);
}
