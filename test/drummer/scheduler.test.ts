import { describe, expect, test } from "bun:test";
import { shardStatuses } from "../../src/drummer/health.ts";
import { schedule } from "../../src/drummer/scheduler/schedule.ts";
import { DecisionKind, DecisionState } from "../../src/drummer/types.ts";
import { DEAD_MS, Fleet } from "./fleet.ts";

/** A fleet of `hosts` NodeHosts (h1..hN at port 7001, in the given regions) with shards launched and running. */
function running(shardIds: number[], hosts: number, regions: string[] = ["r1"]): Fleet {
  const f = new Fleet(shardIds.map((shardId) => ({ shardId })));
  for (let i = 1; i <= hosts; i++) f.addHost(`h${i}:7001`, regions[(i - 1) % regions.length]);
  f.cycle(3);
  return f;
}

describe("launch", () => {
  test("places every shard on distinct hosts, least loaded first", () => {
    const f = new Fleet([1, 2, 3, 4].map((shardId) => ({ shardId })));
    for (let i = 1; i <= 6; i++) f.addHost(`h${i}:7001`);
    f.pass();
    expect(f.last!.step.decisions.every((d) => d.kind === DecisionKind.Create)).toBe(true);
    for (const s of [1, 2, 3, 4]) expect(new Set(f.members(s)).size).toBe(3);
    const load = new Map<string, number>();
    for (const s of [1, 2, 3, 4]) for (const a of f.members(s)) load.set(a, (load.get(a) ?? 0) + 1);
    expect(Math.max(...load.values()) - Math.min(...load.values())).toBeLessThanOrEqual(1);
    f.execute();
    f.advance(1000);
    f.pass();
    expect(f.state.inFlight.size).toBe(0);
    expect(f.state.finished.filter((d) => d.state === DecisionState.Done).length).toBe(12);
  });

  test("honours region counts; the rest goes to regions not used yet", () => {
    const f = new Fleet([{ shardId: 1, regions: [{ region: "eu", count: 2 }] }]);
    f.addHost("a:7001", "eu");
    f.addHost("b:7001", "eu");
    f.addHost("c:7001", "eu");
    f.addHost("d:7001", "us");
    f.pass();
    expect(f.members(1)).toEqual(["a:7001", "b:7001", "d:7001"]);
  });

  test("an impossible placement names the shard and what is missing, and changes nothing", () => {
    const f = new Fleet([{ shardId: 7, regions: [{ region: "eu", count: 2 }] }, { shardId: 8 }]);
    f.addHost("a:7001", "eu");
    f.addHost("b:7001", "us");
    f.pass();
    expect(f.last!.problems.map((p) => p.message)).toEqual([
      "cannot place shard 7: needs 2 live NodeHosts in region eu, has 1 (a:7001)",
      "cannot place shard 8: needs 3 live NodeHosts, has 2 (a:7001, b:7001)",
    ]);
    expect(f.state.views.size).toBe(0);
    f.addHost("c:7001", "eu");
    f.pass();
    expect(f.state.views.size).toBe(2);
  });

  test("a launch bounded by launchesPerPassMax says there is more; one waiting on launchInFlightMax does not", () => {
    const f = new Fleet([1, 2, 3, 4, 5].map((shardId) => ({ shardId })));
    for (let i = 1; i <= 3; i++) f.addHost(`h${i}:7001`);
    f.config = { ...f.config, launchesPerPassMax: 2, launchInFlightMax: 9 };
    expect(f.pass().more).toBe(true);
    expect(f.state.views.size).toBe(2);
    // 6 creates in flight: one more shard (3 creates) fits under 9, then launches wait.
    expect(f.pass().more).toBe(false);
    expect(f.state.views.size).toBe(3);
    expect(f.state.inFlight.size).toBe(9);
    expect(f.pass().step.decisions.length).toBe(0);
    // The hosts start them: the pass that sees it ends the creates and launches the rest.
    f.execute();
    f.advance(1000);
    f.pass();
    expect(f.state.views.size).toBe(5);
    expect(f.last!.more).toBe(false);
  });

  test("launch deadline: a shard that cannot be placed for an hour never fails the DB (§11.1)", () => {
    const f = new Fleet([{ shardId: 1 }]);
    f.addHost("a:7001");
    for (let i = 0; i < 60; i++) {
      f.pass();
      f.advance(60_000);
    }
    expect(f.last!.problems[0]!.message).toMatch(/cannot place shard 1/);
    f.addHost("b:7001");
    f.addHost("c:7001");
    f.cycle(2);
    expect(f.members(1).length).toBe(3);
  });

  test("launch counts only live hosts, never dead ones it saw before (§11.10)", () => {
    const f = new Fleet([{ shardId: 1 }]);
    for (const a of ["a:7001", "b:7001", "c:7001"]) f.addHost(a);
    f.kill("c:7001");
    f.advance(DEAD_MS + 1);
    f.pass();
    expect(f.last!.problems[0]!.message).toBe(
      "cannot place shard 1: needs 3 live NodeHosts, has 2 (a:7001, b:7001)",
    );
  });

  test("nothing is placed before bootstrap", () => {
    const f = new Fleet([]);
    f.db.apply({ kind: "createShard", shard: { shardId: 1, app: "kv", replicaCount: 1, regions: [] } });
    const out = schedule({
      state: { ...f.state, bootstrapped: false },
      hosts: f.hosts,
      nowMs: f.nowMs,
      listeningSinceMs: 0,
      config: f.config,
    });
    expect(out.step.decisions).toEqual([]);
  });

  test("an initial member that cannot start is retried on its host while the shard has no quorum", () => {
    const f = new Fleet([{ shardId: 1 }]);
    for (const a of ["a:7001", "b:7001", "c:7001"]) f.addHost(a);
    f.ignore.add("create");
    f.pass();
    f.advance(DEAD_MS + 1);
    f.pass(); // the creates time out
    expect(f.state.finished.filter((d) => d.state === DecisionState.Failed).length).toBe(3);
    f.advance(DEAD_MS + 1);
    f.ignore.clear();
    f.pass();
    expect(f.kinds()).toEqual(["create 1/1@a:7001", "create 1/2@b:7001", "create 1/3@c:7001"]);
  });
});

