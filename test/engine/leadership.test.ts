// The leadership view hooks act on (src/engine/leadership.ts), driven with explicit times.
import { describe, expect, test } from "bun:test";
import { ReplicaLeadership, STALL_GAP_TICKS, StallGuard } from "../../src/engine/leadership.ts";
import type { LeadershipFacts } from "../../src/raft/peer.ts";

const LEASE_MS = 1000;

function view() {
  return new ReplicaLeadership(1, 1, {
    leaseMs: LEASE_MS,
    electionRtt: 10,
    unavailableTimeouts: 3,
    startTick: 0,
  });
}

/** Replica 1 of a shard whose voters are 1, 2, 3 (quorum 2) unless told otherwise. */
function facts(over: Partial<LeadershipFacts> = {}): LeadershipFacts {
  const voters = new Set([1, 2, 3]);
  return {
    replicaId: 1,
    isLeader: true,
    term: 5,
    leaderId: 1,
    commit: 10,
    lastIndex: 10,
    quorum: 2,
    isVoter: (id) => voters.has(id),
    ...over,
  };
}

const role = (v: ReplicaLeadership, f: LeadershipFacts, nowMs: number) => {
  const e = v.evaluate(f, nowMs);
  return e === null ? null : `${e.role}/${e.term}/${e.leaderId}`;
};

