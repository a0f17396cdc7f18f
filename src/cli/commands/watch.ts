/**
 * `longboat cmd watch --nodehost a,b,c [--shard N] [--json]`: prints the events of every named
 * NodeHost as they happen (WatchEvents), one line each, until Ctrl-C. A stream that fails or
 * goes silent is reopened on its own with backoff; the gap is announced on stderr.
 */
import { ApiError } from "../../api/client.ts";
import { watchEventsCall } from "../../api/watch-client.ts";
import type { CmdConfig } from "../config.ts";
import { printErrorLine, printLine } from "../output.ts";

/** Delay before reopening a lost stream: doubles from the first to the last, reset once it is back. */
const RECONNECT_MS_FIRST = 250;
const RECONNECT_MS_MAX = 5000;

export async function watch(config: CmdConfig): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await Promise.all(config.nodehost.map((address) => follow(address, config, stop.signal)));
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return 0;
}

async function follow(address: string, config: CmdConfig, signal: AbortSignal): Promise<void> {
  let delayMs = RECONNECT_MS_FIRST;
  let lost = false;
  while (!signal.aborted) {
    try {
      const stream = watchEventsCall(
        address,
        { shardId: config.shard ?? 0 },
        { signal, ...(config.apiToken ? { token: config.apiToken } : {}) },
      );
      let first = true;
      for await (const e of stream) {
        if (first) status(address, lost ? "watching again" : "watching");
        first = false;
        lost = false;
        delayMs = RECONNECT_MS_FIRST;
        if (e.kind !== "keepalive") printEvent(address, e, config.json);
      }
      if (signal.aborted) return;
      throw new Error("the stream ended");
    } catch (error) {
      if (signal.aborted) return;
      if (
        error instanceof ApiError &&
        (error.code === "unauthenticated" || error.code === "invalid_argument")
      ) {
        status(address, `${error.message} (not retried)`);
        return;
      }
      const why = error instanceof Error ? error.message : String(error);
      status(address, `${lost ? "still unreachable" : "connection lost"}: ${why}; retrying in ${delayMs} ms`);
      lost = true;
      await sleep(delayMs, signal);
      delayMs = Math.min(RECONNECT_MS_MAX, delayMs * 2);
    }
  }
}

function status(address: string, text: string): void {
  printErrorLine(`${new Date().toISOString()} ${address}: ${text}`);
}

function printEvent(address: string, e: Record<string, unknown>, json: boolean): void {
  const time = new Date().toISOString();
  if (json) {
    printLine(JSON.stringify({ time, nodehost: address, ...e }));
    return;
  }
  printLine(`${time} ${address} shard ${e.shardId ?? 0} replica ${e.replicaId ?? 0}: ${describe(e)}`);
}

/** One event in words. */
export function describe(e: Record<string, unknown>): string {
  const n = (k: string) => Number(e[k] ?? 0);
  const ids = (list: unknown) =>
    (Array.isArray(list) ? list : [])
      .map((m: { replicaId?: unknown }) => Number(m.replicaId ?? 0))
      .join(",") || "-";
  switch (e.kind) {
    case "leaderUpdated":
      return `leaderUpdated: leader ${n("leaderId") || "none"}, term ${n("term")}`;
    case "roleChanged":
      return `roleChanged: ${e.role}, term ${n("term")}${e.role === "follower" ? ` (leader ${n("leaderId")})` : ""}`;
    case "membershipChanged": {
      const m = (e.membership ?? {}) as Record<string, unknown>;
      return `membershipChanged: config change ${Number(m.configChangeId ?? 0)}, voting ${ids(m.addresses)}, non-voting ${ids(m.nonVotings)}, witnesses ${ids(m.witnesses)}`;
    }
    case "snapshotReceived":
      return `snapshotReceived: index ${n("index")} from replica ${n("fromReplicaId")}`;
    case "snapshotCreated":
    case "snapshotRecovered":
    case "logCompacted":
      return `${e.kind}: index ${n("index")}`;
    case "replicaStopped":
      return `replicaStopped: ${e.reason ?? ""}`;
    case "shardUnavailable":
      return `shardUnavailable: no leader for ${n("electionTimeouts")} election timeouts (term ${n("term")})`;
    case "shardAvailable":
      return `shardAvailable: leader ${n("leaderId")}, term ${n("term")}`;
    case "proposalDropped":
    case "readDropped":
      return `${e.kind}: ${n("count")}`;
    case "eventsDropped":
      return `eventsDropped: ${n("count")} events lost (this watch fell behind)`;
    default:
      return String(e.kind);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}
