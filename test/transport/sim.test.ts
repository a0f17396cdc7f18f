import { setDefaultTimeout } from "bun:test";
import { ManualEnv } from "../../src/env.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { PROCESS_TEST_WALL_MS } from "../support/limits.ts";
import { type Harness, transportConformance } from "./transport.case.ts";

// The conformance case "a 50 MiB snapshot arrives intact" has no limit of its own (c48f9d4):
// it writes, checksums and fsyncs 50 MiB on the real disk here too, which took 6.1 s at load 22
// (2026-12-01 22:53) against bun's default of 5 s, with nothing hung. Virtual-time waits stay
// bounded by SIM_STEPS_MAX.
setDefaultTimeout(PROCESS_TEST_WALL_MS);

/** Steps of virtual time `until` takes before giving up (each 5 ms, then a macrotask turn). */
const SIM_STEPS_MAX = 2000;

export function simHarness(seed = 1): Harness & { env: ManualEnv; net: SimNetwork } {
  const env = new ManualEnv(seed);
  const net = new SimNetwork(env);
  let next = 1;
  return {
    env,
    net,
    create(o) {
      const { registry, deploymentId, address, ...rest } = o;
      return net.transport(address ?? `10.0.0.${next++}:7001`, deploymentId ?? 1, registry, rest);
    },
    async until(cond, what) {
      for (let i = 0; i < SIM_STEPS_MAX; i++) {
        await new Promise((r) => setImmediate(r));
        if (cond()) return;
        env.advance(5);
      }
      throw new Error(`timed out after ${SIM_STEPS_MAX * 5} virtual ms waiting for: ${what}`);
    },
    async settle() {
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setImmediate(r));
        env.advance(5);
      }
    },
    async close() {},
  };
}

transportConformance("simulated", () => simHarness());
