/**
 * The leader's soft state: the last report of every NodeHost and when it came (drummer
 * time). Reports are not proposed to DrummerDB one by one (a thousand hosts would flood its
 * log); a new leader starts with an empty book and listens for a full dead timeout before it
 * judges anyone dead.
 */
import type { DrummerRequest } from "./api/schemas.ts";
import { DB_LIMITS } from "./db/state.ts";
import type { Decision } from "./types.ts";
import { type HostObservation, replicaKey } from "./scheduler/types.ts";

/** Results a host may have waiting for decisions that are still in flight. */
export const RESULTS_PER_HOST_MAX = 1024;

export class ReportBook {
  readonly hosts = new Map<string, HostObservation>();

  /** Records a report; false when the book is full and the host is new. */
  record(req: DrummerRequest<"Report">, nowMs: number): boolean {
    const have = this.hosts.get(req.raftAddress);
    if (!have && this.hosts.size >= DB_LIMITS.hosts) return false;
    const results = have?.results ?? new Map();
    for (const r of req.results) {
      if (results.size >= RESULTS_PER_HOST_MAX) break;
      results.set(r.decisionId, { ok: r.ok, message: r.message });
    }
    this.hosts.set(req.raftAddress, {
      raftAddress: req.raftAddress,
      apiAddress: req.apiAddress,
      region: req.region,
      lastReportMs: nowMs,
      replicas: req.replicas.map((r) => ({ ...r, members: r.members.map((m) => ({ ...m })) })),
      logsOnDisk: new Set(req.logsOnDisk.map((k) => replicaKey(k.shardId, k.replicaId))),
      results,
    });
    return true;
  }

  /** Drops results of decisions no longer in flight. */
  prune(inFlight: ReadonlyMap<number, Decision>): void {
    for (const h of this.hosts.values()) {
      for (const id of h.results.keys()) if (!inFlight.has(id)) h.results.delete(id);
    }
  }

  clear(): void {
    this.hosts.clear();
  }
}
