/**
 * Opt-in throughput measurement of the core alone (no I/O): LONGBOAT_RAFT_BENCH=1 npx bun test test/raft/bench.test.ts
 * Three replicas on the in-memory network; proposals of 16-byte payloads in batches.
 */
import { expect, test } from "bun:test";
import { entry, Network } from "./network.ts";

const enabled = process.env.LONGBOAT_RAFT_BENCH === "1";

for (const [batches, batchSize] of <[number, number][]>[
  [2000, 100],
  [20_000, 1],
]) {
  test.skipIf(!enabled)(
    `core throughput: 3 replicas, 16-byte proposals in batches of ${batchSize}`,
    () => {
      const net = Network.bootstrap([1, 2, 3]);
      net.recordSent = false;
      net.campaign(1);
      const payload = "0123456789abcdef";
      const t0 = performance.now(); // env-ok: test measurement
      for (let b = 0; b < batches; b++) {
        const ents = [];
        for (let i = 0; i < batchSize; i++) ents.push(entry(payload));
        net.peer(1).propose(ents);
        net.stabilize();
        if (b % 10 === 0) net.tickAll(1);
        for (const n of net.nodes.values()) n.applied.length = 0; // keep memory flat
      }
      const ms = performance.now() - t0; // env-ok: test measurement
      const total = batches * batchSize;
      console.log(
        `batch ${batchSize}: ${total} proposals committed and applied on 3 replicas in ${ms.toFixed(0)} ms: ${Math.round((total / ms) * 1000)} proposals/s`,
      );
      expect(net.raft(3).log.committed).toBeGreaterThan(total);
    },
    120_000,
  );
}
