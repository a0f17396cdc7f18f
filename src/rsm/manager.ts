import { createHash } from "node:crypto";
import { type SnapshotDir, SnapshotFileReader } from "../logdb/snapshotfile.ts";
import { longboat } from "../pb/longboat.js";
import {
  type ConfigChange,
  type ConfigChangeType,
  type Entry,
  EntryType,
  emptyMembership,
  type Membership,
  type RequestTag,
  type SnapshotMeta,
} from "../raft/types.ts";
import type { AnyStateMachine, SMEntry, SMResult, SnapshotRecovery } from "../statemachine/types.ts";
import { concatChunks } from "../statemachine/bytes.ts";
import { adaptStateMachine, type ManagedStateMachine } from "./adapter.ts";
import { MembershipManager } from "./membership.ts";
import { collect, type PayloadHead, readPayload, readPayloadHead, writePayloadHead } from "./payload.ts";
import {
  CLIENT_ID_NOOP,
  DEFAULT_MAX_SESSIONS,
  SERIES_ID_NOOP,
  SERIES_ID_REGISTER,
  SERIES_ID_UNREGISTER,
  SessionManager,
} from "./session.ts";

/** What applying one entry did; `tag` is the entry's request tag (the entry itself, not a copy). */
export type ApplyOutcome =
  | { kind: "update"; index: number; tag: RequestTag; result: SMResult; duplicate: boolean }
  | { kind: "session-registered" | "session-unregistered"; index: number; tag: RequestTag; clientId: number }
  | { kind: "session-rejected"; index: number; tag: RequestTag; reason: string }
  | {
      kind: "config-change";
      index: number;
      tag: RequestTag;
      cc: ConfigChange;
      accepted: boolean;
      reason: string;
    }
  | { kind: "noop"; index: number };

export interface StateMachineManagerOptions {
  shardId: number;
  replicaId: number;
  app: string;
  sm: AnyStateMachine;
  /** null: a witness (or a replica that never snapshots data). */
  snapshotDir: SnapshotDir | null;
  /** Session table bound, a hard setting (default 4096). */
  maxSessions?: number;
  isWitness?: boolean;
  /** Config changes must quote the current configChangeId (default true). */
  orderedConfigChange?: boolean;
  /** Written into every snapshot file's header (a restore refuses another deployment's). */
  deploymentId?: number;
}

/** Thrown when the manager is used against its invariants (a bug in the caller, not bad input). */
export class StateMachineManagerError extends Error {
  override readonly name = "StateMachineManagerError";
}

/** The payload head, then the machine's chunks. */
function* payloadChunks(
  head: Uint8Array,
  data: Iterator<Uint8Array> | null,
  where: string,
): Generator<Uint8Array> {
  yield head;
  if (data === null) return;
  for (let c = data.next(); !c.done; c = data.next()) {
    if (!(c.value instanceof Uint8Array))
      throw new StateMachineManagerError(`${where}: snapshotChunks yielded ${typeof c.value}, not bytes`);
    yield c.value;
  }
}

/**
 * A snapshot being recovered in steps (StateMachineManager.beginRecovery): step() reads up to
 * maxBytes of the file and feeds the machine (its recoverInSteps, or memory for a machine
 * without it); once the file is read and verified, recoverFromSnapshot(meta) commits it at
 * once. Until then the manager's state — the machine's, sessions, membership, lastApplied —
 * is unchanged; abort() drops the work.
 */
export class SnapshotRecoveryJob {
  private reader: SnapshotFileReader | null;
  private head: (PayloadHead & { headBytes: number }) | null = null;
  /** Machine data is fed (a dummy snapshot, or an on-disk machine that holds it: no). */
  private wantData = false;
  private stepped: SnapshotRecovery | null = null;
  private parts: Uint8Array[] = [];
  done = false;
  aborted = false;

