import type { Env } from "../env.ts";
import { ConnectError, neverSent } from "./errors.ts";
import type { ForwardTls, NodeHostLike } from "./types.ts";

/** Header marking a forwarded request; a request carrying it is never forwarded again (no loops). */
export const FORWARDED_HEADER = "x-longboat-forwarded";

/** Extra time a forwarded request gets beyond its own timeoutMs before this host gives up on it. */
export const FORWARD_GRACE_MS = 1000;

export interface ForwardTarget {
  shardId: number;
  leaderReplicaId: number;
  apiAddress: string;
}

export interface ForwardRequest {
  path: string;
  body: Uint8Array;
  contentType: string;
  authorization: string | null;
  timeoutMs: number;
}

type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/**
 * Finds the leader's NodeHost for a shard and relays requests to it. Knows this NodeHost's
 * replica id per shard from a cache rebuilt from getNodeHostInfo() whenever a shard is missing
 * from it (so its size is bounded by the number of shards on this NodeHost).
 */
export class Forwarder {
  private replicaIds = new Map<number, number>();

  constructor(
    private readonly nodehost: NodeHostLike,
    private readonly resolveApiAddress: (shardId: number, replicaId: number) => string | undefined,
    private readonly fetchFn: FetchLike,
    private readonly env: Pick<Env, "setTimer">,
    private readonly tls?: ForwardTls,
  ) {}

  /** The leader's API address when another replica is known to lead shardId; otherwise undefined. */
  leaderElsewhere(shardId: number): ForwardTarget | undefined {
    let leader: { leaderId: number; valid: boolean };
    try {
      leader = this.nodehost.getLeaderId(shardId);
    } catch {
      return undefined; // the local call reports the problem (unknown shard, closed…)
    }
    if (!leader.valid || leader.leaderId === 0) return undefined;
    const own = this.ownReplicaId(shardId);
    if (own === undefined || own === leader.leaderId) return undefined;
    const apiAddress = this.resolveApiAddress(shardId, leader.leaderId);
    if (!apiAddress) return undefined;
    return { shardId, leaderReplicaId: leader.leaderId, apiAddress };
  }

  /** Sends the request to the leader's NodeHost and returns its answer as it came. */
  async send(target: ForwardTarget, req: ForwardRequest): Promise<Response> {
    const headers: Record<string, string> = { "content-type": req.contentType, [FORWARDED_HEADER]: "1" };
    if (req.authorization) headers.authorization = req.authorization;
    const abort = new AbortController();
    const timer = this.env.setTimer(req.timeoutMs + FORWARD_GRACE_MS, () => abort.abort());
    const url = `${this.tls ? "https" : "http"}://${target.apiAddress}${req.path}`;
    const init: RequestInit & { tls?: ForwardTls } = {
      method: "POST",
      headers,
      body: req.body,
      signal: abort.signal,
    };
    if (this.tls) init.tls = this.tls;
    try {
      const res = await this.fetchFn(url, init);
      const body = new Uint8Array(await res.arrayBuffer());
      return new Response(body, {
        status: res.status,
        headers: { "content-type": res.headers.get("content-type") ?? "application/json" },
      });
    } catch (error) {
      const where = `forwarding to leader replica ${target.leaderReplicaId} of shard ${target.shardId} at ${target.apiAddress}`;
      if (abort.signal.aborted) {
        throw new ConnectError(
          "deadline_exceeded",
          `${where}: no answer within ${req.timeoutMs + FORWARD_GRACE_MS} ms (the request may or may not have been applied)`,
        );
      }
      // Only a request that certainly never left is "not applied"; a connection lost after
      // sending may have delivered it.
      if (neverSent(error))
        throw new ConnectError("unavailable", `${where} failed, not applied: ${String(error)}`);
      throw new ConnectError(
        "unknown",
        `${where} failed (the request may or may not have been applied): ${String(error)}`,
      );
    } finally {
      timer.cancel();
    }
  }

  /** Drops the cached replica id of shardId (call when the shard turned out missing). */
  forget(shardId: number): void {
    this.replicaIds.delete(shardId);
  }

  private ownReplicaId(shardId: number): number | undefined {
    const cached = this.replicaIds.get(shardId);
    if (cached !== undefined) return cached;
    const fresh = new Map<number, number>();
    for (const s of this.nodehost.getNodeHostInfo({ skipLogInfo: true }).shards)
      fresh.set(s.shardId, s.replicaId);
    this.replicaIds = fresh;
    return fresh.get(shardId);
  }
}