describe("status", () => {
  test("a member that cannot start shows why, in the NodeHost's words", () => {
    const f = new Fleet([{ shardId: 1 }]);
    for (const a of ["a:7001", "b:7001", "c:7001"]) f.addHost(a);
    f.pass();
    for (const d of f.state.inFlight.values()) {
      f.hosts.get(d.executorAddress)!.results.set(d.decisionId, { ok: false, message: 'unknown app "nope"' });
    }
    f.advance(1000);
    f.pass(); // the creates end failed, with the hosts' messages
    const input = { state: f.state, hosts: f.hosts, nowMs: f.nowMs, listeningSinceMs: 0, config: f.config };
    const [status] = shardStatuses(input, [1], new Map());
    expect(status!.reason).toContain('replica 1 cannot start (a:7001: unknown app "nope")');
  });

  test("a shard's status carries its running leader's term and commit index as last reported, 0 without one", () => {
    const f = running([1], 3);
    const input = () => ({
      state: f.state,
      hosts: f.hosts,
      nowMs: f.nowMs,
      listeningSinceMs: 0,
      config: f.config,
    });
    const replicas = [...f.hosts.values()].flatMap((h) => h.replicas.filter((r) => r.shardId === 1));
    expect(replicas.length).toBe(3);
    expect(shardStatuses(input(), [1], new Map())[0]).toMatchObject({
      leaderReplicaId: 0,
      term: 0,
      commitIndex: 0,
    });
    replicas.forEach((r, i) => {
      r.term = 7;
      r.commitIndex = 40 + i; // followers behind or ahead: only the leader's counts
    });
    const leader = replicas[1]!;
    leader.isLeader = true;
    const [status] = shardStatuses(input(), [1], new Map());
    expect(status).toMatchObject({ leaderReplicaId: leader.replicaId, term: 7, commitIndex: 41 });
  });
});

