import type { LeadershipFacts } from "../raft/peer.ts";
import type { LeaderRole, RoleChangedEvent, ShardAvailableEvent, ShardUnavailableEvent } from "./events.ts";

/**
 * The leadership view that events and hooks act on (docs/leader-hooks.md has the reasoning).
 *
 * The Raft core's own "I am leader" is not enough to act on: a leader cut off from its peers
 * keeps that belief until its next CheckQuorum, up to two election timeouts, while the others
 * may elect a new leader after one. So a replica is reported "leader" for term T only while
 *
 * 1. its Raft role is Leader in term T (at most one replica per shard and term: Raft's election
 *    safety — this is what makes the term a fencing token);
 * 2. it has committed an entry of term T (a quorum has accepted it as leader and holds its log;
 *    it can serve linearizable reads and writes): its commit index has reached the last index
 *    its log had when the view first saw it lead term T (that entry and every later one are of
 *    term T, since a leader appends its no-op on election and never truncates its own log;
 *    read this way because the term of an older index may be in the log database), and
 * 3. a quorum of voters, itself included, answered it (ReplicateResp or HeartbeatResp of term T)
 *    within the last election timeout, measured on the wall clock when the answer arrived.
 *
 * Condition 3 is re-checked on every tick, so a leader that stops hearing from a quorum is
 * reported "none" within a tick of its lease running out — about one election timeout after
 * the last answer, while its peers refuse to vote for anyone else for an election timeout after
 * they last heard from it and an election then takes two more round trips (PreVote, Vote). The
 * lease counts wall-clock milliseconds, not ticks: after the process was stopped or blocked its
 * ticks lag behind, the clock does not.
 *
 * Answers that arrive while the engine was not ticking (a stall longer than STALL_GAP_TICKS
 * ticks) or within one tick after one are not counted: they may have waited in a buffer
 * through the stall and would renew the lease with old news.
 *
 * None of this is a guarantee against two replicas acting at once (clocks drift, processes
 * pause between the check and the act): the term is. Downstream systems must reject a term
 * lower than the highest they have seen.
 */

/** A tick gap longer than this many ticks means the engine stalled (paused, blocked). */
export const STALL_GAP_TICKS = 2;

/** Engine-wide stall detection: answers received during or right after a stall do not count. */
export class StallGuard {
  private lastTickMs: number | null = null;
  private resumedAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly rttMs: number) {
    if (!(rttMs > 0)) throw new RangeError(`StallGuard: rttMs must be > 0, got ${rttMs}`);
  }

  /** The engine ticked at nowMs. */
  onTick(nowMs: number): void {
    if (this.lastTickMs !== null && nowMs - this.lastTickMs > STALL_GAP_TICKS * this.rttMs) {
      this.resumedAtMs = nowMs;
    }
    this.lastTickMs = nowMs;
  }

  /** True when an answer received at nowMs may renew a lease. */
  accepts(nowMs: number): boolean {
    if (this.lastTickMs === null) return true;
    if (nowMs - this.lastTickMs > STALL_GAP_TICKS * this.rttMs) return false;
    return nowMs >= this.resumedAtMs + this.rttMs;
  }
}

/** Per-replica leadership view: lease contacts, the reported role, shard availability. */
export class ReplicaLeadership {
  /** Voter id → last answer of the current term, received at atMs. */
  private readonly contacts = new Map<number, { term: number; atMs: number }>();
  private current: { role: LeaderRole; term: number; leaderId: number } = {
    role: "none",
    term: 0,
    leaderId: 0,
  };
  /** The term this replica was last seen leading and its log's last index then (see point 2). */
  private leaderTerm = 0;
  private termStartIndex = 0;
  /** Engine tick at which this replica last knew a leader (or started). */
  private leaderSeenTick: number;
  private unavailable = false;

  /** Ticks without a known leader before shardUnavailable. */
  private readonly unavailableTicks: number;

  constructor(
    readonly shardId: number,
    readonly replicaId: number,
    opts: {
      /** Lease length: one election timeout, in milliseconds. */
      leaseMs: number;
      /** Election timeout in ticks. */
      electionRtt: number;
      /** Election timeouts without a known leader before shardUnavailable. */
      unavailableTimeouts: number;
      /** Engine tick at which the replica starts. */
      startTick: number;
    },
  ) {
    const { leaseMs, electionRtt, unavailableTimeouts } = opts;
    if (!(leaseMs > 0)) throw new RangeError(`ReplicaLeadership: leaseMs must be > 0, got ${leaseMs}`);
    if (!Number.isSafeInteger(electionRtt) || electionRtt < 1)
      throw new RangeError(`ReplicaLeadership: electionRtt must be a positive integer, got ${electionRtt}`);
    if (!Number.isSafeInteger(unavailableTimeouts) || unavailableTimeouts < 1) {
      throw new RangeError(
        `ReplicaLeadership: unavailableTimeouts must be a positive integer, got ${unavailableTimeouts}`,
      );
    }
    this.leaseMs = leaseMs;
    this.unavailableTimeouts = unavailableTimeouts;
    this.unavailableTicks = unavailableTimeouts * electionRtt;
    this.leaderSeenTick = opts.startTick;
  }

