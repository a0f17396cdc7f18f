// Containment: nothing a peer sends may crash a replica. Random well-formed messages (every
// field a valid value, but no promise that the sender follows the protocol) from members and
// strangers are stepped into a replica in every role, and after each one no throw escaped and
// the replica's own invariants hold. LONGBOAT_FUZZ_STEPS sets the messages per role (3000;
// 30,000 per role also passes). A committed config change giving the replica a role it cannot
// take ends a run: the engine stops that replica (RoleConflictError), not the host.
import { describe, expect, test } from "bun:test";
import type { RaftConfig } from "../../src/raft/config.ts";
import { Role, roleName } from "../../src/raft/config.ts";
import { decodeConfigChange, encodeConfigChange } from "../../src/raft/configchange.ts";
import {
  ConfigChangeType,
  type Entry,
  EntryType,
  emptyMembership,
  type Membership,
  type Message,
  MessageType,
  makeEntry,
  makeMessage,
  type SnapshotMeta,
} from "../../src/raft/types.ts";
import { MembershipManager } from "../../src/rsm/membership.ts";
import { RoleConflictError } from "../../src/raft/membership.ts";
import { member, Network, TestRng } from "./network.ts";

const STEPS = Number(process.env.LONGBOAT_FUZZ_STEPS ?? 3000);
const MT = MessageType;

/** Every type that may cross the wire (the transport drops local ones). */
const WIRE_TYPES = [
  MT.NoOP,
  MT.Ping,
  MT.Pong,
  MT.Propose,
  MT.Replicate,
  MT.ReplicateResp,
  MT.RequestVote,
  MT.RequestVoteResp,
  MT.InstallSnapshot,
  MT.Heartbeat,
  MT.HeartbeatResp,
  MT.ReadIndex,
  MT.ReadIndexResp,
  MT.Quiesce,
  MT.LeaderTransfer,
  MT.TimeoutNow,
  MT.RateLimit,
  MT.RequestPreVote,
  MT.RequestPreVoteResp,
];

/** Full members 1–3, non-voting 4, witness 5; 6 and 9 are strangers. */
const SENDERS = [1, 2, 3, 4, 5, 6, 9];

interface Setup {
  name: string;
  net: Network;
  id: number;
  role: Role;
}

/** A shard of full members 1–3 with non-voting 4 and witness 5 joined, leader elected. */
function shard(config: Partial<RaftConfig>, seed: number): Network {
  const net = Network.bootstrap([1, 2, 3], config, seed);
  net.campaign(1);
  net.configChange(1, { type: ConfigChangeType.AddNonVoting, replicaId: 4 });
  net.addNode(4, { config: { ...config, isNonVoting: true } });
  net.configChange(1, { type: ConfigChangeType.AddWitness, replicaId: 5 });
  net.addNode(5, { config: { ...config, isWitness: true } });
  net.propose(1, "a", "b");
  net.tickAll(3);
  return net;
}

/** Ticks id, cut off from everyone, until it reaches role. */
function isolatedUntil(net: Network, id: number, role: Role): void {
  net.isolate(id);
  for (let i = 0; i < 100 && net.raft(id).role !== role; i++) net.tickAll(1);
  if (net.raft(id).role !== role) throw new Error(`replica ${id} never became ${roleName(role)}`);
}

function setups(seed: number): Setup[] {
  const out: Setup[] = [];
  for (const preVote of [true, false]) {
    const tag = `preVote ${preVote ? "on" : "off"}`;
    const make = () => shard({ preVote, checkQuorum: true }, seed);
    out.push({ name: `leader, ${tag}`, net: make(), id: 1, role: Role.Leader });
    out.push({ name: `follower, ${tag}`, net: make(), id: 2, role: Role.Follower });
    out.push({ name: `non-voting, ${tag}`, net: make(), id: 4, role: Role.NonVoting });
    out.push({ name: `witness, ${tag}`, net: make(), id: 5, role: Role.Witness });
    const campaigning = make();
    const role = preVote ? Role.PreVoteCandidate : Role.Candidate;
    isolatedUntil(campaigning, 3, role);
    out.push({ name: `${roleName(role)}, ${tag}`, net: campaigning, id: 3, role });
  }
  return out;
}

/** A random value near `around` (0 floor), rarely anything. */
function near(rng: TestRng, around: number, spread = 3): number {
  if (rng.nextInt(200) === 0) return rng.nextInt(1 << 20);
  return Math.max(0, around + rng.nextInt(2 * spread + 1) - spread);
}

