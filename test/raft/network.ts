/**
 * An etcd-style in-memory network of Peers for scenario tests: messages are queued and
 * delivered step by step or until quiet; links can be cut, replicas isolated, message types
 * ignored and a share of messages dropped. Each replica persists into a MemoryStorage and
 * "applies" committed entries into a list (its state machine history).
 */
import { type RaftConfig, validateRaftConfig } from "../../src/raft/config.ts";
import { decodeConfigChange } from "../../src/raft/configchange.ts";
import { MemoryStorage } from "../../src/raft/memorystorage.ts";
import { Peer } from "../../src/raft/peer.ts";
import type { Raft } from "../../src/raft/raft.ts";
import type { Rng } from "../../src/raft/storage.ts";
import {
  type ConfigChange,
  type Entry,
  EntryType,
  type Member,
  type Membership,
  type Message,
  MessageType,
  makeEntry,
  type SnapshotMeta,
} from "../../src/raft/types.ts";
import type { ReadCtx, ReadyToRead, Update } from "../../src/raft/update.ts";

/** mulberry32: a small seeded generator for tests. */
export class TestRng implements Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  nextInt(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
}

export function member(id: number): Member {
  return { replicaId: id, address: `n${id}` };
}

export function entry(data: string, fields: Partial<Entry> = {}): Entry {
  return makeEntry({ cmd: new TextEncoder().encode(data), ...fields });
}

export function text(e: Entry): string {
  return new TextDecoder().decode(e.cmd);
}

export interface NodeOptions {
  config?: Partial<RaftConfig>;
}

export class TestNode {
  peer: Peer;
  /** The state machine: every applied entry in order (Application entries with a payload only). */
  applied: Entry[] = [];
  appliedIndex = 0;
  readyToReads: ReadyToRead[] = [];
  droppedEntries: Entry[] = [];
  droppedReads: ReadCtx[] = [];
  updates: Update[] = [];
  crashed = false;
  /** When set, config changes are rejected instead of applied (RSM said no). */
  rejectConfigChanges = false;

  constructor(
    readonly id: number,
    readonly config: RaftConfig,
    readonly storage: MemoryStorage,
    readonly rng: Rng,
    peer: Peer,
  ) {
    this.peer = peer;
  }

  get raft(): Raft {
    return this.peer.raft;
  }

  /** Application payloads applied so far. */
  appliedData(): string[] {
    return this.applied.map(text);
  }
}

export class Network {
  readonly nodes = new Map<number, TestNode>();
  queue: Message[] = [];
  readonly rng: TestRng;
  private cuts = new Set<string>();
  private isolated = new Set<number>();
  private ignored = new Set<number>();
  private dropRates = new Map<string, number>();
  /** Every message that left a node, for assertions. */
  sent: Message[] = [];
  /** Snapshot contents (the applied history) by snapshot index. */
  private snapshotData = new Map<number, Entry[]>();
  /** Keep the whole update of every cycle on each node (tests of the Update itself). */
  keepUpdates = false;

  constructor(seed = 1) {
    this.rng = new TestRng(seed);
  }

  /** A network of newly bootstrapped full members `ids` (each starts with the same AddNode entries). */
  static bootstrap(ids: number[], config: Partial<RaftConfig> = {}, seed = 1): Network {
    const net = new Network(seed);
    for (const id of ids) net.addNode(id, { config, initialMembers: ids.map(member), newNode: true });
    net.stabilize();
    return net;
  }

  addNode(
    id: number,
    opts: {
      config?: Partial<RaftConfig>;
      initialMembers?: Member[];
      newNode?: boolean;
      storage?: MemoryStorage;
    },
  ): TestNode {
    const config = validateRaftConfig({
      shardId: 1,
      replicaId: id,
      electionRtt: 10,
      heartbeatRtt: 1,
      ...opts.config,
    });
    const storage = opts.storage ?? new MemoryStorage();
    const rng = new TestRng(this.rng.nextInt(1 << 30) + id);
    const peer = Peer.create({
      config,
      storage,
      rng,
      initialMembers: opts.initialMembers ?? [],
      newNode: opts.newNode ?? false,
      lastApplied: storage.snapshot()?.index ?? 0,
    });
    const node = new TestNode(id, config, storage, rng, peer);
    const snap = storage.snapshot();
    if (snap !== null) {
      node.applied = [...(this.snapshotData.get(snap.index) ?? [])];
      node.appliedIndex = snap.index;
    }
    this.nodes.set(id, node);
    return node;
  }

  node(id: number): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  peer(id: number): Peer {
    return this.node(id).peer;
  }

