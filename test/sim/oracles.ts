/**
 * The simulator's safety oracles, checked after every step of a run:
 *
 * - leader: at most one leader per term per shard (from every replica's leaderUpdated
 *   event: two replicas naming different leaders for one term is a split brain);
 * - committed: an entry at or below a replica's durable commit index never changes, and every
 *   replica's committed entry at an index is the same one (the canonical history);
 * - hash: state machines at equal applied index have equal hashes;
 * - acked: an acknowledged write is the canonical entry at the index it was acknowledged at,
 *   and after the heal phase every replica applied it;
 * - session: a session-protected proposal (client id, series id) reaches the user state
 *   machine at most once in the canonical history;
 * - applied: what each state machine instance applies is a prefix of the one history: indices
 *   strictly increasing (since its last snapshot recovery), each command the canonical one;
 * - role: the leadership view hooks act on (roleChanged events, delivered to a listener as an
 *   application gets them): a (shard, term) is reported "leader" by one replica at most, and
 *   the terms one replica reports never decrease, across restarts too.
 *
 * A violation throws SimViolation naming the oracle and the evidence.
 */
import type { LogDB } from "../../src/logdb/types.ts";
import { type Entry, EntryType } from "../../src/raft/types.ts";

export type OracleName =
  | "leader"
  | "committed"
  | "hash"
  | "acked"
  | "session"
  | "applied"
  | "role"
  | "convergence"
  | "storm"
  | "restart"
  | "linearizability";

export class SimViolation extends Error {
  override name = "SimViolation";
  constructor(
    readonly oracle: OracleName,
    detail: string,
  ) {
    super(`[${oracle}] ${detail}`);
  }
}

/** FNV-1a 32-bit over bytes, continuing from h. */
export function fnv1a(bytes: Uint8Array, h = 0x811c9dc5): number {
  let x = h >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    x ^= bytes[i]!;
    x = Math.imul(x, 0x01000193) >>> 0;
  }
  return x;
}

/** What identifies an entry's content (the request key differs between retries; left out). */
export function entryDigest(e: Entry): string {
  // Fields are normalised: the core may leave zero-valued fields out of entries it makes.
  return `${e.term}/${e.type ?? 0}/${e.clientId ?? 0}/${e.seriesId ?? 0}/${fnv1a(e.cmd ?? EMPTY).toString(16)}`;
}

const EMPTY = new Uint8Array(0);

/** A command's identity, independent of the term it was appended in. */
export function commandDigest(clientId: number, seriesId: number, cmd: Uint8Array): string {
  return `${clientId}/${seriesId}/${fnv1a(cmd).toString(16)}`;
}

interface Canonical {
  digest: string;
  /** FNV-1a of the command bytes alone (what a state machine is handed). */
  cmdHash: string;
  command: string;
  clientId: number;
  seriesId: number;
}

/** What one state machine instance was handed by its manager (indices, in order). */
export interface AppliedRecord {
  shardId: number;
  replicaId: number;
  host: number;
  /** Applied (index, FNV-1a of the command) not yet matched against the canonical history. */
  pending: { index: number; cmdHash: string }[];
  /** The highest index this instance applied since it was created or recovered a snapshot. */
  lastApplied: number;
  /** (client id, series id) of session-protected proposals this instance applied. */
  seen: Set<string>;
  closed: boolean;
}

/** Applied indices an instance may hold unmatched (they match once the LogDB shows them). */
export const APPLIED_PENDING_COUNT_MAX = 100_000;

/** Bound on the per-shard canonical history the oracles keep (a run is a few thousand entries). */
export const CANONICAL_ENTRY_COUNT_MAX = 1_000_000;

export class Oracles {
  /** shard → term → leader id. */
  private readonly leaders = new Map<number, Map<number, { leaderId: number; reportedBy: number }>>();
  /** shard → index → canonical committed entry. */
  private readonly committed = new Map<number, Map<number, Canonical>>();
  /** `${host}:${shard}:${replica}` → highest committed index already compared. */
  private readonly checkedTo = new Map<string, number>();
  /** shard → applied index → state machine hash. */
  private readonly hashes = new Map<number, Map<number, { hash: string; who: string }>>();
  /** shard → term → the replica reported "leader" for it (role oracle). */
  private readonly roleLeaders = new Map<number, Map<number, number>>();
  /** `${shard}:${replica}` → the last term that replica reported (role oracle). */
  private readonly roleTerms = new Map<string, number>();
  /** `${shard}` → replica → since when it is reported "leader" (overlap statistics). */
  private readonly leadingSince = new Map<number, Map<number, number>>();
  /** Times a replica was reported leader while another replica of its shard still was. */
  roleOverlaps = 0;
  /** Longest such overlap, in simulated milliseconds, measured when the older one ends. */
  roleOverlapMsMax = 0;
  /** Acknowledged writes: shard, index, command digest, what the client did. */
  readonly acked: { shardId: number; index: number; command: string; what: string }[] = [];
  entriesChecked = 0;