function randomConfigChange(rng: TestRng): Uint8Array {
  const types = [
    ConfigChangeType.AddNode,
    ConfigChangeType.RemoveNode,
    ConfigChangeType.AddNonVoting,
    ConfigChangeType.AddWitness,
  ];
  const replicaId = 1 + rng.nextInt(7);
  return encodeConfigChange({
    configChangeId: rng.nextInt(2) === 0 ? 0 : rng.nextInt(20),
    type: types[rng.nextInt(types.length)]!,
    replicaId,
    address: `n${replicaId}`,
    initialize: rng.nextInt(4) === 0,
  });
}

function randomEntry(rng: TestRng, index: number, term: number): Entry {
  const kind = rng.nextInt(10);
  if (kind === 0)
    return makeEntry({ index, term, type: EntryType.ConfigChange, cmd: randomConfigChange(rng) });
  if (kind === 1) return makeEntry({ index, term, type: EntryType.Metadata });
  const cmd = new Uint8Array(rng.nextInt(4)).map(() => rng.nextInt(256));
  return makeEntry({ index, term, cmd, key: rng.nextInt(3), proposerId: rng.nextInt(4), proposerEpoch: 1 });
}

/** Entries after (logIndex, logTerm): mostly as a leader would send them, sometimes disordered. */
function randomEntries(rng: TestRng, logIndex: number, logTerm: number, term: number): Entry[] {
  const count = rng.nextInt(4);
  const out: Entry[] = [];
  let t = logTerm;
  for (let i = 0; i < count; i++) {
    if (rng.nextInt(3) === 0) t = Math.min(term, t + 1);
    const ordered = rng.nextInt(5) !== 0;
    out.push(
      randomEntry(rng, ordered ? logIndex + 1 + i : near(rng, logIndex + 1 + i), ordered ? t : near(rng, t)),
    );
  }
  return out;
}

function randomMembership(rng: TestRng): Membership {
  const m = emptyMembership();
  m.configChangeId = rng.nextInt(30);
  for (const id of [1, 2, 3, 4, 5, 6]) {
    const where = rng.nextInt(5);
    if (where <= 1) m.addresses.push(member(id));
    else if (where === 2) m.nonVotings.push(member(id));
    else if (where === 3) m.witnesses.push(member(id));
  }
  if (rng.nextInt(4) === 0) m.removed.push(6);
  return m;
}

function randomSnapshot(rng: TestRng, lastIndex: number, term: number): SnapshotMeta {
  return {
    shardId: 1,
    replicaId: 1,
    index: near(rng, lastIndex, 4),
    term: near(rng, term, 1),
    membership: rng.nextInt(8) === 0 ? null : randomMembership(rng),
    filePath: "fuzz",
    fileSizeBytes: 10,
    witness: rng.nextInt(2) === 0,
    dummy: false,
    onDiskIndex: 0,
    app: "test",
    checksum: 0,
  };
}

/** Mostly the replica's own term (as a live leader's messages are), sometimes another. */
function randomTerm(rng: TestRng, current: number): number {
  const x = rng.nextInt(20);
  if (x < 14) return current;
  if (x < 16) return current + 1;
  if (x < 19) return Math.max(0, current - 1 - rng.nextInt(2));
  return near(rng, current, 3);
}

function randomMessage(rng: TestRng, net: Network, id: number): Message {
  const r = net.raft(id);
  const type = WIRE_TYPES[rng.nextInt(WIRE_TYPES.length)]!;
  const lastIndex = r.log.lastIndex();
  const request = type === MT.Propose || type === MT.ReadIndex || type === MT.LeaderTransfer;
  const term = request ? 0 : randomTerm(rng, r.term);
  const logIndex = rng.nextInt(2) === 0 ? lastIndex : near(rng, lastIndex);
  const known = r.log.termOrNone(logIndex);
  const logTerm = known >= 0 && rng.nextInt(3) !== 0 ? known : near(rng, r.term, 1);
  return makeMessage({
    type,
    to: id,
    from: SENDERS[rng.nextInt(SENDERS.length)]!,
    shardId: 1,
    term,
    logTerm,
    logIndex,
    commit: near(rng, r.log.committed, 4),
    reject: rng.nextInt(3) === 0,
    hint: rng.nextInt(3) === 0 ? 0 : near(rng, lastIndex),
    hintHigh: rng.nextInt(3) === 0 ? 0 : near(rng, r.term, 1),
    entries:
      type === MT.Replicate || type === MT.Propose
        ? randomEntries(rng, logIndex, logTerm, Math.max(term, 1))
        : [],
    snapshot: type === MT.InstallSnapshot ? randomSnapshot(rng, lastIndex, term) : null,
  });
}

/** What the replica promised so far: checked after every step. */
class Invariants {
  private term = 0;
  private vote = 0;
  private committed = 0;
  private readonly committedTerms = new Map<number, number>();

