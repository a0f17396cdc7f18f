import { nodeFileSystem } from "../../src/fs/node.ts";
import { LongboatError } from "../../src/engine/errors.ts";
import { SnapshotExport } from "../../src/engine/export.ts";
import { Session } from "../../src/engine/session.ts";
import { verifySnapshotFile } from "../../src/logdb/snapshotfile.ts";
import type { EngineStatsLike, NodeHostLike, ShardInfoLike } from "../../src/api/types.ts";
import type { Membership } from "../../src/raft/types.ts";

/** A shard as the fake knows it: which replica lives here and which one leads. */
export interface FakeShard {
  replicaId: number;
  leaderId: number;
  term: number;
  membership: Membership;
}

const enc = new TextEncoder();

/**
 * A NodeHost stand-in: proposals answer value = command length and data = the command,
 * reads answer "read:" + query (stale reads "stale:" + query), and a replica that does not
 * lead answers shardNotReady to everything that needs the leader (as the engine does).
 */
export class FakeNodeHost implements NodeHostLike {
  readonly shards = new Map<number, FakeShard>();
  readonly calls: string[] = [];
  /** Thrown by the next call that reaches the fake. */
  failNext: Error | undefined;
  /** Thrown, one each, by the calls after that (when failNext is unset). */
  readonly failures: Error[] = [];
  stats: EngineStatsLike = {
    iterations: 10,
    savedBatches: 4,
    savedEntries: 9,
    saveMsTotal: 12,
    sentMessages: 30,
    droppedMessages: 1,
    appliedEntries: 9,
    elections: 2,
    refusedMessages: 3,
    replicaFailures: 0,
    snapshotsCreated: 0,
    snapshotBytesCreated: 0,
    snapshotMsTotal: 0,
  };

  constructor(readonly raftAddress = "h1:7001") {}

  addShard(shardId: number, shard: Partial<FakeShard> = {}): this {
    this.shards.set(shardId, {
      replicaId: shard.replicaId ?? 1,
      leaderId: shard.leaderId ?? shard.replicaId ?? 1,
      term: shard.term ?? 3,
      membership: shard.membership ?? {
        configChangeId: 7,
        addresses: [
          { replicaId: 1, address: "h1:7001" },
          { replicaId: 2, address: "h2:7001" },
        ],
        nonVotings: [],
        witnesses: [],
        removed: [],
      },
    });
    return this;
  }

  private shard(shardId: number, needsLeader: boolean, call: string): FakeShard {
    this.calls.push(`${call}:${shardId}`);
    const failure = this.failNext ?? this.failures.shift();
    this.failNext = undefined;
    if (failure) throw failure;
    const s = this.shards.get(shardId);
    if (!s) throw new LongboatError("shardNotFound", `shard ${shardId} on ${this.raftAddress}`);
    if (needsLeader && s.leaderId !== s.replicaId)
      throw new LongboatError("shardNotReady", `shard ${shardId}`);
    return s;
  }

