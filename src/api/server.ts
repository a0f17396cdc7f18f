import type { Hono } from "hono";

export interface ApiServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Serves a Hono app with Bun.serve over HTTP/1.1 (enough for Connect unary calls; HTTP/2 is
 * not needed because no call streams). Bun refuses bodies over its own limit (128 MiB) before
 * the app sees them; the app's smaller limit (default 16 MiB) answers resource_exhausted.
 *
 * ```ts
 * const server = serveApi(createNodeHostApi({ nodehost }), { hostname: "0.0.0.0", port: 8001 });
 * await server.stop();
 * ```
 */
export function serveApi(app: Hono, opts: { hostname: string; port: number }): ApiServer {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error(`API port must be an integer in 0..65535, got ${opts.port}`);
  }
  const server = Bun.serve({ hostname: opts.hostname, port: opts.port, fetch: app.fetch });
  return {
    port: server.port ?? opts.port,
    stop: () => server.stop(true),
  };
}
