/**
 * Randomised safety test. Each seed builds a 3–5 replica shard and runs random steps:
 * ticks, out-of-order / duplicated / lost deliveries, partitions, crashes (a replica reverts
 * to exactly what it persisted — what commitUpdate has been called for — and may even have
 * sent its leader Replicate messages before crashing mid-Update), restarts, snapshots with
 * log compaction, membership changes (add / remove replicas), leader transfers, reads and
 * proposals. After every step it asserts:
 *   - at most one leader per term;
 *   - log matching (same index and term ⇒ same prefix), checked every few steps;
 *   - a committed entry never changes;
 *   - every replica's applied sequence is a prefix of one history;
 *   - a ReadIndex answer is at least every index committed anywhere before the read began.
 * At the end the network heals and the shard must commit a final proposal on every member.
 *
 * LONGBOAT_SEED=n replays one seed (printed on failure). LONGBOAT_SAFETY_SEEDS=n runs more
 * seeds (default 600), LONGBOAT_SAFETY_STEPS=n more steps per seed (default 8000).
 * Teeth, checked by hand: granting votes without the up-to-date check fails at seed 1;
 * committing without the current-term check (Raft Figure 8) fails at seed 487 of 600.
 */
import { expect, test } from "bun:test";
import { Role } from "../../src/raft/config.ts";
import { ConfigChangeType, type Entry } from "../../src/raft/types.ts";
import { entry, Network, type TestNode, TestRng, text } from "./network.ts";

/** Membership changes add replicas up to this id. */
const MAX_REPLICA_ID = 8;
const SEEDS = Number(process.env.LONGBOAT_SAFETY_SEEDS ?? 600);
const STEPS = Number(process.env.LONGBOAT_SAFETY_STEPS ?? 8000);
/**
 * Wall-clock bound per step, for the test's limit (the work is SEEDS × STEPS): 600 × 8000
 * steps take about 10 s on an idle 2-core machine (2 µs each), 98 s at load average 30.
 */
const STEP_WALL_US_MAX = 60;

export class Checker {
  private leaderOfTerm = new Map<number, number>();
  private committed = new Map<number, number>(); // index → term
  private history = new Map<number, string>(); // index → term:payload of the applied entry
  private checkedCommit = new Map<number, number>();
  /** Read ctx.low → the highest index committed anywhere when the read was issued. */
  private reads = new Map<number, number>();
  private readsSeen = new WeakMap<TestNode, number>();
  private nextReadCtx = 1;
  readsChecked = 0;

  constructor(private readonly net: Network) {
    net.onApply = (node, e) => this.applied(node, e);
  }

  private applied(node: TestNode, e: Entry): void {
    const v = `${e.term}:${e.type}:${text(e)}`;
    const h = this.history.get(e.index);
    if (h === undefined) this.history.set(e.index, v);
    else if (h !== v) throw new Error(`node ${node.id} applied ${v} at ${e.index}, history has ${h}`);
  }

  /**
   * Issues a linearizable read on node: whatever was committed anywhere before the read
   * started must be visible, so the index it is answered with must be at least that.
   */
  issueRead(node: TestNode): void {
    let highest = 0;
    for (const i of this.committed.keys()) if (i > highest) highest = i;
    for (const n of this.net.nodes.values()) highest = Math.max(highest, n.raft.log.committed);
    const low = this.nextReadCtx++;
    this.reads.set(low, highest);
    node.peer.readIndex({ low, high: 0 });
  }

  private checkReads(step: number, n: TestNode): void {
    const seen = this.readsSeen.get(n) ?? 0;
    for (let i = seen; i < n.readyToReads.length; i++) {
      const r = n.readyToReads[i]!;
      const atLeast = this.reads.get(r.ctx.low);
      if (atLeast === undefined)
        throw new Error(`step ${step}: node ${n.id} got a read it never issued (${r.ctx.low})`);
      if (r.index < atLeast) {
        throw new Error(
          `step ${step}: read ${r.ctx.low} on node ${n.id} answered at ${r.index}, but ${atLeast} was committed before it started`,
        );
      }
      this.readsChecked++;
    }
    this.readsSeen.set(n, n.readyToReads.length);
  }

