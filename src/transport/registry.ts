import type { Registry } from "./types.ts";

/**
 * Replica → NodeHost address map kept by the engine from membership.
 * @example
 * const r = new MapRegistry();
 * r.add(1, 2, "10.0.0.2:7001");
 * r.resolve(1, 2); // "10.0.0.2:7001"
 */
export class MapRegistry implements Registry {
  private readonly shards = new Map<number, Map<number, string>>();

  add(shardId: number, replicaId: number, address: string): void {
    checkId("shardId", shardId);
    checkId("replicaId", replicaId);
    if (typeof address !== "string" || address.length === 0) {
      throw new TypeError(`address of shard ${shardId} replica ${replicaId} must be a non-empty host:port`);
    }
    let replicas = this.shards.get(shardId);
    if (replicas === undefined) {
      replicas = new Map();
      this.shards.set(shardId, replicas);
    }
    replicas.set(replicaId, address);
  }

  remove(shardId: number, replicaId: number): void {
    const replicas = this.shards.get(shardId);
    if (replicas === undefined) return;
    replicas.delete(replicaId);
    if (replicas.size === 0) this.shards.delete(shardId);
  }

  removeShard(shardId: number): void {
    this.shards.delete(shardId);
  }

  resolve(shardId: number, replicaId: number): string | undefined {
    return this.shards.get(shardId)?.get(replicaId);
  }
}

function checkId(name: string, id: number): void {
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new RangeError(`${name} must be a positive safe integer, got ${id}`);
  }
}