  onLeader(shardId: number, replicaId: number, leaderId: number, term: number): void {
    if (leaderId === 0 || term === 0) return;
    let terms = this.leaders.get(shardId);
    if (!terms) {
      terms = new Map();
      this.leaders.set(shardId, terms);
    }
    const seen = terms.get(term);
    if (seen === undefined) {
      terms.set(term, { leaderId, reportedBy: replicaId });
      return;
    }
    if (seen.leaderId !== leaderId) {
      throw new SimViolation(
        "leader",
        `shard ${shardId} term ${term} has two leaders: replica ${seen.reportedBy} saw ${seen.leaderId}, replica ${replicaId} saw ${leaderId}`,
      );
    }
  }

  /** A replica reported a role (a roleChanged event) at simulated time nowMs. */
  onRole(shardId: number, replicaId: number, role: string, term: number, nowMs: number): void {
    const who = `${shardId}:${replicaId}`;
    const last = this.roleTerms.get(who) ?? 0;
    if (term < last) {
      throw new SimViolation(
        "role",
        `shard ${shardId} replica ${replicaId} reported term ${term} after term ${last}`,
      );
    }
    this.roleTerms.set(who, term);
    this.trackOverlap(shardId, replicaId, role === "leader", nowMs);
    if (role !== "leader") return;
    let terms = this.roleLeaders.get(shardId);
    if (!terms) {
      terms = new Map();
      this.roleLeaders.set(shardId, terms);
    }
    const seen = terms.get(term);
    if (seen !== undefined && seen !== replicaId) {
      throw new SimViolation(
        "role",
        `shard ${shardId} term ${term} was reported "leader" by replica ${seen} and by replica ${replicaId}`,
      );
    }
    terms.set(term, replicaId);
  }

  private trackOverlap(shardId: number, replicaId: number, leading: boolean, nowMs: number): void {
    let since = this.leadingSince.get(shardId);
    if (!since) {
      since = new Map();
      this.leadingSince.set(shardId, since);
    }
    const was = since.get(replicaId);
    if (leading && was === undefined) {
      if (since.size > 0) this.roleOverlaps++;
      since.set(replicaId, nowMs);
    } else if (!leading && was !== undefined) {
      since.delete(replicaId);
      for (const other of since.values()) {
        if (other > was) this.roleOverlapMsMax = Math.max(this.roleOverlapMsMax, nowMs - other);
      }
    }
  }

  /** Compares the newly committed durable entries of one replica with the canonical history. */
  checkCommitted(host: number, db: LogDB, shardId: number, replicaId: number): void {
    const key = { shardId, replicaId };
    const state = db.readLogState(key);
    const id = `${host}:${shardId}:${replicaId}`;
    let from = Math.max(this.checkedTo.get(id) ?? 0, state.firstIndex - 1) + 1;
    const to = Math.min(state.state.commit, state.lastIndex);
    let canon = this.committed.get(shardId);
    if (!canon) {
      canon = new Map();
      this.committed.set(shardId, canon);
    }
    while (from <= to) {
      const entries = db.entries(key, from, to + 1, 4 * 1024 * 1024);
      if (entries.length === 0) break;
      for (const e of entries) this.compareEntry(canon, shardId, replicaId, host, e);
      from = entries[entries.length - 1]!.index + 1;
    }
    this.checkedTo.set(id, Math.max(this.checkedTo.get(id) ?? 0, to));
  }

  /**
   * Restart oracle: what a replica has on disk is a state it can restart from and lead. A new
   * leader refuses more than one config change above its commit index (Raft.becomeLeader: the
   * next one is proposed only after the previous one applied), so a durable log may never hold
   * two config changes above its durable commit index — which it does when the commit index
   * that preceded a later entry was not written before it (planted bug skip-commit-write).
   */
  checkRestartable(host: number, db: LogDB, shardId: number, replicaId: number): void {
    const key = { shardId, replicaId };
    const state = db.readLogState(key);
    let from = Math.max(state.state.commit, state.firstIndex - 1) + 1;
    let configChanges = 0;
    while (from <= state.lastIndex) {
      const entries = db.entries(key, from, state.lastIndex + 1, 4 * 1024 * 1024);
      if (entries.length === 0) break;
      for (const e of entries) if (e.type === EntryType.ConfigChange) configChanges++;
      from = entries[entries.length - 1]!.index + 1;
    }
    if (configChanges > 1) {
      throw new SimViolation(
        "restart",
        `shard ${shardId} replica ${replicaId} on host ${host}: ${configChanges} config changes on disk above its durable commit index ${state.state.commit} (log to ${state.lastIndex}); after a restart it could not become leader`,
      );
    }
  }