describe("ReplicaLeadership", () => {
  test("a Raft leader is not reported leader before a quorum answered it in its term", () => {
    const v = view();
    expect(role(v, facts(), 0)).toBeNull(); // still none (term changes of "none" are not news)
    v.noteContact(2, 5, 10);
    expect(role(v, facts(), 10)).toBe("leader/5/1");
  });

  test("a leader is reported only once its commit index reaches the last index it had when first seen leading", () => {
    const v = view();
    v.noteContact(2, 5, 10);
    // Elected in term 5 with entries up to 12 (its no-op at 12); committed only up to 9.
    expect(role(v, facts({ commit: 9, lastIndex: 12 }), 10)).toBeNull();
    expect(role(v, facts({ commit: 11, lastIndex: 14 }), 11)).toBeNull();
    expect(role(v, facts({ commit: 12, lastIndex: 14 }), 12)).toBe("leader/5/1");
  });

  test("a new term as leader needs its own commit again", () => {
    const v = view();
    v.noteContact(2, 5, 10);
    expect(role(v, facts({ commit: 10, lastIndex: 10 }), 10)).toBe("leader/5/1");
    v.noteContact(2, 6, 20);
    expect(role(v, facts({ term: 6, commit: 10, lastIndex: 11 }), 20)).toBe("none/6/0");
    expect(role(v, facts({ term: 6, commit: 11, lastIndex: 11 }), 21)).toBe("leader/6/1");
  });

  test("the lease runs out one election timeout after the last quorum answer, and renews in the same term", () => {
    const v = view();
    v.noteContact(2, 5, 100);
    expect(role(v, facts(), 100)).toBe("leader/5/1");
    expect(role(v, facts(), 100 + LEASE_MS - 1)).toBeNull();
    expect(role(v, facts(), 100 + LEASE_MS)).toBe("none/5/0");
    v.noteContact(3, 5, 1200);
    expect(role(v, facts(), 1200)).toBe("leader/5/1");
  });

  test("answers of an earlier term, from non-voters, or older than a newer one do not count", () => {
    const v = view();
    v.noteContact(2, 4, 10); // a previous reign
    v.noteContact(7, 5, 10); // not a voter
    expect(role(v, facts(), 10)).toBeNull();
    v.noteContact(2, 5, 50);
    v.noteContact(2, 5, 20); // late, older news: ignored
    expect(role(v, facts(), 50)).toBe("leader/5/1");
    expect(role(v, facts(), 50 + LEASE_MS)).toBe("none/5/0");
  });

  test("five voters need two answers besides the leader's own", () => {
    const voters = new Set([1, 2, 3, 4, 5]);
    const f = facts({ quorum: 3, isVoter: (id) => voters.has(id) });
    const v = view();
    v.noteContact(2, 5, 10);
    expect(role(v, f, 10)).toBeNull();
    v.noteContact(4, 5, 11);
    expect(role(v, f, 11)).toBe("leader/5/1");
  });

  test("a single-voter shard's leader leads without answers", () => {
    const v = view();
    expect(role(v, facts({ quorum: 1, isVoter: (id) => id === 1 }), 0)).toBe("leader/5/1");
  });

  test("followers report the leader they know; a new term of the same role is news, a new term of none is not", () => {
    const v = view();
    expect(role(v, facts({ isLeader: false, leaderId: 2, term: 5 }), 0)).toBe("follower/5/2");
    expect(role(v, facts({ isLeader: false, leaderId: 2, term: 6 }), 0)).toBe("follower/6/2");
    expect(role(v, facts({ isLeader: false, leaderId: 0, term: 7 }), 0)).toBe("none/7/0");
    expect(role(v, facts({ isLeader: false, leaderId: 0, term: 8 }), 0)).toBeNull();
    expect(role(v, facts({ isLeader: false, leaderId: 3, term: 8 }), 0)).toBe("follower/8/3");
  });

  test("a term going back is a programmer error", () => {
    const v = view();
    role(v, facts({ isLeader: false, leaderId: 2, term: 5 }), 0);
    expect(() => v.evaluate(facts({ isLeader: false, leaderId: 3, term: 4 }), 0)).toThrow(
      "term went back from 5 to 4",
    );
  });

  test("stop reports none once, only after another role", () => {
    const v = view();
    expect(v.stop()).toBeNull();
    role(v, facts({ isLeader: false, leaderId: 2 }), 0);
    expect(v.stop()).toMatchObject({ role: "none", term: 5, leaderId: 0 });
    expect(v.stop()).toBeNull();
  });

  test("shardUnavailable after N election timeouts without a leader, shardAvailable when one is known again", () => {
    const v = view(); // 3 timeouts of 10 ticks
    const none = facts({ isLeader: false, leaderId: 0 });
    expect(v.availability(none, 29)).toBeNull();
    expect(v.availability(none, 30)).toMatchObject({ kind: "shardUnavailable", electionTimeouts: 3 });
    expect(v.availability(none, 31)).toBeNull();
    expect(v.availability(facts({ isLeader: false, leaderId: 2 }), 40)).toMatchObject({
      kind: "shardAvailable",
      leaderId: 2,
    });
    expect(v.availability(facts({ isLeader: false, leaderId: 2 }), 41)).toBeNull();
    expect(v.availability(none, 70)).toBeNull();
    expect(v.availability(none, 71)).toMatchObject({ kind: "shardUnavailable" });
  });

  test("bad options are refused", () => {
    const make = (o: Partial<{ leaseMs: number; electionRtt: number; unavailableTimeouts: number }>) => () =>
      new ReplicaLeadership(1, 1, { leaseMs: 1, electionRtt: 1, unavailableTimeouts: 1, startTick: 0, ...o });
    expect(make({ leaseMs: 0 })).toThrow("leaseMs");
    expect(make({ electionRtt: 1.5 })).toThrow("electionRtt");
    expect(make({ unavailableTimeouts: 0 })).toThrow("unavailableTimeouts");
  });
});

describe("StallGuard", () => {
  const RTT = 100;

  test("answers count while the engine ticks on time", () => {
    const g = new StallGuard(RTT);
    expect(g.accepts(0)).toBe(true);
    g.onTick(100);
    g.onTick(200);
    expect(g.accepts(250)).toBe(true);
    expect(g.accepts(200 + STALL_GAP_TICKS * RTT)).toBe(true);
  });

  test("answers arriving while the engine has not ticked for longer than the gap do not count", () => {
    const g = new StallGuard(RTT);
    g.onTick(100);
    expect(g.accepts(100 + STALL_GAP_TICKS * RTT + 1)).toBe(false);
  });

  test("after a stall, answers within one tick of the first tick do not count (they may be old news)", () => {
    const g = new StallGuard(RTT);
    g.onTick(100);
    g.onTick(2000); // stalled for 1.9 s
    expect(g.accepts(2000)).toBe(false);
    expect(g.accepts(2000 + RTT - 1)).toBe(false);
    g.onTick(2100);
    expect(g.accepts(2100)).toBe(true);
  });
});