  raft(id: number): Raft {
    return this.node(id).peer.raft;
  }

  // ---- faults ----

  cut(a: number, b: number): void {
    this.cuts.add(`${a}-${b}`);
    this.cuts.add(`${b}-${a}`);
  }

  isolate(id: number): void {
    this.isolated.add(id);
  }

  ignore(type: number): void {
    this.ignored.add(type);
  }

  /** Drops a share (0..1) of messages from → to. */
  drop(from: number, to: number, share: number): void {
    this.dropRates.set(`${from}-${to}`, share);
  }

  recover(): void {
    this.cuts.clear();
    this.isolated.clear();
    this.ignored.clear();
    this.dropRates.clear();
  }

  private blocked(m: Message): boolean {
    if (this.ignored.has(m.type)) return true;
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return true;
    if (this.cuts.has(`${m.from}-${m.to}`)) return true;
    const share = this.dropRates.get(`${m.from}-${m.to}`);
    return share !== undefined && this.rng.next() < share;
  }

  // ---- driving ----

  /** Takes one node's Update, persists, applies and commits it; queues its messages. */
  collect(id: number): Update | null {
    const node = this.node(id);
    if (node.crashed || !node.peer.hasUpdate(true)) return null;
    const u = node.peer.getUpdate(true, node.appliedIndex);
    if (this.keepUpdates) node.updates.push(u);
    this.enqueue(u.fastMessages);
    if (u.snapshot !== null) node.storage.applySnapshot(u.snapshot);
    node.storage.append(u.entriesToSave);
    if (u.state !== null) node.storage.setState(u.state);
    this.enqueue(u.messages);
    if (u.snapshot !== null) this.recoverSnapshot(node, u.snapshot);
    for (const e of u.committedEntries) this.apply(node, e);
    node.readyToReads.push(...u.readyToReads);
    node.droppedEntries.push(...u.droppedEntries);
    node.droppedReads.push(...u.droppedReadIndexes);
    node.peer.commitUpdate(u);
    return u;
  }

  private recoverSnapshot(node: TestNode, snap: SnapshotMeta): void {
    node.applied = [...(this.snapshotData.get(snap.index) ?? [])];
    node.appliedIndex = snap.index;
    node.peer.restoreRemotes(snap);
  }

  private apply(node: TestNode, e: Entry): void {
    if (e.index !== node.appliedIndex + 1) {
      throw new Error(`node ${node.id} applies entry ${e.index} after ${node.appliedIndex}`);
    }
    node.appliedIndex = e.index;
    this.onApply?.(node, e);
    if (e.type === EntryType.ConfigChange) {
      const cc = decodeConfigChange(e.cmd);
      if (node.rejectConfigChanges) node.peer.rejectConfigChange();
      else node.peer.applyConfigChange(cc);
      return;
    }
    if (e.type === EntryType.Application && e.cmd.byteLength > 0) node.applied.push(e);
  }

  enqueue(msgs: Message[]): void {
    for (const m of msgs) {
      this.sentCount[m.type] = (this.sentCount[m.type] ?? 0) + 1;
      if (this.recordSent) this.sent.push(m);
      if (!this.blocked(m)) this.queue.push(m);
      else this.lost(m);
    }
  }

  /** Tell a snapshot's sender when the snapshot is lost (a transport does; tests may hold it). */
  reportLostSnapshots = true;
  /** Messages sent, by type. */
  sentCount: number[] = [];
  /** Record every sent message in `sent` (off for long runs). */
  recordSent = true;
  /** Called with every applied entry (the safety test checks histories with it). */
  onApply: ((node: TestNode, e: Entry) => void) | null = null;

  /** A message that will never arrive: a snapshot's sender learns it failed (as a transport reports). */
  lost(m: Message): void {
    if (m.type !== MessageType.InstallSnapshot || !this.reportLostSnapshots) return;
    const from = this.nodes.get(m.from);
    if (from !== undefined && !from.crashed) from.peer.reportSnapshotStatus(m.to, true);
  }

