import { setDefaultTimeout } from "bun:test";
import { realEnv } from "../../src/env.ts";
import { Http2Transport } from "../../src/transport/http2.ts";
import { waitFor } from "./helpers.ts";
import { type Harness, transportConformance } from "./transport.case.ts";

setDefaultTimeout(30_000);

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