  check(step: number, withLogs: boolean): void {
    const live = [...this.net.nodes.values()].filter((n) => !n.crashed);
    for (const n of live) this.checkReads(step, n);
    for (const n of live) {
      const r = n.raft;
      if (r.role === Role.Leader) {
        const prev = this.leaderOfTerm.get(r.term);
        if (prev !== undefined && prev !== n.id) {
          throw new Error(`step ${step}: two leaders in term ${r.term}: ${prev} and ${n.id}`);
        }
        this.leaderOfTerm.set(r.term, n.id);
      }
      const from = Math.max(this.checkedCommit.get(n.id) ?? 0, r.log.firstIndex() - 1);
      for (let i = from + 1; i <= r.log.committed; i++) {
        const t = r.log.termOrNone(i);
        if (t < 0) continue;
        const known = this.committed.get(i);
        if (known === undefined) this.committed.set(i, t);
        else if (known !== t)
          throw new Error(`step ${step}: node ${n.id} committed term ${t} at ${i}, was ${known}`);
      }
      this.checkedCommit.set(n.id, r.log.committed);
    }
    if (withLogs) this.checkLogMatching(step, live);
  }

  /** Restarted replicas start their commit check over from what they persisted. */
  restarted(id: number): void {
    this.checkedCommit.delete(id);
  }

  private checkLogMatching(step: number, live: TestNode[]): void {
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        const la = live[a]!.raft.log;
        const lb = live[b]!.raft.log;
        const low = Math.max(la.firstIndex(), lb.firstIndex());
        let matched = false;
        for (let i = Math.min(la.lastIndex(), lb.lastIndex()); i >= low; i--) {
          const ta = la.termOrNone(i);
          const tb = lb.termOrNone(i);
          if (ta === tb) matched = true;
          else if (matched) {
            throw new Error(
              `step ${step}: logs of ${live[a]!.id} and ${live[b]!.id} match above ${i} but differ at ${i}`,
            );
          }
        }
      }
    }
  }
}

function runSeed(seed: number): void {
  const rng = new TestRng(seed);
  const size = 3 + rng.nextInt(3);
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const net = Network.bootstrap(
    ids,
    {
      electionRtt: 8,
      heartbeatRtt: 2,
      maxInflightMsgs: 1 + rng.nextInt(8),
      maxEntryBytesPerMessage: 512,
      preVote: rng.nextInt(4) > 0,
      checkQuorum: rng.nextInt(4) > 0,
    },
    seed,
  );
  net.recordSent = false;
  const checker = new Checker(net);
  let proposals = 0;
  for (let step = 0; step < STEPS; step++) {
    randomStep(net, rng, checker, () => `p${proposals++}`);
    checker.check(step, step % 5 === 0);
  }
  // Heal: every replica back, every link up; the shard must commit a final proposal everywhere.
  net.recover();
  for (const n of [...net.nodes.values()]) {
    if (n.crashed) {
      net.restart(n.id);
      checker.restarted(n.id);
    }
  }
  let done = false;
  for (let round = 0; round < 400 && !done; round++) {
    net.tickAll(1);
    const leaders = net.leaders();
    if (leaders.length === 1 && round % 20 === 0) net.propose(leaders[0]!, "final");
    done = leaders.length === 1 && members(net, leaders[0]!).every((n) => n.appliedData().includes("final"));
    checker.check(STEPS + round, true);
  }
  if (process.env.RAFT_STATS) {
    const n = [...net.nodes.values()];
    console.log(
      `seed ${seed}: size=${size} voters=${net.leaders().map((l) => [...net.raft(l).remotes.keys()].join("+"))} removed=${net.leaders().map((l) => [...net.raft(l).removed].join("+"))} maxTerm=${Math.max(...n.map((x) => x.raft.term))} applied=${n.map((x) => x.appliedIndex).join(",")} props=${proposals} reads=${checker.readsChecked} first=${n.map((x) => x.raft.log.firstIndex()).join(",")} queue=${net.queue.length} snaps=${net.sentCount[16] ?? 0} noop=${net.sentCount[4] ?? 0} prevote=${net.sentCount[26] ?? 0} dropped=${n.map((x) => x.droppedEntries.length).join(",")}`,
    );
  }
  if (!done) {
    const states = [...net.nodes.values()].map((n) => {
      const st = n.peer.status();
      const rem = [...n.raft.remotes].map(([id, r]) => `${id}:${r}`).join(" ");
      return `${n.id}: role=${st.role} term=${st.term} leader=${st.leaderId} commit=${st.commit} applied=${n.appliedIndex} last=${st.lastIndex} first=${n.raft.log.firstIndex()} skipped=${n.raft.campaignsSkipped} [${rem}]`;
    });
    throw new Error(`shard did not commit a proposal everywhere after healing:\n${states.join("\n")}`);
  }
}

