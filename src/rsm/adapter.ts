import type {
  AnyStateMachine,
  IConcurrentStateMachine,
  IOnDiskStateMachine,
  IStateMachine,
  SMEntry,
  SMResult,
  SnapshotRecovery,
  SnapshotSink,
} from "../statemachine/types.ts";

/**
 * One internal shape for the three state machine kinds, so the manager has a single code path.
 * `capture(full)` returns the machine data to write, or null: an on-disk machine writes none
 * for a local snapshot (its data is already durable) and all of it when full (export, streaming).
 */
export interface ManagedStateMachine {
  readonly kind: "regular" | "concurrent" | "on-disk";
  /** On-disk: the index it has durably applied. Others: 0. */
  open(): number;
  update(entries: SMEntry[]): SMResult[];
  lookup(query: Uint8Array): Uint8Array;
  /** Why cmd would be refused (the machine's validateCommand), or null; never throws. */
  validate(cmd: Uint8Array): string | null;
  sync(): void;
  /**
   * The machine's data for a snapshot taken now, as chunks to pull later (snapshotChunks when
   * the machine has it; otherwise saveSnapshot runs now, into memory); null when no data is
   * written (an on-disk machine's local snapshot).
   */
  capture(full: boolean): Iterator<Uint8Array> | null;
  recover(payload: Uint8Array): void;
  /** The machine's recoverInSteps(), or null when it has none (then recover() at the end). */
  recoverInSteps(): SnapshotRecovery | null;
  hash(): string;
  close(): void;
}

/** The state machine object does not have the methods its kind requires. */
export class StateMachineShapeError extends Error {
  override readonly name = "StateMachineShapeError";
}

const COMMON = ["update", "lookup", "saveSnapshot", "recoverFromSnapshot", "hash", "close"] as const;

function requireMethods(sm: object, names: readonly string[], where: string, kind: string): void {
  const missing = names.filter((n) => typeof (sm as Record<string, unknown>)[n] !== "function");
  if (missing.length > 0) {
    throw new StateMachineShapeError(`${where}: ${kind} state machine lacks method(s) ${missing.join(", ")}`);
  }
}

/**
 * Validates sm's shape for its kind and wraps it.
 * @throws StateMachineShapeError naming `where` and the missing methods or unknown kind.
 */
export function adaptStateMachine(sm: AnyStateMachine, where: string): ManagedStateMachine {
  if (sm === null || typeof sm !== "object") {
    throw new StateMachineShapeError(
      `${where}: the app factory returned ${sm === null ? "null" : typeof sm}, not an object`,
    );
  }
  const type = (sm as { type?: unknown }).type;
  if (type === undefined || type === "regular") {
    requireMethods(sm, COMMON, where, "regular");
    return regular(sm as IStateMachine);
  }
  if (type === "concurrent") {
    requireMethods(sm, [...COMMON, "prepareSnapshot"], where, "concurrent");
    return concurrent(sm as IConcurrentStateMachine);
  }
  if (type === "on-disk") {
    requireMethods(sm, [...COMMON, "prepareSnapshot", "open", "sync"], where, "on-disk");
    return onDisk(sm as IOnDiskStateMachine);
  }
  throw new StateMachineShapeError(
    `${where}: unknown state machine type ${JSON.stringify(type)} (expected "regular", "concurrent" or "on-disk")`,
  );
}

/** Calls the machine's optional validateCommand; a throw or a non-string answer is a refusal too. */
function validator(sm: AnyStateMachine): (cmd: Uint8Array) => string | null {
  const fn = (sm as { validateCommand?: unknown }).validateCommand;
  if (typeof fn !== "function") return () => null;
  return (cmd) => {
    let reason: unknown;
    try {
      reason = fn.call(sm, cmd);
    } catch (error) {
      return `validateCommand threw: ${(error as Error)?.message ?? String(error)}`;
    }
    if (reason === null || reason === undefined) return null;
    return typeof reason === "string"
      ? reason
      : `validateCommand returned ${typeof reason}, not a string or null`;
  };
}

/** The machine's snapshotChunks(), or what save writes now, collected in memory. */
function chunksOf(sm: AnyStateMachine, save: (sink: SnapshotSink) => void): Iterator<Uint8Array> {
  const steps = (sm as { snapshotChunks?: unknown }).snapshotChunks;
  if (typeof steps === "function") {
    const it = steps.call(sm) as Iterator<Uint8Array> | null | undefined;
    if (it === null || typeof it !== "object" || typeof it.next !== "function")
      throw new StateMachineShapeError("snapshotChunks() returned no iterator");
    return it;
  }
  const chunks: Uint8Array[] = [];
  save((c) => chunks.push(c.slice()));
  return chunks[Symbol.iterator]();
}

/** The machine's recoverInSteps(), checked, or null. */
function steppedRecovery(sm: AnyStateMachine): SnapshotRecovery | null {
  const begin = (sm as { recoverInSteps?: unknown }).recoverInSteps;
  if (typeof begin !== "function") return null;
  const r = begin.call(sm) as SnapshotRecovery | null | undefined;
  if (r === null || typeof r !== "object" || typeof r.write !== "function" || typeof r.finish !== "function")
    throw new StateMachineShapeError("recoverInSteps() returned no object with write and finish");
  return r;
}

function regular(sm: IStateMachine): ManagedStateMachine {
  return {
    kind: "regular",
    open: () => 0,
    update: (entries) => sm.update(entries),
    lookup: (q) => sm.lookup(q),
    validate: validator(sm),
    sync: () => {},
    capture: () => chunksOf(sm, (sink) => sm.saveSnapshot(sink)),
    recover: (p) => sm.recoverFromSnapshot(p),
    recoverInSteps: () => steppedRecovery(sm),
    hash: () => sm.hash(),
    close: () => sm.close(),
  };
}

function concurrent(sm: IConcurrentStateMachine): ManagedStateMachine {
  return {
    kind: "concurrent",
    open: () => 0,
    update: (entries) => sm.update(entries),
    lookup: (q) => sm.lookup(q),
    validate: validator(sm),
    sync: () => {},
    capture: () => chunksOf(sm, (sink) => sm.saveSnapshot(sm.prepareSnapshot(), sink)),
    recover: (p) => sm.recoverFromSnapshot(p),
    recoverInSteps: () => steppedRecovery(sm),
    hash: () => sm.hash(),
    close: () => sm.close(),
  };
}

function onDisk(sm: IOnDiskStateMachine): ManagedStateMachine {
  return {
    kind: "on-disk",
    open: () => {
      const index = sm.open();
      if (!Number.isSafeInteger(index) || index < 0) {
        throw new StateMachineShapeError(`on-disk state machine open() returned ${index}, not an index ≥ 0`);
      }
      return index;
    },
    update: (entries) => sm.update(entries),
    lookup: (q) => sm.lookup(q),
    validate: validator(sm),
    sync: () => sm.sync(),
    capture: (full) => (full ? chunksOf(sm, (sink) => sm.saveSnapshot(sm.prepareSnapshot(), sink)) : null),
    recover: (p) => sm.recoverFromSnapshot(p),
    recoverInSteps: () => steppedRecovery(sm),
    hash: () => sm.hash(),
    close: () => sm.close(),
  };
}
