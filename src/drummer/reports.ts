/**
 * The leader's soft state: the last report of every NodeHost and when it came (drummer
 * time), the replicas they run indexed by shard, and what changed since the last pass. Reports
 * are not proposed to DrummerDB one by one (a thousand hosts would flood its log); a new
 * leader starts with an empty book and listens for a full dead timeout before it judges
 * anyone dead.
 */
import type { DrummerRequest } from "./api/schemas.ts";
import { DB_LIMITS } from "./db/state.ts";
import type { Decision } from "./types.ts";
import {
  type HostObservation,
  type ReplicaIndex,
  type ReplicaObservation,
  replicaKey,
} from "./scheduler/types.ts";

/** Results a host may have waiting for decisions that are still in flight. */
export const RESULTS_PER_HOST_MAX = 1024;

export class ReportBook {
  readonly hosts = new Map<string, HostObservation>();
  /** shard → host → the replica it runs there (kept as reports come). */
  readonly index: ReplicaIndex = new Map();
  private dirtyShards = new Set<number>();
  private dirtyHosts = new Set<string>();
  /** Each host's last logsOnDisk as sent (compared as numbers: no key strings per report). */
  private readonly lastLogs = new Map<string, readonly { shardId: number; replicaId: number }[]>();

  /**
   * Records a report. "full": the book is full and the host is new (refused). "resend": it is
   * recorded, but some replica left its members out and the book has none to reuse (the host
   * must send them all next time).
   */
  record(req: DrummerRequest<"Report">, nowMs: number): "ok" | "resend" | "full" {
    const address = req.raftAddress;
    const have = this.hosts.get(address);
    if (!have && this.hosts.size >= DB_LIMITS.hosts) return "full";
    const results = have?.results ?? new Map();
    for (const r of req.results) {
      if (results.size >= RESULTS_PER_HOST_MAX) break;
      results.set(r.decisionId, { ok: r.ok, message: r.message });
    }
    const { replicas, missing } = this.withMembers(address, req.replicas, have);
    const lastLogs = this.lastLogs.get(address);
    const logsOnDisk =
      have && lastLogs && sameLogs(lastLogs, req.logsOnDisk)
        ? have.logsOnDisk
        : new Set(req.logsOnDisk.map((k) => replicaKey(k.shardId, k.replicaId)));
    this.lastLogs.set(address, req.logsOnDisk);
    const next: HostObservation = {
      raftAddress: address,
      apiAddress: req.apiAddress,
      region: req.region,
      lastReportMs: nowMs,
      replicas,
      logsOnDisk,
      results,
      apps: sameList(have?.apps, req.apps) ? have!.apps! : req.apps,
    };
    if (req.figures) next.figures = req.figures; // for the dashboard only: changes nothing below
    const changed = this.noteChanges(have, next, req.results.length > 0);
    if (changed) this.reindex(have, next);
    else if (have) next.replicas = have.replicas; // the index points at these
    this.hosts.set(address, next);
    return missing ? "resend" : "ok";
  }

  /** Shards and hosts whose reports changed since the last call (and forgets them). */
  takeDirty(): { shards: Set<number>; hosts: Set<string> } {
    const out = { shards: this.dirtyShards, hosts: this.dirtyHosts };
    this.dirtyShards = new Set();
    this.dirtyHosts = new Set();
    return out;
  }

  /** Drops results of decisions no longer in flight. */
  prune(inFlight: ReadonlyMap<number, Decision>): void {
    for (const h of this.hosts.values()) {
      for (const id of h.results.keys()) if (!inFlight.has(id)) h.results.delete(id);
    }
  }

  clear(): void {
    this.hosts.clear();
    this.lastLogs.clear();
    this.index.clear();
    this.dirtyShards.clear();
    this.dirtyHosts.clear();
  }