  constructor(
    readonly meta: SnapshotMeta,
    dir: SnapshotDir,
    private readonly sm: ManagedStateMachine,
    private readonly app: string,
    private readonly onDiskIndex: number,
    private readonly checkDummy: (where: string) => void,
  ) {
    this.reader = new SnapshotFileReader(dir.fs, meta.filePath);
    if (this.reader.meta.index !== meta.index) {
      const index = this.reader.meta.index;
      this.abort();
      throw new StateMachineManagerError(
        `snapshot ${meta.filePath}: holds index ${index}, expected ${meta.index}`,
      );
    }
  }

  private get where(): string {
    return `snapshot ${this.meta.filePath}`;
  }

  /** Reads and feeds up to about maxBytes; true once the whole file is read and verified. */
  step(maxBytes: number): boolean {
    if (this.done) return true;
    const reader = this.reader;
    if (reader === null) throw new StateMachineManagerError(`${this.where}: recovery step after abort`);
    try {
      if (this.head === null) this.readHead(reader);
      for (let budget = maxBytes; budget > 0 && reader.remaining > 0; ) {
        const chunk = reader.read(Math.min(budget, reader.remaining));
        budget -= chunk.byteLength;
        if (!this.head!.hasData) {
          throw new StateMachineManagerError(`${this.where}: data after a dummy head`);
        }
        if (!this.wantData) continue;
        if (this.stepped !== null) this.stepped.write(chunk);
        else this.parts.push(chunk);
      }
      if (reader.remaining === 0 && !reader.verified) reader.read(0);
    } catch (error) {
      this.abort();
      throw error;
    }
    if (reader.remaining > 0) return false;
    reader.close();
    this.done = true;
    return true;
  }

  private readHead(reader: SnapshotFileReader): void {
    const head = readPayloadHead((n) => reader.read(n), reader.payloadBytes, this.where);
    this.head = head;
    if (head.app !== this.app) {
      throw new StateMachineManagerError(
        `${this.where}: is of app "${head.app}", this replica runs "${this.app}"`,
      );
    }
    if (!head.hasData) this.checkDummy(this.where);
    // An on-disk machine that already synced past the snapshot keeps its data (recoverFile).
    const held =
      this.sm.kind === "on-disk" && this.onDiskIndex >= Math.max(this.meta.onDiskIndex, this.meta.index);
    this.wantData = head.hasData && !held;
    if (this.wantData) this.stepped = this.sm.recoverInSteps();
  }

  /** Called by recoverFromSnapshot once done: the head's sessions and membership, the machine's data. */
  commit(sessions: SessionManager, members: MembershipManager): boolean {
    const head = this.head!;
    sessions.load(head.sessions);
    members.set(head.membership);
    if (!this.wantData) return false;
    if (this.stepped !== null) this.stepped.finish();
    else this.sm.recover(concatChunks(this.parts));
    this.parts = [];
    return true;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.parts = [];
    try {
      this.stepped?.abort?.();
    } finally {
      this.reader?.close();
      this.reader = null;
    }
  }
}

/** An update outside any session (no dedup): client 0, or series 0 of any client. */
function isNoSession(e: Entry): boolean {
  if (e.seriesId === SERIES_ID_REGISTER || e.seriesId === SERIES_ID_UNREGISTER) return false;
  return e.clientId === CLIENT_ID_NOOP || e.seriesId === SERIES_ID_NOOP;
}

const NO_CC: ConfigChange = { configChangeId: 0, type: 0, replicaId: 0, address: "", initialize: false };

/**
 * Applies committed entries of one replica to its state machine (engine.md §3.6): config changes
 * through the membership rules, session registration and at-most-once dedup, plain updates
 * batched into one `update` call. Also saves and recovers snapshots (machine data + sessions +
 * membership). Entries must arrive in index order without gaps; that is asserted.
 * @example const m = new StateMachineManager({ shardId: 1, replicaId: 1, app: "kv", sm, snapshotDir });
 *          m.open(); const outcomes = m.apply(committedEntries);
 */
