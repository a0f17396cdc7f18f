import { setDefaultTimeout } from "bun:test";
import { realEnv } from "../../src/env.ts";
import { Http2Transport } from "../../src/transport/http2.ts";
import { localAddress, waitFor } from "./helpers.ts";
import { PROCESS_TEST_WALL_MS } from "../support/limits.ts";
import { type Harness, transportConformance } from "./transport.case.ts";

setDefaultTimeout(PROCESS_TEST_WALL_MS);

export function http2Harness(): Harness {
  return {
    create(o) {
      const { registry, deploymentId, address, snapshotDir, ...rest } = o;
      return new Http2Transport({
        ...rest,
        address: address ?? localAddress(),
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