  readonly leaseMs: number;
  readonly unavailableTimeouts: number;

  /** The role, term and leader last reported. */
  get reported(): { role: LeaderRole; term: number; leaderId: number } {
    return { ...this.current };
  }

  /** A follower or witness answered this replica's Replicate or Heartbeat of term at atMs. */
  noteContact(from: number, term: number, atMs: number): void {
    const seen = this.contacts.get(from);
    if (seen !== undefined && (seen.term > term || (seen.term === term && seen.atMs >= atMs))) return;
    this.contacts.set(from, { term, atMs });
  }

  /** True when a quorum of voters (this replica included) answered in term within the lease. */
  hasQuorumContact(facts: LeadershipFacts, nowMs: number): boolean {
    let heard = facts.isVoter(facts.replicaId) ? 1 : 0;
    for (const [id, c] of this.contacts) {
      if (
        id !== facts.replicaId &&
        c.term === facts.term &&
        nowMs - c.atMs < this.leaseMs &&
        facts.isVoter(id)
      )
        heard++;
    }
    return heard >= facts.quorum;
  }

  /** The role these facts give now (see the module comment). */
  private roleOf(
    facts: LeadershipFacts,
    nowMs: number,
  ): { role: LeaderRole; term: number; leaderId: number } {
    if (facts.isLeader) {
      if (this.leaderTerm !== facts.term) {
        this.leaderTerm = facts.term;
        this.termStartIndex = facts.lastIndex;
      }
      const committedInTerm = facts.commit >= this.termStartIndex;
      if (committedInTerm && this.hasQuorumContact(facts, nowMs))
        return { role: "leader", term: facts.term, leaderId: facts.replicaId };
      return { role: "none", term: facts.term, leaderId: 0 };
    }
    if (facts.leaderId !== 0 && facts.leaderId !== facts.replicaId)
      return { role: "follower", term: facts.term, leaderId: facts.leaderId };
    return { role: "none", term: facts.term, leaderId: 0 };
  }

  /**
   * Re-evaluates the role; returns the roleChanged event to publish, or null. A change of
   * term alone is reported only for leader and follower (a campaigning replica's terms are
   * not news), so a replica's reported terms never decrease and each report names a reign.
   */
  evaluate(facts: LeadershipFacts, nowMs: number): RoleChangedEvent | null {
    this.forgetOlderTerms(facts.term);
    const next = this.roleOf(facts, nowMs);
    const last = this.current;
    const changed =
      next.role !== last.role ||
      next.leaderId !== last.leaderId ||
      (next.role !== "none" && next.term !== last.term);
    if (!changed) return null;
    if (next.term < last.term) {
      throw new Error(
        `shard ${this.shardId} replica ${this.replicaId}: term went back from ${last.term} to ${next.term}`,
      );
    }
    this.current = next;
    return { kind: "roleChanged", shardId: this.shardId, replicaId: this.replicaId, ...next };
  }

  /**
   * True when time alone may change what evaluate or availability report next: a reported
   * leader whose lease rests on other voters' answers (they age out), or no leader known and
   * shardUnavailable not reported yet. Otherwise only a step of the replica (its input) can,
   * and the engine leaves it out of the per-tick work while it is quiesced.
   */
  changesWithTime(facts: LeadershipFacts): boolean {
    if (facts.leaderId === 0 && !this.unavailable) return true;
    if (this.current.role !== "leader") return false;
    return !facts.isLeader || (facts.isVoter(facts.replicaId) ? 1 : 0) < facts.quorum;
  }

  /**
   * The engine steps the replica again after leaving it out of the per-tick work at engine
   * tick `tick` or before: it knew a leader all that time (changesWithTime was false), so the
   * time without one counts from now, as it would had it been evaluated on every tick.
   */
  resumed(tick: number): void {
    if (!this.unavailable) this.leaderSeenTick = tick;
  }

  /** The replica stops here: "none" if it reported anything else. */
  stop(): RoleChangedEvent | null {
    if (this.current.role === "none") return null;
    this.current = { role: "none", term: this.current.term, leaderId: 0 };
    return { kind: "roleChanged", shardId: this.shardId, replicaId: this.replicaId, ...this.current };
  }

  /** Shard availability as this replica sees it at engine tick `tick`; an event when it flips. */
  availability(facts: LeadershipFacts, tick: number): ShardUnavailableEvent | ShardAvailableEvent | null {
    if (facts.leaderId !== 0) {
      this.leaderSeenTick = tick;
      if (!this.unavailable) return null;
      this.unavailable = false;
      const base = { shardId: this.shardId, replicaId: this.replicaId, term: facts.term };
      return { kind: "shardAvailable", ...base, leaderId: facts.leaderId };
    }
    if (this.unavailable || tick - this.leaderSeenTick < this.unavailableTicks) return null;
    this.unavailable = true;
    return {
      kind: "shardUnavailable",
      shardId: this.shardId,
      replicaId: this.replicaId,
      term: facts.term,
      electionTimeouts: this.unavailableTimeouts,
    };
  }

  private forgetOlderTerms(term: number): void {
    for (const [id, c] of this.contacts) if (c.term < term) this.contacts.delete(id);
  }
}
