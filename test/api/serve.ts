// Serving an API in a test: on a random port below 32768 (the ephemeral range above it may
// hold a stray TIME_WAIT of any program), retried when the port is taken.
import { type ApiServer, type ApiTlsMaterial, serveApi } from "../../src/api/server.ts";
import type { RpcHandler } from "../../src/api/rpc/router.ts";

const PORT_MIN = 20000;
const PORT_MAX = 32767;

export async function serveOnTestPort(
  handler: RpcHandler,
  opts: { tls?: ApiTlsMaterial; log?: (e: Record<string, unknown>) => void } = {},
): Promise<ApiServer> {
  for (let attempt = 0; ; attempt++) {
    const port = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN + 1));
    try {
      return await serveApi(handler, { hostname: "127.0.0.1", port, ...opts });
    } catch (error) {
      if ((error as { code?: string }).code !== "EADDRINUSE" || attempt >= 50) throw error;
    }
  }
}
