/**
 * A --leader-webhook receiver that fences by term (docs/leader-hooks.md): it keeps the highest
 * term it has accepted per shard and answers 409 to a lower one, which longboat does not
 * retry. A real receiver keeps the term where the resource is (the load balancer's config,
 * the database row) and checks it in the same step as the action.
 *
 *   bun examples/leader-hooks/webhook-receiver.ts 9090
 *   longboat nodehost … --leader-webhook http://127.0.0.1:9090/leader
 */

interface LeaderChange {
  shardId: number;
  replicaId: number;
  term: number;
  leaderId: number;
  role: "leader" | "follower" | "none";
  raftAddress: string;
}

/** A fetch handler; `act` is what the receiver does for an accepted change (default: log it). */
export function fencedReceiver(act: (c: LeaderChange) => void = (c) => console.log(JSON.stringify(c))) {
  const highest = new Map<number, number>();
  return async (req: Request): Promise<Response> => {
    if (req.method !== "POST") return new Response("POST a leader change\n", { status: 405 });
    let change: LeaderChange;
    try {
      change = (await req.json()) as LeaderChange;
    } catch {
      return new Response("body is not JSON\n", { status: 400 });
    }
    if (!Number.isSafeInteger(change.shardId) || !Number.isSafeInteger(change.term) || change.term < 0) {
      return new Response("shardId and term must be integers\n", { status: 400 });
    }
    const seen = highest.get(change.shardId) ?? 0;
    if (change.term < seen) {
      return new Response(`stale term ${change.term} for shard ${change.shardId} (highest seen ${seen})\n`, {
        status: 409,
      });
    }
    highest.set(change.shardId, change.term);
    act(change);
    return new Response(null, { status: 204 });
  };
}

if (import.meta.main) {
  const port = Number(process.argv[2] ?? 9090);
  const server = Bun.serve({ hostname: "127.0.0.1", port, fetch: fencedReceiver() });
  console.error(`fenced webhook receiver on http://127.0.0.1:${server.port}/`);
}