  /** Delivers one message to its target (a copy: receivers may not share objects). */
  deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    if (to === undefined || to.crashed) {
      this.lost(m);
      return;
    }
    to.peer.step({ ...m });
    if (m.type === MessageType.InstallSnapshot) {
      const from = this.nodes.get(m.from);
      if (from !== undefined && !from.crashed) from.peer.reportSnapshotStatus(m.to, false);
    }
  }

  /** Delivers the oldest queued message; false when none. */
  deliverOne(): boolean {
    const m = this.queue.shift();
    if (m === undefined) return false;
    this.deliver(m);
    return true;
  }

  /** Collects every node's Update once; true if any had one. */
  collectAll(): boolean {
    let any = false;
    for (const id of this.nodes.keys()) if (this.collect(id) !== null) any = true;
    return any;
  }

  /** Collects and delivers until no node has work and no message is queued. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      const any = this.collectAll();
      if (!any && this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) this.deliver(m);
    }
    throw new Error(`network did not stabilize in ${maxRounds} rounds`);
  }

  tick(id: number, count = 1): void {
    for (let i = 0; i < count; i++) this.node(id).peer.tick();
  }

  /** Ticks every live node `count` times, stabilizing after each tick. */
  tickAll(count = 1): void {
    for (let i = 0; i < count; i++) {
      for (const n of this.nodes.values()) if (!n.crashed) n.peer.tick();
      this.stabilize();
    }
  }

  /**
   * Two heartbeat intervals of `leader`, ticking it alone and settling after each tick: the
   * bound within which every reachable follower learns the leader's commit index, which
   * travels lazily with the next Replicate or heartbeat (docs/architecture.md).
   */
  spreadCommit(leader: number): void {
    const node = this.node(leader);
    for (let i = 0; i < COMMIT_SPREAD_HEARTBEATS * node.config.heartbeatRtt; i++) {
      node.peer.tick();
      this.stabilize();
    }
  }

  /** Makes id campaign now (as an election timeout would) and lets the network settle. */
  campaign(id: number): void {
    this.raft(id).handleElection(false);
    this.stabilize();
  }

  propose(id: number, ...data: string[]): void {
    this.peer(id).propose(data.map((d) => entry(d)));
    this.stabilize();
  }

  /** Current leaders (by each node's own role). */
  leaders(): number[] {
    const out: number[] = [];
    for (const [id, n] of this.nodes) if (!n.crashed && n.peer.status().role === 4) out.push(id);
    return out;
  }

  /** Takes a snapshot of id's applied state at its applied index and compacts its log to `compactTo`. */
  snapshot(id: number, compactTo?: number): SnapshotMeta {
    const node = this.node(id);
    const r = node.raft;
    const index = node.appliedIndex;
    const meta: SnapshotMeta = {
      shardId: 1,
      replicaId: id,
      index,
      term: r.log.term(index),
      membership: this.membershipOf(r),
      filePath: `snap-${index}`,
      fileSizeBytes: 100,
      witness: false,
      dummy: false,
      onDiskIndex: 0,
      app: "test",
      checksum: 0,
    };
    this.snapshotData.set(index, [...node.applied]);
    node.storage.createSnapshot(meta);
    if (compactTo !== undefined) node.storage.compact(compactTo);
    return meta;
  }

  membershipOf(r: Raft): Membership {
    const list = (m: Map<number, unknown>) => [...m.keys()].map(member);
    return {
      configChangeId: 0,
      addresses: list(r.remotes),
      nonVotings: list(r.nonVotings),
      witnesses: list(r.witnesses),
      removed: [...r.removed],
    };
  }

  /** Crash: the node loses everything not persisted; restart() brings it back from storage. */
  crash(id: number): void {
    this.node(id).crashed = true;
  }

  restart(id: number): TestNode {
    const old = this.node(id);
    const n = this.addNode(id, { config: old.config, storage: old.storage });
    n.rejectConfigChanges = old.rejectConfigChanges;
    return n;
  }

  /** Proposes a config change on id and settles. */
  configChange(
    id: number,
    cc: Partial<ConfigChange> & Pick<ConfigChange, "type" | "replicaId">,
    key = 0,
  ): void {
    this.peer(id).proposeConfigChange(
      { configChangeId: 0, address: `n${cc.replicaId}`, initialize: false, ...cc },
      { key, proposerId: key === 0 ? 0 : id, proposerEpoch: key === 0 ? 0 : 1 },
    );
    this.stabilize();
  }
}

export const MT = MessageType;

/** Heartbeat intervals within which a follower learns the leader's commit index. */
export const COMMIT_SPREAD_HEARTBEATS = 2;

/** Messages of a type in `sent`, optionally from one replica. */
export function sentOf(net: Network, type: number, from?: number): Message[] {
  return net.sent.filter((m) => m.type === type && (from === undefined || m.from === from));
}

/**
 * One replica of a shard of `ids`, bootstrapped, whose messages go nowhere (the others do not
 * exist): for driving a single core message by message.
 */
export function lone(id: number, ids: number[], config: Partial<RaftConfig> = {}): Network {
  const net = new Network(id);
  net.addNode(id, { config, initialMembers: ids.map(member), newNode: true });
  net.collect(id);
  net.sent = [];
  return net;
}