/** The live replicas the leader counts as members (removed or never-added ones excluded). */
function members(net: Network, leader: number): TestNode[] {
  const r = net.raft(leader);
  return [...net.nodes.values()].filter((n) => !n.crashed && r.isKnown(n.id));
}

function randomStep(net: Network, rng: TestRng, checker: Checker, nextValue: () => string): void {
  const ids = [...net.nodes.keys()];
  const pick = () => ids[rng.nextInt(ids.length)]!;
  const live = () => ids.filter((id) => !net.node(id).crashed);
  const roll = rng.nextInt(1000);
  if (roll < 100) {
    const id = pick();
    if (!net.node(id).crashed) net.tick(id);
  } else if (roll < 470) {
    deliverRandom(net, rng);
  } else if (roll < 740) {
    net.collect(pick());
  } else if (roll < 800) {
    const l = live();
    if (l.length > 0) checker.issueRead(net.node(l[rng.nextInt(l.length)]!));
  } else if (roll < 804) {
    changeMembership(net, rng);
  } else if (roll < 805) {
    const l = live();
    if (l.length > 0) net.peer(l[rng.nextInt(l.length)]!).requestLeaderTransfer(pick());
  } else if (roll < 870) {
    const leaders = net.leaders();
    const l = leaders.length > 0 && rng.nextInt(4) > 0 ? leaders : live();
    if (l.length > 0) net.peer(l[rng.nextInt(l.length)]!).propose([entry(nextValue())]);
  } else if (roll < 885) {
    partition(net, rng, ids);
  } else if (roll < 915) {
    net.recover();
  } else if (roll < 925) {
    crash(net, rng, pick());
  } else if (roll < 950) {
    const down = ids.filter((id) => net.node(id).crashed);
    if (down.length > 0) {
      const id = down[rng.nextInt(down.length)]!;
      net.restart(id);
      checker.restarted(id);
    }
  } else if (roll < 960) {
    const id = pick();
    const n = net.node(id);
    if (
      !n.crashed &&
      n.raft.log.unpersistedSnapshot() === null &&
      n.appliedIndex > n.raft.log.firstIndex() + 5
    )
      net.snapshot(id, n.appliedIndex - rng.nextInt(3));
  } else if (roll < 990) {
    for (const id of live()) net.tick(id);
  } else {
    // a burst: every replica publishes its Update
    net.collectAll();
  }
}

/** Adds a fresh replica or removes a voter (keeping at least 3), proposed on the newest leader. */
function changeMembership(net: Network, rng: TestRng): void {
  const leaders = net.leaders().sort((a, b) => net.raft(b).term - net.raft(a).term);
  const l = leaders[0];
  if (l === undefined) return;
  const r = net.raft(l);
  if (rng.nextInt(2) === 0) {
    const id = Math.max(...net.nodes.keys()) + 1;
    if (id > MAX_REPLICA_ID) return;
    const { replicaId: _, ...config } = net.node(1).config;
    net.addNode(id, { config });
    net.peer(l).proposeConfigChange(
      {
        configChangeId: 0,
        type: ConfigChangeType.AddNode,
        replicaId: id,
        address: `n${id}`,
        initialize: false,
      },
      NO_TAG,
    );
  } else {
    const voters = [...r.remotes.keys()];
    if (voters.length <= 3) return;
    const id = voters[rng.nextInt(voters.length)]!;
    net.peer(l).proposeConfigChange(
      {
        configChangeId: 0,
        type: ConfigChangeType.RemoveNode,
        replicaId: id,
        address: "",
        initialize: false,
      },
      NO_TAG,
    );
  }
}