export class StateMachineManager {
  readonly shardId: number;
  readonly replicaId: number;
  readonly app: string;
  private readonly sm: ManagedStateMachine;
  private readonly snapshotDir: SnapshotDir | null;
  private readonly isWitness: boolean;
  private readonly deploymentId: number;
  private readonly sessions: SessionManager;
  private readonly members: MembershipManager;
  private applied = 0;
  private appliedTerm = 0;
  /** On-disk: updates at or below this index are already in the machine's durable state. */
  private onDiskIndex = 0;
  private opened = false;
  private closed = false;
  /** Plain (no-session) updates waiting for one batched sm.update call. */
  private batch: Entry[] = [];
  /** A recovery in steps under way or read (beginRecovery); recoverFromSnapshot commits it. */
  private recovery: SnapshotRecoveryJob | null = null;

  constructor(opts: StateMachineManagerOptions) {
    this.shardId = opts.shardId;
    this.replicaId = opts.replicaId;
    this.app = opts.app;
    this.isWitness = opts.isWitness ?? false;
    this.deploymentId = opts.deploymentId ?? 0;
    this.snapshotDir = opts.snapshotDir;
    this.sm = adaptStateMachine(
      opts.sm,
      `app "${opts.app}" of shard ${opts.shardId} replica ${opts.replicaId}`,
    );
    this.sessions = new SessionManager(opts.maxSessions ?? DEFAULT_MAX_SESSIONS);
    this.members = new MembershipManager(emptyMembership(), opts.orderedConfigChange ?? true);
  }

  /** Opens the state machine; returns the index an on-disk machine has synced (others 0). */
  open(): number {
    if (this.opened) throw new StateMachineManagerError(`${this.where()}: opened twice`);
    this.opened = true;
    this.onDiskIndex = this.isWitness ? 0 : this.sm.open();
    return this.onDiskIndex;
  }

  lastApplied(): number {
    return this.applied;
  }

  membership(): Membership {
    return this.members.get();
  }

  /** Sets the membership (a witness, or a replica recovering from snapshot metadata only). */
  setMembership(m: Membership): void {
    this.members.set(m);
  }

  /** Applies committed entries in order; returns one outcome per entry, in entry order. */
  apply(entries: Entry[]): ApplyOutcome[] {
    this.usable();
    const out: ApplyOutcome[] = [];
    for (const e of entries) {
      this.advance(e);
      if (this.isPlainUpdate(e)) {
        this.batch.push(e);
        continue;
      }
      this.flush(out);
      out.push(this.applyOne(e));
    }
    this.flush(out);
    return out;
  }

  /** Asserts the index/term order of e and moves lastApplied to it. */
  private advance(e: Entry): void {
    if (e.index !== this.applied + 1) {
      throw new StateMachineManagerError(
        `${this.where()}: entry ${e.index} applied after ${this.applied} (indexes must increase by exactly 1)`,
      );
    }
    if (e.term < this.appliedTerm) {
      throw new StateMachineManagerError(
        `${this.where()}: entry ${e.index} has term ${e.term} below the last applied term ${this.appliedTerm}`,
      );
    }
    this.applied = e.index;
    this.appliedTerm = e.term;
  }

  private isPlainUpdate(e: Entry): boolean {
    return (
      e.type === EntryType.Application &&
      !this.isWitness &&
      e.cmd.byteLength > 0 &&
      isNoSession(e) &&
      e.index > this.onDiskIndex
    );
  }