describe("repair", () => {
  test("a dead host's replica is removed, replaced on a live host, started, and the shard is whole", () => {
    const f = running([1], 4);
    const before = f.members(1);
    const dead = before[2]!;
    f.kill(dead);
    f.advance(DEAD_MS + 1);
    f.pass();
    expect(f.kinds()).toEqual([`remove 1/3@${dead}`]);
    f.execute();
    f.advance(1000);
    f.pass(); // the view drops replica 3
    f.advance(1000);
    f.pass();
    expect(f.kinds()).toEqual(["add 1/new@h4:7001"]);
    f.cycle(6);
    expect(f.members(1).sort()).toEqual([...before.slice(0, 2), "h4:7001"].sort());
    expect(f.state.repairing.size).toBe(0);
    expect(f.state.counters).toMatchObject({ repairsStarted: 1, repairsDone: 1, repairsFailed: 0 });
    expect(f.state.views.get(1)!.unstartedReplicaIds).toEqual([]);
  });

  test("a shard that lost quorum is reported and never touched", () => {
    const f = running([1], 5);
    const [a, b] = f.members(1);
    f.kill(a!);
    f.kill(b!);
    f.advance(DEAD_MS + 1);
    for (let i = 0; i < 5; i++) f.cycle();
    expect(f.state.inFlight.size).toBe(0);
    expect(f.state.finished.filter((d) => d.kind !== DecisionKind.Create)).toEqual([]);
    expect(f.last!.problems[0]!.message).toMatch(
      /shard 1 has no quorum: 1 of 3 members run \(1 dead, 2 dead, 3 ok\); left alone/,
    );
  });

  test("at most --max-repairs shards are repaired at once; the others wait and follow", () => {
    const shards = Array.from({ length: 10 }, (_, i) => i + 1);
    const f = running(shards, 4);
    f.config.maxRepairs = 4;
    const victim = "h1:7001";
    const hit = shards.filter((s) => f.members(s).includes(victim));
    expect(hit.length).toBeGreaterThan(4);
    f.kill(victim);
    f.advance(DEAD_MS + 1);
    let peak = 0;
    for (let i = 0; i < 80; i++) {
      f.cycle();
      peak = Math.max(peak, f.state.repairing.size);
      expect(f.state.repairing.size).toBeLessThanOrEqual(4);
    }
    expect(peak).toBe(4);
    expect(f.last!.problems).toEqual([]);
    for (const s of shards) expect(f.members(s)).not.toContain(victim);
    expect(f.state.counters.repairsDone).toBe(hit.length);
  });

  test("a repair that cannot place its next step says why and frees its --max-repairs slot", () => {
    // Three shards on three hosts, one slot: once h3 is dead, no host is left to add a replica on.
    const f = running([1, 2, 3], 3);
    f.config.maxRepairs = 1;
    f.kill("h3:7001");
    f.advance(DEAD_MS + 1);
    f.cycle(3); // shard 1 takes the slot and removes its dead member; then its add cannot be placed
    const stop = f.last!.problems.find((p) => p.shardId === 1)?.message ?? "";
    expect(stop).toMatch(/^cannot add a replica to shard 1: no live NodeHost .*its repair stops/);
    expect(f.state.repairing.has(1)).toBe(false);
    expect(f.state.counters.repairsStopped).toBeGreaterThanOrEqual(1);
    // The freed slot goes to the next shard, and so on: no shard waits for a slot for ever.
    f.cycle(12);
    for (const s of [1, 2, 3]) expect(f.members(s)).toEqual(["h1:7001", "h2:7001"]);
    expect(f.state.repairing.size).toBe(0);
    expect(f.state.counters.repairsStopped).toBe(3);
    const input = { state: f.state, hosts: f.hosts, nowMs: f.nowMs, listeningSinceMs: 0, config: f.config };
    const [status] = shardStatuses(input, [1], new Map(f.last!.problems.map((p) => [p.shardId, p])));
    expect(status!.reason).toContain("cannot add a replica to shard 1: no live NodeHost");
    expect(f.last!.problems.some((p) => p.message.includes("waits for a slot"))).toBe(false);
    // A host to add on: the repairs start again, one slot at a time, and the shards are whole.
    f.addHost("h4:7001");
    for (let i = 0; i < 30; i++) {
      f.cycle();
      expect(f.state.repairing.size).toBeLessThanOrEqual(1);
    }
    for (const s of [1, 2, 3]) expect(f.members(s)).toEqual(["h1:7001", "h2:7001", "h4:7001"]);
    expect(f.state.counters.repairsDone).toBe(3);
  });

  test("restore comes before repair: a host back with its logs gets its replicas restarted, not replaced", () => {
    const f = running([1, 2], 3);
    f.kill("h1:7001");
    f.advance(DEAD_MS / 2);
    f.restart("h1:7001");
    f.pass();
    expect(f.kinds()).toEqual(["restore 1/1@h1:7001", "restore 2/1@h1:7001"]);
    f.cycle(2);
    expect(
      f.state.finished.filter((d) => d.kind === DecisionKind.Restore && d.state === DecisionState.Done)
        .length,
    ).toBe(2);
  });

  test("a replacement goes to the dead member's region first", () => {
    const f = running([1], 6, ["eu", "us", "ap"]);
    const members = f.members(1);
    const dead = members.find((a) => f.hosts.get(a)!.region === "us")!;
    f.kill(dead);
    f.advance(DEAD_MS + 1);
    f.cycle(8);
    const added = f.members(1).find((a) => !members.includes(a))!;
    expect(f.hosts.get(added)!.region).toBe("us");
  });

  test("a replacement goes to the region the shard's counts miss, even when other regions are less loaded (§11.16)", () => {
    const f = new Fleet([
      { shardId: 1, regions: [{ region: "us", count: 1 }] },
      { shardId: 2, replicaCount: 1, regions: [{ region: "us", count: 1 }] },
    ]);
    f.addHost("eu1:7001", "eu");
    f.addHost("eu2:7001", "eu");
    f.addHost("eu3:7001", "eu");
    f.addHost("us1:7001", "us");
    f.addHost("us2:7001", "us");
    f.cycle(3);
    const usMember = f.members(1).find((a) => a.startsWith("us"))!;
    f.kill(usMember);
    f.advance(DEAD_MS + 1);
    f.cycle(8);
    expect(f.members(1).filter((a) => a.startsWith("us")).length).toBe(1);
    expect(f.members(1)).not.toContain(usMember);
  });

  test("a member beyond the replica count is removed (the reference kept 4 members for ever)", () => {
    const f = running([1], 4);
    const m = f.runningMembership(1)!;
    f.run(f.hosts.get("h4:7001")!, 1, 9, {
      cc: m.cc + 1,
      members: [...m.members, { replicaId: 9, raftAddress: "h4:7001" }],
    });
    f.setMembership(1, { cc: m.cc + 1, members: [...m.members, { replicaId: 9, raftAddress: "h4:7001" }] });
    f.cycle(3); // the view takes replica 9; a removal is decided; the view drops a member
    const removal = f.state.finished.find((d) => d.kind === DecisionKind.Remove)!;
    expect(removal).toMatchObject({ state: DecisionState.Done, reason: "4 members for 3 replicas" });
    expect(f.members(1).length).toBe(3);
  });

  test("a join that never reports fails after the decision timeout and is retried elsewhere (§11.4)", () => {
    const f = running([1], 5);
    f.kill(f.members(1)[2]!);
    f.advance(DEAD_MS + 1);
    f.cycle(4); // remove, view, add, view
    const addedAt = f.state.views.get(1)!.members.find((m) => m.replicaId === 4)!.raftAddress;
    f.ignore.add("join");
    f.cycle(2);
    expect(f.state.inFlight.size).toBe(1);
    f.advance(DEAD_MS + 1);
    f.ignore.clear();
    f.cycle(10);
    const view = f.state.views.get(1)!;
    expect(view.members.map((m) => m.replicaId)).not.toContain(4);
    expect(view.members.length).toBe(3);
    expect(f.members(1)).not.toContain(addedAt);
    expect(
      f.state.finished.some((d) => d.kind === DecisionKind.Join && d.state === DecisionState.Failed),
    ).toBe(true);
  });
});