const NO_TAG = { key: 0, proposerId: 0, proposerEpoch: 0 };

function deliverRandom(net: Network, rng: TestRng): void {
  if (net.queue.length === 0) return;
  const i = rng.nextInt(Math.min(net.queue.length, 8)); // reordering within a window
  const m = net.queue[i]!;
  const r = rng.nextInt(100);
  if (r < 5) {
    net.queue.splice(i, 1);
    net.lost(m); // loss
    return;
  }
  if (r >= 10) net.queue.splice(i, 1); // else: duplicate (stays queued)
  net.deliver(m);
}

function partition(net: Network, rng: TestRng, ids: number[]): void {
  net.recover();
  const side = new Set(ids.filter(() => rng.nextInt(2) === 0));
  for (const a of ids) for (const b of ids) if (a < b && side.has(a) !== side.has(b)) net.cut(a, b);
}

/** Crash: sometimes mid-Update, after the leader's fast Replicate messages left but before persisting. */
function crash(net: Network, rng: TestRng, id: number): void {
  const n = net.node(id);
  if (n.crashed) return;
  if (rng.nextInt(2) === 0 && n.peer.hasUpdate(true)) {
    const u = n.peer.getUpdate(true, n.appliedIndex);
    net.enqueue(u.fastMessages); // u.messages wait for persistence, which never happens
  }
  net.crash(id);
}

const only = process.env.LONGBOAT_SEED;
const seeds = only !== undefined ? [Number(only)] : Array.from({ length: SEEDS }, (_, i) => i + 1);

test(
  `safety holds under loss, reordering, duplication, partitions, crashes and restarts (${seeds.length} seeds)`,
  () => {
    for (const seed of seeds) {
      try {
        runSeed(seed);
      } catch (e) {
        console.error(`safety failure with seed ${seed}; replay with LONGBOAT_SEED=${seed}`);
        if (process.env.RAFT_STATS) console.error((e as Error).stack);
        throw e;
      }
    }
    expect(seeds.length).toBeGreaterThan(0);
  },
  Math.max(120_000, (seeds.length * STEPS * STEP_WALL_US_MAX) / 1000),
);

test("the safety checker reports two leaders in one term", () => {
  const net = Network.bootstrap([1, 2, 3]);
  const checker = new Checker(net);
  net.campaign(1);
  checker.check(0, true);
  net.raft(2).role = Role.Leader;
  net.raft(2).term = net.raft(1).term;
  expect(() => checker.check(1, true)).toThrow(/two leaders in term/);
});

test("the safety checker reports a changed committed entry", () => {
  const net = Network.bootstrap([1, 2, 3]);
  const checker = new Checker(net);
  net.campaign(1);
  net.propose(1, "a");
  checker.check(0, true);
  const n3 = net.node(3);
  checker.restarted(3);
  const e = n3.storage.entries(n3.raft.log.committed, n3.raft.log.committed + 1, 1000)[0]!;
  e.term = 99;
  expect(() => checker.check(1, false)).toThrow(/committed term 99/);
});

test("the safety checker reports a read answered below an index committed before it began", () => {
  const net = Network.bootstrap([1, 2, 3]);
  const checker = new Checker(net);
  net.campaign(1);
  net.propose(1, "a");
  checker.check(0, false);
  checker.issueRead(net.node(1));
  net.node(1).readyToReads.push({ index: 1, ctx: { low: 1, high: 0 } });
  expect(() => checker.check(1, false)).toThrow(/answered at 1/);
});