  private flush(out: ApplyOutcome[]): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    const results = this.update(batch.map((e) => ({ index: e.index, cmd: e.cmd })));
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      out.push({ kind: "update", index: e.index, tag: e, result: results[i]!, duplicate: false });
    }
  }

  private update(entries: SMEntry[]): SMResult[] {
    const results = this.sm.update(entries);
    if (!Array.isArray(results) || results.length !== entries.length) {
      throw new StateMachineManagerError(
        `${this.where()}: update of ${entries.length} entries returned ${Array.isArray(results) ? results.length : typeof results} results`,
      );
    }
    return results;
  }

  private applyOne(e: Entry): ApplyOutcome {
    switch (e.type) {
      case EntryType.ConfigChange:
        return this.configChange(e);
      case EntryType.Metadata:
        return { kind: "noop", index: e.index };
      case EntryType.Application:
        return this.application(e);
      default:
        throw new StateMachineManagerError(
          `${this.where()}: entry ${e.index} has type ${e.type}, not supported here`,
        );
    }
  }

  private configChange(e: Entry): ApplyOutcome {
    let cc: ConfigChange;
    try {
      const d = longboat.raft.v1.ConfigChange.decode(e.cmd);
      cc = {
        configChangeId: d.configChangeId ?? 0,
        type: (d.type ?? 0) as ConfigChangeType,
        replicaId: d.replicaId ?? 0,
        address: d.address ?? "",
        initialize: d.initialize ?? false,
      };
    } catch (error) {
      const reason = `config change entry ${e.index} does not decode: ${(error as Error).message}`;
      return { kind: "config-change", index: e.index, tag: e, cc: NO_CC, accepted: false, reason };
    }
    const d = this.members.apply(cc, e.index);
    return { kind: "config-change", index: e.index, tag: e, cc, accepted: d.accepted, reason: d.reason };
  }

  private application(e: Entry): ApplyOutcome {
    const noSession = isNoSession(e);
    // Leader no-ops, witnesses (no machine), and on-disk updates already durable before open().
    if (this.isWitness || (noSession && (e.cmd.byteLength === 0 || e.index <= this.onDiskIndex))) {
      return { kind: "noop", index: e.index };
    }
    if (this.sm.kind === "on-disk") {
      const reason = `on-disk state machines do not support client sessions (client ${e.clientId}); use the no-op session`;
      return { kind: "session-rejected", index: e.index, tag: e, reason };
    }
    if (e.seriesId === SERIES_ID_REGISTER) {
      const reason = this.sessions.register(e.clientId);
      if (reason !== null) return { kind: "session-rejected", index: e.index, tag: e, reason };
      return { kind: "session-registered", index: e.index, tag: e, clientId: e.clientId };
    }
    if (e.seriesId === SERIES_ID_UNREGISTER) {
      const reason = this.sessions.unregister(e.clientId);
      if (reason !== null) return { kind: "session-rejected", index: e.index, tag: e, reason };
      return { kind: "session-unregistered", index: e.index, tag: e, clientId: e.clientId };
    }
    const check = this.sessions.check(e.clientId, e.seriesId, e.respondedTo);
    if (check.kind === "rejected")
      return { kind: "session-rejected", index: e.index, tag: e, reason: check.reason };
    if (check.kind === "duplicate") {
      return { kind: "update", index: e.index, tag: e, result: check.result, duplicate: true };
    }
    const result = this.update([{ index: e.index, cmd: e.cmd }])[0]!;
    this.sessions.record(check.session, e.seriesId, result);
    return { kind: "update", index: e.index, tag: e, result, duplicate: false };
  }

  /** Why the machine would refuse cmd before it is proposed, or null (a witness has no machine: null). */
  validateCommand(cmd: Uint8Array): string | null {
    this.usable();
    if (this.isWitness) return null;
    return this.sm.validate(cmd);
  }

  /** Answers a read from the state machine. */
  lookup(query: Uint8Array): Uint8Array {
    this.usable();
    if (this.isWitness)
      throw new StateMachineManagerError(`${this.where()}: a witness has no state machine to read`);
    return this.sm.lookup(query);
  }

  /** On-disk: makes every applied update durable. Others: nothing to do. */
  sync(): void {
    this.usable();
    if (!this.isWitness) this.sm.sync();
  }

  /**
   * Saves a snapshot at lastApplied (machine data, sessions, membership) into the snapshot dir
   * at once; returns its meta. An on-disk machine is synced and writes no data (a dummy
   * snapshot) unless `full` (export, or a snapshot streamed to a follower). The engine uses
   * beginSnapshot instead, and writes the file between its iterations.
   */
  saveSnapshot(opts: { full?: boolean } = {}): SnapshotMeta {
    const { meta, chunks } = this.beginSnapshot(opts);
    return this.snapshotDir!.create(meta, (sink) => {
      for (let c = chunks.next(); !c.done; c = chunks.next()) sink(c.value);
    });
  }

  /**
   * Takes a snapshot at lastApplied in two parts (issue #16 item 4): now, what must be
   * consistent — the meta, the session table and membership, the machine's point-in-time
   * capture (adapter.capture) — and, returned as `chunks`, the file's payload to pull later
   * while updates go on. Write it with SnapshotDir.begin(meta). An on-disk machine is synced
   * first and captures no data unless `full`.
   */
  beginSnapshot(opts: { full?: boolean } = {}): { meta: SnapshotMeta; chunks: Iterator<Uint8Array> } {
    this.usable();
    if (this.snapshotDir === null || this.isWitness) {
      throw new StateMachineManagerError(
        `${this.where()}: no snapshot directory (a witness saves no snapshots)`,
      );
    }
    if (this.applied === 0)
      throw new StateMachineManagerError(`${this.where()}: nothing applied yet to snapshot`);
    const onDisk = this.sm.kind === "on-disk";
    if (onDisk) {
      this.sm.sync();
      this.onDiskIndex = Math.max(this.onDiskIndex, this.applied);
    }
    const full = !onDisk || opts.full === true;
    const meta: SnapshotMeta = {
      shardId: this.shardId,
      replicaId: this.replicaId,
      index: this.applied,
      term: this.appliedTerm,
      membership: this.members.get(),
      filePath: "",
      fileSizeBytes: 0,
      witness: false,
      dummy: !full,
      onDiskIndex: onDisk ? this.applied : 0,
      app: this.app,
      checksum: 0,
      ...(this.deploymentId > 0 ? { deploymentId: this.deploymentId } : {}),
    };
    const sessions = collect((sink) => this.sessions.save(sink));
    const head = collect((sink) =>
      writePayloadHead(sink, { app: this.app, membership: meta.membership!, sessions, hasData: full }),
    );
    const data = this.sm.capture(full);
    return { meta, chunks: payloadChunks(head, data, this.where()) };
  }

  /**
   * Recovers machine data, sessions and membership from the snapshot meta names; sets
   * lastApplied = meta.index. A witness (or a witness snapshot) takes only index and membership.
   */
  recoverFromSnapshot(meta: SnapshotMeta): void {
    this.usable();
    if (this.batch.length > 0) throw new StateMachineManagerError(`${this.where()}: recover during apply`);
    if (meta.index < this.applied) {
      throw new StateMachineManagerError(
        `${this.where()}: snapshot at ${meta.index} is older than the applied index ${this.applied}`,
      );
    }
    const job = this.recovery;
    this.recovery = null;
    if (job?.done && job.meta.index === meta.index && job.meta.filePath === meta.filePath) {
      this.commitRecovery(job, meta);
    } else if (this.snapshotDir === null || this.isWitness || meta.witness) {
      job?.abort();
      if (meta.membership) this.members.set(meta.membership);
      this.sessions.clear();
    } else {
      job?.abort();
      this.recoverFile(meta);
    }
    this.applied = meta.index;
    this.appliedTerm = meta.term;
  }

  /**
   * Starts recovering the snapshot meta names in steps (issue #16 item 4): call step() on the
   * job until it returns true, between engine iterations, then recoverFromSnapshot(meta), which
   * commits what was read at once. Null when there is no file to read (a witness): call
   * recoverFromSnapshot directly. Nothing of this manager changes before the commit; a job not
   * committed is dropped by the next recoverFromSnapshot, beginRecovery or close.
   * @throws SnapshotCorruptError / StateMachineManagerError on a file that cannot be recovered.
   */
  beginRecovery(meta: SnapshotMeta): SnapshotRecoveryJob | null {
    this.usable();
    this.recovery?.abort();
    this.recovery = null;
    if (this.snapshotDir === null || this.isWitness || meta.witness) return null;
    if (meta.index < this.applied) {
      throw new StateMachineManagerError(
        `${this.where()}: snapshot at ${meta.index} is older than the applied index ${this.applied}`,
      );
    }
    const job = new SnapshotRecoveryJob(
      meta,
      this.snapshotDir,
      this.sm,
      this.app,
      this.onDiskIndex,
      (where) => this.checkDummy(meta, where),
    );
    this.recovery = job;
    return job;
  }

  private commitRecovery(job: SnapshotRecoveryJob, meta: SnapshotMeta): void {
    if (job.commit(this.sessions, this.members) && this.sm.kind === "on-disk") {
      this.sm.sync();
      this.onDiskIndex = meta.index;
    }
  }

  private recoverFile(meta: SnapshotMeta): void {
    const file = this.snapshotDir!.read(meta.filePath);
    const where = `snapshot ${meta.filePath}`;
    if (file.meta.index !== meta.index) {
      throw new StateMachineManagerError(`${where}: holds index ${file.meta.index}, expected ${meta.index}`);
    }
    const p = readPayload(file.payload, where);
    if (p.app !== this.app) {
      throw new StateMachineManagerError(`${where}: is of app "${p.app}", this replica runs "${this.app}"`);
    }
    if (!p.hasData) this.checkDummy(meta, where);
    this.sessions.load(p.sessions);
    this.members.set(p.membership);
    // An on-disk machine that already synced past the snapshot keeps its data: recovering an
    // older full snapshot over it would lose the entries it applied after the snapshot.
    const held = this.sm.kind === "on-disk" && this.onDiskIndex >= Math.max(meta.onDiskIndex, meta.index);
    if (p.hasData && !held) {
      this.sm.recover(p.data);
      if (this.sm.kind === "on-disk") {
        this.sm.sync();
        this.onDiskIndex = meta.index;
      }
    }
  }

  /** A dummy snapshot is only valid for an on-disk machine that already holds its data. */
  private checkDummy(meta: SnapshotMeta, where: string): void {
    if (this.sm.kind !== "on-disk") {
      throw new StateMachineManagerError(
        `${where}: holds no machine data, but app "${this.app}" keeps its state in memory`,
      );
    }
    const needed = Math.max(meta.onDiskIndex, meta.index);
    if (this.onDiskIndex < needed) {
      throw new StateMachineManagerError(
        `${where}: holds no machine data and the on-disk machine has synced only up to ${this.onDiskIndex}, below ${needed}`,
      );
    }
  }

  /** Machine hash and session table digest: equal on replicas that applied the same entries. */
  hash(): string {
    const smHash = this.isWitness ? "witness" : this.sm.hash();
    const sessions = this.sessions.hash().slice(0, 16);
    return `${smHash}/${sessions}`;
  }

  /** sha256 of hash(), for callers that want a fixed-size digest. */
  digest(): string {
    return createHash("sha256").update(this.hash()).digest("hex");
  }

  /** The session table (tests, diagnostics). */
  sessionCount(): number {
    return this.sessions.size();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.recovery?.abort();
    this.recovery = null;
    this.sm.close();
  }

  private usable(): void {
    if (this.closed) throw new StateMachineManagerError(`${this.where()}: used after close`);
  }

  private where(): string {
    return `shard ${this.shardId} replica ${this.replicaId}`;
  }
}