describe("zombies", () => {
  test("a replica restored after its shard was repaired is a zombie: it is killed, once (§11.15)", () => {
    const f = running([1], 4);
    const dead = f.members(1)[0]!;
    f.kill(dead);
    f.advance(DEAD_MS + 1);
    f.cycle(8);
    expect(f.members(1)).not.toContain(dead);
    f.restart(dead);
    const stale = f.hosts.get(dead)!;
    f.run(stale, 1, 1, { cc: 3, members: [] });
    f.pass();
    expect(f.kinds()).toEqual([`kill 1/1@${dead}`]);
    f.execute();
    f.advance(1000);
    f.cycle(3);
    const kills = f.state.finished.filter((d) => d.kind === DecisionKind.Kill);
    expect(kills.map((d) => d.state)).toEqual([DecisionState.Done]);
    expect(stale.logsOnDisk.size).toBe(0);
  });

  test("a kill with no effect fails after the decision timeout, saying what the host still reports", () => {
    const f = running([1], 4);
    const dead = f.members(1)[0]!;
    f.kill(dead);
    f.advance(DEAD_MS + 1);
    f.cycle(8);
    f.restart(dead);
    f.run(f.hosts.get(dead)!, 1, 1, { cc: 3, members: [] });
    f.ignore.add("kill");
    f.pass();
    expect(f.kinds()).toEqual([`kill 1/1@${dead}`]);
    f.advance(DEAD_MS + 1);
    f.pass();
    const [kill] = f.state.finished.filter((d) => d.kind === DecisionKind.Kill);
    expect(kill!.state).toBe(DecisionState.Failed);
    expect(kill!.outcome).toContain("its host reports the replica running (in its last report, 0 ms ago)");
  });

  test("a replica reporting a newer membership than the view is not a zombie", () => {
    const f = running([1], 4);
    const m = f.runningMembership(1)!;
    const h4 = f.hosts.get("h4:7001")!;
    f.run(h4, 1, 9, { cc: m.cc + 1, members: [...m.members, { replicaId: 9, raftAddress: "h4:7001" }] });
    f.pass();
    expect(f.kinds()).toEqual([]);
    expect(f.state.views.get(1)!.members.map((x) => x.replicaId)).toContain(9);
  });

  test("a host whose replica was removed can host the shard again (§11.13)", () => {
    const f = running([1], 3);
    const dead = f.members(1)[2]!;
    f.kill(dead);
    f.advance(DEAD_MS + 1);
    f.cycle(3); // removed; no other host to add on
    expect(f.last!.problems[0]!.message).toMatch(/cannot add a replica to shard 1: no live NodeHost/);
    f.restart(dead);
    f.cycle(10);
    expect(f.members(1)).toContain(dead);
    expect(f.members(1).length).toBe(3);
  });
});

