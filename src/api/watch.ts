/**
 * WatchEvents: the NodeHost's events (docs/leader-hooks.md) as a server-streaming method of
 * NodeHostService (served in Connect, gRPC and gRPC-Web by src/api/rpc): an async generator
 * of response messages that ends when the call's signal aborts.
 */
import { EVENT_KINDS, type EventKind, type NodeHostEvent } from "../engine/events.ts";
import type { Env } from "../env.ts";
import { ConnectError } from "./errors.ts";
import type { NodeHostLike } from "./types.ts";

/** A keepalive message goes out after this long without an event (clients time out at 3×). */
export const KEEPALIVE_MS = 5000;
/** Events that may wait for one stream before it falls behind (eventsDropped). */
export const WATCH_QUEUE_MAX = 4096;

export interface WatchRequest {
  shardId: number;
  kinds: EventKind[];
}

/** Checks a decoded WatchEventsRequest; a bad kind is invalid_argument naming it. */
export function parseWatchRequest(decoded: unknown): WatchRequest {
  const input = (decoded ?? {}) as Record<string, unknown>;
  const shard = Number(input.shardId ?? 0);
  if (!Number.isSafeInteger(shard) || shard < 0) {
    throw new ConnectError(
      "invalid_argument",
      `WatchEventsRequest.shard_id must be a shard id or 0, got ${input.shardId}`,
    );
  }
  const kinds = (Array.isArray(input.kinds) ? input.kinds : []).map(String);
  for (const k of kinds) {
    if (!EVENT_KINDS.includes(k as EventKind) || k === "eventsDropped") {
      const known = EVENT_KINDS.filter((x) => x !== "eventsDropped").join(", ");
      throw new ConnectError(
        "invalid_argument",
        `WatchEventsRequest.kinds: unknown kind "${k}" (one of ${known})`,
      );
    }
  }
  return { shardId: shard, kinds: kinds as EventKind[] };
}

/** An event as a WatchEventsResponse (plain object, fromObject-ready). */
export function toWatchResponse(e: NodeHostEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {
    seq: e.seq,
    kind: e.kind,
    shardId: e.shardId,
    replicaId: e.replicaId,
  };
  switch (e.kind) {
    case "leaderUpdated":
      return { ...out, term: e.term, leaderId: e.leaderId };
    case "roleChanged":
      return { ...out, term: e.term, leaderId: e.leaderId, role: e.role };
    case "membershipChanged":
      return {
        ...out,
        membership: {
          configChangeId: e.configChangeId,
          addresses: e.voting,
          nonVotings: e.nonVoting,
          witnesses: e.witnesses,
          removed: e.removed,
        },
      };
    case "snapshotCreated":
    case "snapshotRecovered":
    case "logCompacted":
      return { ...out, index: e.index };
    case "snapshotReceived":
      return { ...out, index: e.index, fromReplicaId: e.from };
    case "replicaReady":
      return out;
    case "replicaStopped":
      return { ...out, reason: e.reason };
    case "shardUnavailable":
      return { ...out, term: e.term, electionTimeouts: e.electionTimeouts };
    case "shardAvailable":
      return { ...out, term: e.term, leaderId: e.leaderId };
    case "proposalDropped":
    case "readDropped":
    case "eventsDropped":
      return { ...out, count: e.count };
  }
}

/**
 * The WatchEvents handler: yields a keepalive at once (the subscription is in place), then the
 * events this NodeHost publishes (filtered) and a keepalive after KEEPALIVE_MS without one,
 * until signal aborts.
 */
export async function* watchEvents(
  nodehost: NodeHostLike,
  req: WatchRequest,
  signal: AbortSignal,
  env: Pick<Env, "setTimer">,
): AsyncGenerator<Record<string, unknown>> {
  if (!nodehost.subscribe) throw new ConnectError("unimplemented", "this NodeHost does not publish events");
  const queue: NodeHostEvent[] = [];
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const sub = nodehost.subscribe(
    (e) => {
      queue.push(e);
      notify();
    },
    {
      ...(req.kinds.length > 0 ? { kinds: req.kinds } : {}),
      ...(req.shardId > 0 ? { shardId: req.shardId } : {}),
      queueMax: WATCH_QUEUE_MAX,
      name: "watch",
    },
  );
  signal.addEventListener("abort", notify);
  try {
    // First a keepalive: the stream is open and every later event will be in it.
    yield { seq: 0, kind: "keepalive" };
    while (!signal.aborted) {
      if (queue.length === 0) {
        let timedOut = false;
        const timer = env.setTimer(KEEPALIVE_MS, () => {
          timedOut = true;
          notify();
        });
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        timer.cancel();
        if (timedOut && queue.length === 0 && !signal.aborted) yield { seq: 0, kind: "keepalive" };
        continue;
      }
      yield toWatchResponse(queue.shift()!);
    }
  } finally {
    signal.removeEventListener("abort", notify);
    sub.close();
  }
}
