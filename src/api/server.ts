import { type Env, realEnv } from "../env.ts";
import { type ApiServer, type ApiTlsMaterial, listen } from "./rpc/listen.ts";
import { RpcHandler } from "./rpc/router.ts";

export type { ApiServer, ApiTlsMaterial } from "./rpc/listen.ts";

/**
 * A plain fetch handler (a Hono app): served as it is, every path through it. Its services get
 * the same socket, limits and TLS, but none of gRPC, gRPC-Web or reflection: define them with
 * src/api/rpc/service.ts to get those.
 */
export interface FetchApp {
  fetch(request: Request): Response | Promise<Response>;
}

/**
 * Serves an API (createNodeHostApi, or any RpcHandler) on one port: Connect, gRPC and
 * gRPC-Web over HTTP/1.1 and HTTP/2 — cleartext (h2c with prior knowledge) or TLS (ALPN h2
 * or http/1.1; with `tls.ca`, clients must present a certificate that CA signed).
 *
 * ```ts
 * const server = await serveApi(createNodeHostApi({ nodehost }), { hostname: "0.0.0.0", port: 8001 });
 * await server.stop();
 * ```
 */
export async function serveApi(
  api: RpcHandler | FetchApp,
  opts: {
    hostname: string;
    port: number;
    tls?: ApiTlsMaterial;
    env?: Pick<Env, "setTimer">;
    log?: (event: Record<string, unknown>) => void;
  },
): Promise<ApiServer> {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error(`API port must be an integer in 0..65535, got ${opts.port}`);
  }
  const handler =
    api instanceof RpcHandler ? api : new RpcHandler({ services: [], routes: api.fetch, reflection: false });
  return listen({
    hostname: opts.hostname,
    port: opts.port,
    handler,
    env: opts.env ?? realEnv(),
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
}