  private compareEntry(
    canon: Map<number, Canonical>,
    shardId: number,
    replicaId: number,
    host: number,
    e: Entry,
  ): void {
    this.entriesChecked++;
    const digest = entryDigest(e);
    const seen = canon.get(e.index);
    if (seen === undefined) {
      if (canon.size >= CANONICAL_ENTRY_COUNT_MAX)
        throw new Error(`canonical history of shard ${shardId} is full`);
      canon.set(e.index, {
        digest,
        cmdHash: fnv1a(e.cmd ?? EMPTY).toString(16),
        command: commandDigest(e.clientId, e.seriesId, e.cmd),
        clientId: e.clientId,
        seriesId: e.seriesId,
      });
      return;
    }
    if (seen.digest !== digest) {
      throw new SimViolation(
        "committed",
        `shard ${shardId} index ${e.index}: replica ${replicaId} on host ${host} committed ${digest}, the canonical history has ${seen.digest}`,
      );
    }
  }

  onStateHash(shardId: number, appliedIndex: number, hash: string, who: string): void {
    let byIndex = this.hashes.get(shardId);
    if (!byIndex) {
      byIndex = new Map();
      this.hashes.set(shardId, byIndex);
    }
    const seen = byIndex.get(appliedIndex);
    if (seen === undefined) {
      byIndex.set(appliedIndex, { hash, who });
      return;
    }
    if (seen.hash !== hash) {
      throw new SimViolation(
        "hash",
        `shard ${shardId} applied index ${appliedIndex}: ${who} has state hash ${hash}, ${seen.who} had ${seen.hash}`,
      );
    }
  }

  onAcked(shardId: number, index: number, command: string, what: string): void {
    this.acked.push({ shardId, index, command, what });
    this.verifyAcked(this.acked.length - 1, false);
  }

  /** Checks acknowledged writes against the canonical history; returns how many were verified. */
  verifyAllAcked(final: boolean): number {
    let verified = 0;
    for (let i = 0; i < this.acked.length; i++) if (this.verifyAcked(i, final)) verified++;
    return verified;
  }

  private verifyAcked(i: number, final: boolean): boolean {
    const a = this.acked[i]!;
    const seen = this.committed.get(a.shardId)?.get(a.index);
    if (seen === undefined) {
      if (final) return false;
      return false;
    }
    if (seen.command !== a.command) {
      throw new SimViolation(
        "acked",
        `shard ${a.shardId}: ${a.what} was acknowledged at index ${a.index}, but the committed entry there is ${seen.command}, not ${a.command}`,
      );
    }
    return true;
  }

  /**
   * Session oracle: matches what a state machine instance applied with the canonical history;
   * a session-protected proposal (client id ≠ 0) applied twice by one instance is a violation.
   * Indices not in the canonical history yet stay pending until a later check.
   */
  checkApplied(rec: AppliedRecord): void {
    const canon = this.committed.get(rec.shardId);
    const still: AppliedRecord["pending"] = [];
    const where = `shard ${rec.shardId} replica ${rec.replicaId} on host ${rec.host}`;
    for (const p of rec.pending) {
      const { index } = p;
      const c = canon?.get(index);
      if (c === undefined) {
        still.push(p);
        continue;
      }
      if (c.cmdHash !== p.cmdHash) {
        throw new SimViolation(
          "applied",
          `${where} applied at index ${index} a command (hash ${p.cmdHash}) that is not the committed one (hash ${c.cmdHash})`,
        );
      }
      if (c.clientId === 0) continue;
      const id = `${c.clientId}/${c.seriesId}`;
      if (rec.seen.has(id)) {
        throw new SimViolation(
          "session",
          `${where} applied session proposal client ${c.clientId} series ${c.seriesId} twice (again at index ${index})`,
        );
      }
      rec.seen.add(id);
    }
    if (still.length > APPLIED_PENDING_COUNT_MAX) {
      throw new Error(
        `session oracle: ${still.length} applied indices of shard ${rec.shardId} never reached the canonical history`,
      );
    }
    rec.pending = still;
  }

  /** Records what an instance was handed; an index not above the last one is a violation. */
  onApply(rec: AppliedRecord, index: number, cmd: Uint8Array): void {
    if (index <= rec.lastApplied) {
      throw new SimViolation(
        "applied",
        `shard ${rec.shardId} replica ${rec.replicaId} on host ${rec.host} applied index ${index} after ${rec.lastApplied}`,
      );
    }
    rec.lastApplied = index;
    rec.pending.push({ index, cmdHash: fnv1a(cmd).toString(16) });
  }

  highestAcked(shardId: number): number {
    let max = 0;
    for (const a of this.acked) if (a.shardId === shardId && a.index > max) max = a.index;
    return max;
  }
}
