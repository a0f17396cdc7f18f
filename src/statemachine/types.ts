/**
 * The user-facing state machine contracts (engine.md §3.6). Three kinds, told apart by the
 * optional `type` field:
 * - regular (`IStateMachine`, no `type` or `type: "regular"`): batched update, lookup,
 *   whole-state snapshot.
 * - concurrent (`type: "concurrent"`): like regular, but a snapshot is taken in two steps —
 *   `prepareSnapshot()` captures a point-in-time context, `saveSnapshot(ctx, sink)` writes it.
 *   (In one JS thread both run back to back; the split keeps ports from Dragonboat honest.)
 * - on-disk (`type: "on-disk"`): the state lives in the machine's own durable store.
 *   `open()` returns the highest index it has durably applied; the manager treats entries at or
 *   below it as already applied. `sync()` makes every applied update durable. Local snapshots
 *   hold no machine data (only sessions and membership); full data is written on export.
 * Every method must be deterministic in the entries it was given: replicas compare `hash()`.
 */

export interface SMEntry {
  index: number;
  cmd: Uint8Array;
}

export interface SMResult {
  value: number;
  data: Uint8Array;
}

export type SnapshotSink = (chunk: Uint8Array) => void;

/**
 * A snapshot recovered in steps (recoverInSteps): the engine feeds the payload through write(),
 * in order, a bounded chunk per step between its iterations (a chunk is valid only during the
 * call: copy what is kept); finish() then replaces the machine's state with what was fed, in
 * one short call — it is called only once the whole file's checksum has been verified. Until
 * finish() the machine must not change what lookup, hash or a snapshot see (decode into a side
 * structure and swap it in). abort() drops what was fed (the replica stopped, a bad file).
 * write() or finish() throws on a payload the machine cannot read; nothing has changed then.
 */
export interface SnapshotRecovery {
  write(chunk: Uint8Array): void;
  finish(): void;
  abort?(): void;
}

export interface IStateMachine {
  readonly type?: "regular";
  /** Applies a batch in order; returns one result per entry. Must be deterministic. */
  update(entries: SMEntry[]): SMResult[];
  /** Answers a read; must not change state. */
  lookup(query: Uint8Array): Uint8Array;
  /** Writes the whole state through sink (may call it many times). */
  saveSnapshot(sink: SnapshotSink): void;
  /** Replaces the state with a snapshot's payload. */
  recoverFromSnapshot(payload: Uint8Array): void;
  /**
   * Optional: recovery in steps, so a large snapshot does not stall the host (issue #16 item 4;
   * SnapshotRecovery). Without it the payload is read in steps, then recoverFromSnapshot runs
   * on the engine loop at once.
   */
  recoverInSteps?(): SnapshotRecovery;
  /**
   * Optional: the snapshot in steps, so a large one does not stall the host (issue #16 item 4).
   * Called on the engine loop at the snapshot's index instead of saveSnapshot; it must capture
   * a point-in-time view cheaply (references to immutable values, a copy-on-write generation)
   * and return an iterator of the same payload saveSnapshot would write, in chunks. The engine
   * pulls it between its iterations while updates go on, so the chunks must not see them. An
   * empty chunk ends the engine's current step (a machine doing its own work in slices).
   * Without it, saveSnapshot runs on the engine loop (into memory; the file is written off it).
   */
  snapshotChunks?(): Iterator<Uint8Array>;

  /** A digest of the state (the simulator compares replicas with it). */
  hash(): string;
  /**
   * Optional: checks a command before it is proposed; returns why it would be refused, or null.
   * It must depend on the command alone (not on the machine's state): it runs on whichever
   * replica receives the request, before anything is replicated. A refused command is answered
   * at once (invalidCommand; the API's invalid_argument) and never reaches the log.
   */
  validateCommand?(cmd: Uint8Array): string | null;
  close(): void;
}

