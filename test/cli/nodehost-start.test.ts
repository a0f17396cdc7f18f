import { describe, expect, test } from "bun:test";
import type { ShardSpec } from "../../src/cli/specs.ts";
import { startConfiguredReplicas } from "../../src/cli/commands/nodehost.ts";
import { builtinApps } from "../../src/statemachine/registry.ts";

const spec = (shardId: number): ShardSpec => ({
  shardId,
  app: "kv",
  replicaId: 1,
  members: [{ replicaId: 1, address: "127.0.0.1:7001" }],
});

describe("longboat nodehost: the configured replicas", () => {
  test("are started together (every startReplica is called before the first resolves), so their bootstrap records share one write", async () => {
    let inFlight = 0;
    let most = 0;
    const calls: number[] = [];
    const nh = {
      startReplica: async (_m: unknown, _j: boolean, _c: unknown, config: { shardId: number }) => {
        calls.push(config.shardId);
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
      },
    };
    await startConfiguredReplicas(nh as never, [1, 2, 3, 4, 5].map(spec), builtinApps());
    expect(calls).toEqual([1, 2, 3, 4, 5]);
    expect(most).toBe(5);
  });

  test("a failure is thrown after every start has settled, the first in configuration order", async () => {
    const settled: number[] = [];
    const nh = {
      startReplica: async (_m: unknown, _j: boolean, _c: unknown, config: { shardId: number }) => {
        // Shard 3 fails late, shard 2 early: the error of shard 2 (first configured) is thrown.
        await new Promise((r) => setTimeout(r, config.shardId === 3 ? 1 : 10));
        settled.push(config.shardId);
        if (config.shardId === 2 || config.shardId === 3) throw new Error(`shard ${config.shardId} refused`);
      },
    };
    await expect(startConfiguredReplicas(nh as never, [1, 2, 3, 4].map(spec), builtinApps())).rejects.toThrow(
      "shard 2 refused",
    );
    expect(settled.sort()).toEqual([1, 2, 3, 4]);
  });
});
