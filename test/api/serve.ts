// Serving an API in a test: on a port from the shared allocator (test/support/ports.ts: below
// 32768, reserved across test processes), retried when the port is taken.
import { type ApiServer, type ApiTlsMaterial, serveApi } from "../../src/api/server.ts";
import type { RpcHandler } from "../../src/api/rpc/router.ts";
import { withFreePort } from "../support/ports.ts";
import { track } from "../support/resources.ts";

/** Serves handler on a port from the test allocator; the server is stopped when its test (or file) ends. */
export async function serveOnTestPort(
  handler: RpcHandler,
  opts: { tls?: ApiTlsMaterial; log?: (e: Record<string, unknown>) => void } = {},
): Promise<ApiServer> {
  const server = await withFreePort((port) => serveApi(handler, { hostname: "127.0.0.1", port, ...opts }));
  const stop = server.stop.bind(server);
  const tracked = track(`API server on ${server.port}`, () => stop());
  server.stop = (graceMs?: number) => {
    tracked.release(); // stopped by the test itself: once is enough
    return stop(graceMs);
  };
  return server;
}