  /** Marks what differs between a host's previous report and this one; true when anything does. */
  private noteChanges(
    before: HostObservation | undefined,
    after: HostObservation,
    results: boolean,
  ): boolean {
    const address = after.raftAddress;
    let changed =
      before === undefined ||
      results ||
      before.region !== after.region ||
      before.apiAddress !== after.apiAddress;
    // The host's previous replicas are those the index holds at its address (no Map per report).
    let matched = 0;
    for (const r of after.replicas) {
      const was = before ? this.index.get(r.shardId)?.get(address) : undefined;
      if (was) matched++;
      if (was && sameReplica(was, r)) {
        // Kept when nothing else changed (the index points at it): the progress stays current.
        was.appliedIndex = r.appliedIndex;
        was.leaderReplicaId = r.leaderReplicaId;
        was.term = r.term;
        was.commitIndex = r.commitIndex;
        continue;
      }
      this.dirtyShards.add(r.shardId);
      changed = true;
    }
    // Fewer matched than before: some replica left (shard ids are distinct: the parser refuses twice).
    if (before && matched < before.replicas.length) {
      const now = new Set(after.replicas.map((r) => r.shardId));
      for (const r of before.replicas) if (!now.has(r.shardId)) this.dirtyShards.add(r.shardId);
      changed = true;
    }
    const logsBefore = before?.logsOnDisk ?? new Set<string>();
    if (
      logsBefore !== after.logsOnDisk && // the same list as last time keeps the same set
      (logsBefore.size !== after.logsOnDisk.size || [...after.logsOnDisk].some((k) => !logsBefore.has(k)))
    ) {
      for (const k of [...after.logsOnDisk, ...logsBefore])
        this.dirtyShards.add(Number(k.slice(0, k.indexOf(":"))));
      changed = true;
    }
    if (changed) this.dirtyHosts.add(address);
    return changed;
  }

  /**
   * The report's replicas, with left-out members (non-pending, none sent) taken from the host's
   * previous report when it had them at the same config-change index; `missing` when one could
   * not be.
   */
  private withMembers(
    address: string,
    replicas: ReplicaObservation[],
    before: HostObservation | undefined,
  ): { replicas: ReplicaObservation[]; missing: boolean } {
    let missing = false;
    for (const r of replicas) {
      if (r.pending || r.members.length > 0) continue;
      const was = before ? this.index.get(r.shardId)?.get(address) : undefined;
      // The book's copy may itself lack them (left out in a report it asked to be resent).
      if (
        was &&
        was.replicaId === r.replicaId &&
        was.configChangeId === r.configChangeId &&
        was.members.length > 0
      )
        r.members = was.members;
      else missing = true;
    }
    return { replicas, missing };
  }

  private reindex(before: HostObservation | undefined, after: HostObservation): void {
    const address = after.raftAddress;
    for (const r of before?.replicas ?? []) {
      const m = this.index.get(r.shardId);
      m?.delete(address);
      if (m?.size === 0) this.index.delete(r.shardId);
    }
    for (const r of after.replicas) {
      const m = this.index.get(r.shardId);
      if (m) m.set(address, r);
      else this.index.set(r.shardId, new Map([[address, r]]));
    }
  }
}

/** Whether the logs listed are those of the previous report (same order, as a host sends them). */
function sameLogs(
  before: readonly { shardId: number; replicaId: number }[],
  now: readonly { shardId: number; replicaId: number }[],
): boolean {
  if (before.length !== now.length) return false;
  for (let i = 0; i < now.length; i++) {
    if (before[i]!.shardId !== now[i]!.shardId || before[i]!.replicaId !== now[i]!.replicaId) return false;
  }
  return true;
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameReplica(a: ReplicaObservation, b: ReplicaObservation): boolean {
  return (
    a.replicaId === b.replicaId &&
    a.configChangeId === b.configChangeId &&
    a.pending === b.pending &&
    a.isLeader === b.isLeader &&
    a.members.length === b.members.length
  );
}