describe("leadership and liveness", () => {
  test("a new leader judges nobody dead before listening a full dead timeout (§11.2)", () => {
    const f = running([1], 4);
    f.kill(f.members(1)[0]!);
    f.advance(DEAD_MS * 3);
    f.listeningSinceMs = f.nowMs;
    const silent = f.members(1)[0]!;
    f.hosts.delete(silent); // a new leader never heard it
    f.cycle(5);
    expect(f.state.inFlight.size).toBe(0);
    f.advance(DEAD_MS);
    f.pass();
    expect(f.kinds()).toEqual([`remove 1/1@${silent}`]);
  });

  test("a host that reported once is alive, not failed, whatever the time (§11.3)", () => {
    const f = new Fleet([{ shardId: 1 }]);
    f.nowMs = 0;
    for (const a of ["a:7001", "b:7001", "c:7001"]) f.addHost(a);
    f.pass();
    expect(f.state.views.get(1)!.members.length).toBe(3);
  });

  test("a changed API address or region is recorded (§11.12)", () => {
    const f = running([1], 3);
    f.hosts.get("h1:7001")!.apiAddress = "h1:8001";
    f.pass();
    expect(f.state.hosts.get("h1:7001")!.apiAddress).toBe("h1:8001");
    f.hosts.get("h1:7001")!.apiAddress = "h1:8002";
    f.hosts.get("h1:7001")!.region = "r9";
    f.pass();
    expect(f.state.hosts.get("h1:7001")).toEqual({
      raftAddress: "h1:7001",
      apiAddress: "h1:8002",
      region: "r9",
    });
  });

  test("the scheduler is a pure function: the same input gives the same output", () => {
    const f = running([1, 2, 3], 5, ["a", "b"]);
    f.kill("h2:7001");
    f.advance(DEAD_MS + 1);
    const input = { state: f.state, hosts: f.hosts, nowMs: f.nowMs, listeningSinceMs: 0, config: f.config };
    expect(schedule(input)).toEqual(schedule(input));
  });

  test("a shard whose regions cannot be met is reported and the others still placed (§11.9)", () => {
    const f = new Fleet([{ shardId: 1, regions: [{ region: "mars", count: 1 }] }, { shardId: 2 }]);
    for (const a of ["a:7001", "b:7001", "c:7001"]) f.addHost(a);
    f.pass();
    expect(f.last!.problems.map((p) => p.shardId)).toEqual([1]);
    expect(f.members(2).length).toBe(3);
  });
});

describe("decision progress", () => {
  test("an executor's failure ends the decision at once, naming the host and its message", () => {
    const f = new Fleet([{ shardId: 1 }]);
    for (const a of ["a:7001", "b:7001", "c:7001"]) f.addHost(a);
    f.pass();
    const create = [...f.state.inFlight.values()][0]!;
    f.hosts
      .get(create.executorAddress)!
      .results.set(create.decisionId, { ok: false, message: 'unknown app "kv"' });
    f.advance(1000);
    f.pass();
    const ended = f.state.finished.find((d) => d.decisionId === create.decisionId)!;
    expect(ended).toMatchObject({
      state: DecisionState.Failed,
      outcome: `${create.executorAddress}: unknown app "kv"`,
    });
  });

  test("a decision whose executor dies fails without waiting for the timeout", () => {
    const f = running([1], 4);
    const [a, , c] = f.members(1);
    f.kill(c!);
    f.advance(DEAD_MS + 1);
    f.pass(); // remove replica 3 through the first running member
    const remove = [...f.state.inFlight.values()][0]!;
    expect(remove.executorAddress).toBe(a!);
    f.kill(a!);
    f.advance(DEAD_MS + 1);
    f.pass();
    expect(f.state.finished.at(-1)).toMatchObject({
      decisionId: remove.decisionId,
      state: DecisionState.Failed,
    });
    expect(f.state.finished.at(-1)!.outcome).toMatch(/which was to carry it out, is dead/);
  });
});
