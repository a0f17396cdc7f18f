import { createHash } from "node:crypto";
import { ByteReader, ByteWriter } from "../statemachine/bytes.ts";
import type { SMResult } from "../statemachine/types.ts";

/**
 * Client sessions for at-most-once proposals (engine.md §3.5, Raft thesis §6.3). Each session
 * remembers respondedTo (results the client acknowledged are dropped) and the results of the
 * proposals it applied but the client has not yet acknowledged, so a retry gets the cached
 * result instead of applying twice. The table is an LRU of at most maxSessions sessions; an
 * access by an applied entry makes a session most recent, and registering one more evicts the
 * least recent. Only applied entries touch it, so every replica evicts the same session.
 * maxSessions is a hard setting: replicas of a shard must agree on it forever.
 */

export const SERIES_ID_NOOP = 0;
export const SERIES_ID_FIRST_PROPOSAL = 1;
export const SERIES_ID_REGISTER = Number.MAX_SAFE_INTEGER - 1;
export const SERIES_ID_UNREGISTER = Number.MAX_SAFE_INTEGER;
/** clientId 0: the no-op session (no dedup). */
export const CLIENT_ID_NOOP = 0;
export const DEFAULT_MAX_SESSIONS = 4096;
/**
 * Bound of the cached results of one session. A well-behaved client has one proposal in flight
 * per session; a client that never advances respondedTo is refused past this bound instead of
 * growing the snapshot without limit.
 */
export const MAX_RESULTS_PER_SESSION = 1024;

export interface Session {
  clientId: number;
  respondedTo: number;
  results: Map<number, SMResult>;
}

export type SessionCheck =
  | { kind: "apply"; session: Session }
  | { kind: "duplicate"; result: SMResult }
  | { kind: "rejected"; reason: string };

export class SessionManager {
  /** Map iteration order is the LRU order: first = least recently used. */
  private readonly sessions = new Map<number, Session>();

  constructor(readonly maxSessions: number = DEFAULT_MAX_SESSIONS) {
    if (!Number.isInteger(maxSessions) || maxSessions < 1) {
      throw new RangeError(`maxSessions must be an integer ≥ 1, got ${maxSessions}`);
    }
  }

  size(): number {
    return this.sessions.size;
  }

  has(clientId: number): boolean {
    return this.sessions.has(clientId);
  }

  /** Client ids from least to most recently used. */
  clientIds(): number[] {
    return [...this.sessions.keys()];
  }

  /** Registers clientId; returns null, or why not. Evicts the least recently used at the bound. */
  register(clientId: number): string | null {
    if (clientId === CLIENT_ID_NOOP) return "client id 0 is the no-op session and cannot be registered";
    if (this.sessions.has(clientId)) {
      this.touch(clientId);
      return `client ${clientId} already has a session`;
    }
    if (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.keys().next().value as number;
      this.sessions.delete(oldest);
    }
    this.sessions.set(clientId, { clientId, respondedTo: 0, results: new Map() });
    return null;
  }

  /** Unregisters clientId; returns null, or why not. */
  unregister(clientId: number): string | null {
    if (!this.sessions.delete(clientId))
      return `client ${clientId} has no session (never registered or evicted)`;
    return null;
  }

  /**
   * Decides what to do with a proposal of (clientId, seriesId) that acknowledges everything up
   * to respondedTo. Acknowledged results are dropped first, so a retry of an acknowledged
   * proposal is refused rather than answered.
   */
  check(clientId: number, seriesId: number, respondedTo: number): SessionCheck {
    const s = this.sessions.get(clientId);
    if (s === undefined) {
      return { kind: "rejected", reason: `client ${clientId} has no session (never registered or evicted)` };
    }
    this.touch(clientId);
    this.acknowledge(s, respondedTo);
    const cached = s.results.get(seriesId);
    if (cached !== undefined) return { kind: "duplicate", result: cached };
    if (seriesId <= s.respondedTo) {
      return {
        kind: "rejected",
        reason: `series ${seriesId} of client ${clientId} was already acknowledged (respondedTo ${s.respondedTo})`,
      };
    }
    if (s.results.size >= MAX_RESULTS_PER_SESSION) {
      return {
        kind: "rejected",
        reason: `client ${clientId} has ${s.results.size} unacknowledged results, the limit is ${MAX_RESULTS_PER_SESSION}`,
      };
    }
    return { kind: "apply", session: s };
  }

  /** Caches the result of an applied proposal. */
  record(session: Session, seriesId: number, result: SMResult): void {
    if (session.results.has(seriesId))
      throw new Error(`series ${seriesId} of client ${session.clientId} applied twice`);
    session.results.set(seriesId, result);
  }

  private acknowledge(s: Session, respondedTo: number): void {
    if (respondedTo <= s.respondedTo) return;
    s.respondedTo = respondedTo;
    for (const id of s.results.keys()) if (id <= respondedTo) s.results.delete(id);
  }

  private touch(clientId: number): void {
    const s = this.sessions.get(clientId)!;
    this.sessions.delete(clientId);
    this.sessions.set(clientId, s);
  }

  /**
   * Layout: u32 maxSessions, u32 sessionCount, then per session from least to most recently used:
   * u64 clientId, u64 respondedTo, u32 resultCount, and per result in ascending seriesId:
   * u64 seriesId, f64 value, u32 dataLength, data.
   */
  save(sink: (chunk: Uint8Array) => void): void {
    const w = new ByteWriter(sink);
    w.u32(this.maxSessions);
    w.u32(this.sessions.size);
    for (const s of this.sessions.values()) {
      w.u64(s.clientId);
      w.u64(s.respondedTo);
      w.u32(s.results.size);
      for (const id of [...s.results.keys()].sort((a, b) => a - b)) {
        const r = s.results.get(id)!;
        w.u64(id);
        w.f64(r.value);
        w.bytes(r.data);
      }
    }
    w.flush();
  }

  /** Replaces the table with a saved one. @throws on a corrupt table or another maxSessions. */
  load(bytes: Uint8Array): void {
    const r = new ByteReader(bytes, "session table");
    const max = r.u32("maxSessions");
    if (max !== this.maxSessions) {
      throw new Error(
        `session table was saved with maxSessions ${max}, this replica uses ${this.maxSessions} (a hard setting: it must never change)`,
      );
    }
    const count = r.u32("session count");
    if (count > max) throw new Error(`session table holds ${count} sessions, above maxSessions ${max}`);
    const next: Session[] = [];
    for (let i = 0; i < count; i++) {
      const clientId = r.u64(`session ${i} clientId`);
      const respondedTo = r.u64(`session ${i} respondedTo`);
      const n = r.u32(`session ${i} result count`);
      const results = new Map<number, SMResult>();
      for (let j = 0; j < n; j++) {
        const id = r.u64(`session ${i} result ${j} seriesId`);
        const value = r.f64(`session ${i} result ${j} value`);
        results.set(id, { value, data: r.bytes(`session ${i} result ${j} data`).slice() });
      }
      next.push({ clientId, respondedTo, results });
    }
    r.end();
    this.clear();
    for (const s of next) this.sessions.set(s.clientId, s);
  }

  clear(): void {
    this.sessions.clear();
  }

  /** sha256 of the saved form: equal on replicas that applied the same entries. */
  hash(): string {
    const h = createHash("sha256");
    this.save((chunk) => h.update(chunk));
    return h.digest("hex");
  }
}
