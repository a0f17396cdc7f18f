import { ManualEnv } from "../../src/env.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { type Harness, transportConformance } from "./transport.case.ts";

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