  getNoOpSession(shardId: number): Session {
    return Session.noop(shardId);
  }
  async getNewSession(shardId: number): Promise<Session> {
    this.shard(shardId, true, "getNewSession");
    return new Session(shardId, 42, 1, 0);
  }
  async closeSession(session: Session): Promise<void> {
    this.shard(session.shardId, true, "closeSession");
    if (session.isNoOp) throw new LongboatError("invalidSession", "the no-op session cannot be closed");
  }
  /** The log index the next proposal is "applied" at. */
  nextIndex = 21;
  async syncPropose(session: Session, cmd: Uint8Array) {
    this.shard(session.shardId, true, `syncPropose(client ${session.clientId})`);
    return { value: cmd.length, data: cmd, index: this.nextIndex++ };
  }
  async syncRead(shardId: number, query: Uint8Array, _opts?: { timeoutMs: number }): Promise<Uint8Array> {
    this.shard(shardId, true, "syncRead");
    return new Uint8Array([...enc.encode("read:"), ...query]);
  }
  staleRead(shardId: number, query: Uint8Array): Uint8Array {
    this.shard(shardId, false, "staleRead");
    return new Uint8Array([...enc.encode("stale:"), ...query]);
  }
  async syncGetShardMembership(shardId: number): Promise<Membership> {
    return structuredClone(this.shard(shardId, true, "syncGetShardMembership").membership);
  }
  private add(
    kind: "addresses" | "nonVotings" | "witnesses",
    shardId: number,
    replicaId: number,
    address: string,
  ) {
    const s = this.shard(shardId, true, `add:${kind}`);
    s.membership[kind].push({ replicaId, address });
    s.membership.configChangeId += 1;
  }
  async syncRequestAddReplica(shardId: number, replicaId: number, address: string) {
    this.add("addresses", shardId, replicaId, address);
  }
  async syncRequestAddNonVoting(shardId: number, replicaId: number, address: string) {
    this.add("nonVotings", shardId, replicaId, address);
  }
  async syncRequestAddWitness(shardId: number, replicaId: number, address: string) {
    this.add("witnesses", shardId, replicaId, address);
  }
  async syncRequestDeleteReplica(shardId: number, replicaId: number) {
    const m = this.shard(shardId, true, "delete").membership;
    m.addresses = m.addresses.filter((x) => x.replicaId !== replicaId);
    m.removed.push(replicaId);
    m.configChangeId += 1;
  }
  requestLeaderTransfer(shardId: number, targetReplicaId: number): void {
    this.shard(shardId, false, `transfer:${targetReplicaId}`);
  }
  async syncRequestSnapshot(
    shardId: number,
    opts: { exportPath?: string; compactionOverhead?: number; compactionIndex?: number },
  ) {
    const compaction = `${opts.compactionOverhead ?? "-"}${opts.compactionIndex ? `@${opts.compactionIndex}` : ""}`;
    this.shard(shardId, false, `snapshot:${opts.exportPath ?? ""}:${compaction}`);
    return 123;
  }
  async syncRemoveData(shardId: number, replicaId: number, opts: { membership?: Membership }) {
    this.calls.push(`removeData:${shardId}:${replicaId}:${opts.membership?.configChangeId ?? "-"}`);
    const s = this.shards.get(shardId);
    if (s?.replicaId === replicaId) throw new LongboatError("shardNotStopped", `shard ${shardId} runs`);
  }
  requestCompaction(shardId: number, opts: { compactionOverhead?: number } = {}) {
    const s = this.shard(shardId, false, `compact:${opts.compactionOverhead ?? "-"}`);
    return {
      shardId,
      replicaId: s.replicaId,
      snapshotIndex: 100,
      firstIndex: 91,
      entriesRemoved: 90,
      logBytesRemoved: 90 * 140,
      logEntries: 30,
      logBytes: 30 * 140,
      fileBytesBefore: 65536,
      fileBytesAfter: 32768,
    };
  }
  queryRaftLog(shardId: number, firstIndex: number, lastIndex: number, maxBytes: number) {
    const s = this.shard(shardId, false, `log:${firstIndex}:${lastIndex}:${maxBytes}`);
    const entry = {
      term: 3,
      index: Math.max(firstIndex, 5),
      type: 0 as const,
      key: 7,
      clientId: 0,
      seriesId: 0,
      respondedTo: 0,
      cmd: enc.encode("cmd"),
      proposerId: 0,
      proposerEpoch: 0,
    };
    return {
      shardId,
      replicaId: s.replicaId,
      firstIndex: 5,
      lastIndex: 9,
      commitIndex: 8,
      snapshotIndex: 4,
      entries: [entry],
    };
  }
  /** The snapshot file syncExportSnapshot exports (tests set it). */
  exportFile: string | undefined;
  async syncExportSnapshot(shardId: number, opts: { unconfirmed?: boolean }): Promise<SnapshotExport> {
    this.shard(shardId, false, `export:${opts.unconfirmed ? "unconfirmed" : "confirmed"}`);
    if (this.exportFile === undefined)
      throw new LongboatError("invalidOperation", "the fake has no export file");
    return new SnapshotExport(verifySnapshotFile(nodeFileSystem, this.exportFile).meta, 9, nodeFileSystem);
  }
  getLeaderId(shardId: number) {
    const s = this.shards.get(shardId);
    if (!s) throw new LongboatError("shardNotFound", `shard ${shardId}`);
    return { leaderId: s.leaderId, term: s.term, valid: s.leaderId !== 0 };
  }
  getNodeHostInfo() {
    const shards: ShardInfoLike[] = [...this.shards.entries()].map(([shardId, s]) => ({
      shardId,
      replicaId: s.replicaId,
      app: "kv",
      role: s.leaderId === s.replicaId ? 4 : 1,
      isLeader: s.leaderId === s.replicaId,
      leaderId: s.leaderId,
      term: s.term,
      commitIndex: 20,
      appliedIndex: 19,
      membership: structuredClone(s.membership),
      configChangeId: s.membership.configChangeId,
      quiesced: false,
    }));
    return {
      raftAddress: this.raftAddress,
      deploymentId: 9,
      shards,
      logsOnDisk: shards.map((s) => ({ shardId: s.shardId, replicaId: s.replicaId })),
    };
  }
}