  constructor(
    private readonly net: Network,
    private readonly id: number,
    private readonly startRole: Role,
  ) {
    this.observe();
  }

  observe(): void {
    const r = this.net.raft(this.id);
    this.term = r.term;
    this.vote = r.vote;
    this.committed = r.log.committed;
    for (let i = Math.max(r.log.firstIndex(), this.committed - 8); i <= this.committed; i++) {
      const t = r.log.termOrNone(i);
      if (t >= 0 && !this.committedTerms.has(i)) this.committedTerms.set(i, t);
    }
  }

  check(): void {
    const r = this.net.raft(this.id);
    expect(r.term).toBeGreaterThanOrEqual(this.term);
    if (r.term === this.term && this.vote !== 0) expect(r.vote).toBe(this.vote); // one vote per term
    expect(r.log.committed).toBeGreaterThanOrEqual(this.committed);
    expect(r.log.committed).toBeLessThanOrEqual(r.log.lastIndex());
    for (const [index, term] of this.committedTerms) {
      const now = r.log.termOrNone(index);
      if (now >= 0 && index > (r.log.snapshot()?.index ?? 0))
        expect({ index, term: now }).toEqual({ index, term });
    }
    if (this.startRole === Role.Witness) expect(r.role).toBe(Role.Witness);
    if (r.role === Role.Leader || r.role === Role.Candidate || r.role === Role.PreVoteCandidate) {
      expect(r.remotes.has(this.id)).toBe(true); // only a full member campaigns or leads
    }
    this.observe();
  }
}

/**
 * Drives the replica as the engine does: persist, apply (config changes through the state
 * machine's membership rules, as src/rsm does, before the core sees them), hand back.
 */
function settle(net: Network, id: number, members: MembershipManager): "stopped" | undefined {
  const node = net.node(id);
  for (let round = 0; round < 10 && node.peer.hasUpdate(true); round++) {
    const u = node.peer.getUpdate(true, node.appliedIndex);
    if (u.snapshot !== null) {
      node.storage.applySnapshot(u.snapshot);
      node.appliedIndex = u.snapshot.index;
      if (u.snapshot.membership) members.set(u.snapshot.membership);
      node.peer.restoreRemotes(u.snapshot);
    }
    node.storage.append(u.entriesToSave);
    if (u.state !== null) node.storage.setState(u.state);
    for (const e of u.committedEntries) {
      node.appliedIndex = e.index;
      if (e.type !== EntryType.ConfigChange) continue;
      let accepted = false;
      try {
        accepted = members.apply(decodeConfigChange(e.cmd), e.index).accepted;
      } catch {
        accepted = false; // undecodable: the state machine manager rejects it the same way
      }
      if (!accepted) {
        node.peer.rejectConfigChange();
        continue;
      }
      try {
        node.peer.applyConfigChange(decodeConfigChange(e.cmd));
      } catch (error) {
        // The engine stops such a replica (the shard gave it a role it cannot take): the run ends.
        if (error instanceof RoleConflictError) return "stopped";
        throw error;
      }
    }
    node.peer.commitUpdate(u);
  }
  net.queue = [];
  return undefined;
}

describe("a replica stepped with random well-formed messages", () => {
  for (const seed of [1, 2, 3]) {
    for (const s of setups(seed)) {
      test(`${s.name} (seed ${seed}): no throw escapes and its invariants hold`, () => {
        const { net, id } = s;
        expect(net.raft(id).role).toBe(s.role);
        net.recover();
        net.queue = [];
        const members = new MembershipManager(net.membershipOf(net.raft(id)), true);
        const invariants = new Invariants(net, id, s.role);
        const rng = new TestRng(seed * 7919 + id);
        const seen = { refused: 0, terms: new Set<number>(), appended: 0 };
        for (let step = 0; step < STEPS; step++) {
          const m = randomMessage(rng, net, id);
          const lastBefore = net.raft(id).log.lastIndex();
          try {
            if (net.peer(id).step(m) !== null) seen.refused++;
            if (net.raft(id).log.lastIndex() > lastBefore) seen.appended++;
            seen.terms.add(net.raft(id).term);
            if (rng.nextInt(4) === 0) net.peer(id).tick();
            if (settle(net, id, members) === "stopped") break;
          } catch (error) {
            throw new Error(
              `step ${step} (${s.name}, seed ${seed}): ${(error as Error).stack}\nmessage: ${JSON.stringify(m)}`,
            );
          }
          invariants.check();
        }
        // Not vacuous: most messages were taken, the log grew, and terms moved on.
        expect(seen.refused).toBeLessThan(STEPS / 2);
        expect(seen.appended).toBeGreaterThan(STEPS / 300);
        expect(seen.terms.size).toBeGreaterThan(3);
      });
    }
  }
});