export interface IConcurrentStateMachine {
  readonly type: "concurrent";
  update(entries: SMEntry[]): SMResult[];
  lookup(query: Uint8Array): Uint8Array;
  /** Captures what saveSnapshot needs (short; updates are excluded while it runs). */
  prepareSnapshot(): unknown;
  /** Writes the state captured by prepareSnapshot through sink. */
  saveSnapshot(ctx: unknown, sink: SnapshotSink): void;
  /**
   * Optional: the snapshot in steps, so a large one does not stall the host (issue #16 item 4).
   * Called on the engine loop at the snapshot's index instead of prepareSnapshot and saveSnapshot; it must capture
   * a point-in-time view cheaply (references to immutable values, a copy-on-write generation)
   * and return an iterator of the same payload saveSnapshot would write, in chunks. The engine
   * pulls it between its iterations while updates go on, so the chunks must not see them. An
   * empty chunk ends the engine's current step (a machine doing its own work in slices).
   * Without it, saveSnapshot runs on the engine loop (into memory; the file is written off it).
   */
  snapshotChunks?(): Iterator<Uint8Array>;

  recoverFromSnapshot(payload: Uint8Array): void;
  /** Optional: recovery in steps (IStateMachine.recoverInSteps). */
  recoverInSteps?(): SnapshotRecovery;
  hash(): string;
  /**
   * Optional: checks a command before it is proposed; returns why it would be refused, or null.
   * It must depend on the command alone (not on the machine's state): it runs on whichever
   * replica receives the request, before anything is replicated. A refused command is answered
   * at once (invalidCommand; the API's invalid_argument) and never reaches the log.
   */
  validateCommand?(cmd: Uint8Array): string | null;
  close(): void;
}

export interface IOnDiskStateMachine {
  readonly type: "on-disk";
  /** Opens the durable state; returns the highest entry index it has durably applied (0: none). */
  open(): number;
  update(entries: SMEntry[]): SMResult[];
  lookup(query: Uint8Array): Uint8Array;
  /** Makes every update applied so far durable. */
  sync(): void;
  prepareSnapshot(): unknown;
  /** Writes the full state captured by prepareSnapshot (export / streaming to a follower). */
  saveSnapshot(ctx: unknown, sink: SnapshotSink): void;
  /**
   * Optional: the snapshot in steps, so a large one does not stall the host (issue #16 item 4).
   * Called on the engine loop at the snapshot's index instead of prepareSnapshot and saveSnapshot; it must capture
   * a point-in-time view cheaply (references to immutable values, a copy-on-write generation)
   * and return an iterator of the same payload saveSnapshot would write, in chunks. The engine
   * pulls it between its iterations while updates go on, so the chunks must not see them. An
   * empty chunk ends the engine's current step (a machine doing its own work in slices).
   * Without it, saveSnapshot runs on the engine loop (into memory; the file is written off it).
   */
  snapshotChunks?(): Iterator<Uint8Array>;

  /** Replaces the durable state with a full snapshot's payload. */
  recoverFromSnapshot(payload: Uint8Array): void;
  /** Optional: recovery in steps (IStateMachine.recoverInSteps). */
  recoverInSteps?(): SnapshotRecovery;
  hash(): string;
  /**
   * Optional: checks a command before it is proposed; returns why it would be refused, or null.
   * It must depend on the command alone (not on the machine's state): it runs on whichever
   * replica receives the request, before anything is replicated. A refused command is answered
   * at once (invalidCommand; the API's invalid_argument) and never reaches the log.
   */
  validateCommand?(cmd: Uint8Array): string | null;
  close(): void;
}

export type AnyStateMachine = IStateMachine | IConcurrentStateMachine | IOnDiskStateMachine;

export type CreateStateMachine = (shardId: number, replicaId: number) => AnyStateMachine;

/**
 * Result value an app returns for a command it refuses when applying it (bad client input, or
 * a rule on the current state); data holds the reason as UTF-8. The entry stays in the log and
 * must change nothing. The NodeHost API answers such a result as the error failed_precondition.
 */
export const RESULT_REJECTED = 2 ** 31;
