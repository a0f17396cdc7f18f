import { setDefaultTimeout } from "bun:test";
import { realEnv } from "../../src/env.ts";
import { Http2Transport } from "../../src/transport/http2.ts";
import { type Harness, transportConformance } from "./transport.case.ts";

/** Real-time bound of one `until` wait in the HTTP/2 tests. */
const WAIT_MS_MAX = 10_000;
setDefaultTimeout(30_000);

export async function waitFor(cond: () => boolean, what: string, timeoutMs = WAIT_MS_MAX): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function http2Harness(): Harness {
  return {
    create(o) {
      const { registry, deploymentId, address, snapshotDir, ...rest } = o;
      return new Http2Transport({
        ...rest,
        address: address ?? "127.0.0.1:0",
        deploymentId: deploymentId ?? 1,
        registry,
        env: realEnv(),
        snapshotDir: snapshotDir!,
      });
    },
    until: waitFor,
    async settle() {
      await new Promise((r) => setTimeout(r, 50));
    },
    async close() {},
  };
}

transportConformance("HTTP/2", () => http2Harness());
