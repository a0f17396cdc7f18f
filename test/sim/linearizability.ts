/**
 * A linearizability checker for client histories, after Porcupine (anishathalye/porcupine):
 * Wing & Gong's backtracking search with Lowe's memoisation of (linearized set, state) pairs,
 * and P-compositionality (Horn & Kroening): a model that can split a history into
 * independent partitions (per key) has each partition checked on its own.
 *
 * Intervals are closed: an operation returning at tick 20 overlaps one called at tick 20.
 * An operation that never returned (`return = Infinity`, `output = undefined`) may take
 * effect at any point after its call, or never: the model's `step` must accept any output
 * for it, and the search may leave it out once every completed operation is placed.
 *
 * A bounded search (states per partition, or a deadline through an injected clock) yields
 * "unknown", never a wrong "ok".
 *
 * @example
 *   const verdict = checkOperations(kvModel, history.operations(), { maxStates: 100_000 });
 *   if (verdict.result === "illegal") throw new Error(verdict.explanation);
 */

/** One client operation: its input, when it was called, when it returned, and its output. */
export interface Operation<I, O> {
  clientId: number;
  input: I;
  /** Tick of the call (finite). */
  call: number;
  /** `undefined` exactly when the operation never returned. */
  output: O | undefined;
  /** Tick of the return, >= call; `Infinity` when it never returned. */
  return: number;
}

export interface StepResult<S> {
  ok: boolean;
  state: S;
}

/** A sequential specification. `step` must be pure: it never mutates `state`. */
export interface Model<S, I, O> {
  init(): S;
  /** Applies `input` to `state`; `ok` says whether `output` is what it would produce. `output`
   *  is `undefined` for an operation that never returned: accept it and apply the effect. */
  step(state: S, input: I, output: O | undefined): StepResult<S>;
  /** Splits a history into partitions that are linearizable together iff each one is. */
  partition?(ops: readonly Operation<I, O>[]): Operation<I, O>[][];
  /** Names a partition in results (e.g. its key); defaults to the partition's index. */
  partitionKey?(ops: readonly Operation<I, O>[]): string;
  equal(a: S, b: S): boolean;
  /** A string equal for equal states; used to bucket the memo. */
  hash(state: S): string;
  describe?(input: I, output: O | undefined): string;
  describeState?(state: S): string;
}

export interface CheckOptions {
  /** Memoised states allowed per partition before giving up with "unknown". */
  maxStates?: number;
  /** Wall budget for the whole check, measured with `now` (required with it). */
  timeoutMs?: number;
  /** Clock in milliseconds; injected so this file never reads real time itself. */
  now?: () => number;
}

export interface CheckResult {
  result: "ok" | "illegal" | "unknown";
  /** The partition that was illegal (or the first one that ran out of budget). */
  partitionKey?: string;
  explanation?: string;
  /** Memoised (linearized set, state) pairs over the partitions searched: a measure of work. */
  stateCount: number;
}

/** A malformed history or option: the message names the operation or option at fault. */
export class LinearizabilityInputError extends Error {
  override name = "LinearizabilityInputError";
}

/** Default per-partition bound on memoised (linearized set, state) pairs. */
export const CHECK_STATE_COUNT_MAX_DEFAULT = 1_000_000;
/** The clock is read once per this many search iterations. */
const CLOCK_CHECK_INTERVAL_ITERATIONS = 1024;

/**
 * Checks that `ops` are linearizable with respect to `model`.
 * Illegal wins over unknown: every partition is checked unless one is illegal.
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult {
  const budget = makeBudget(options);
  ops.forEach(validateOperation);
  const partitions = model.partition ? model.partition(ops) : [ops.slice()];
  const partitionedCount = partitions.reduce((sum, part) => sum + part.length, 0);
  if (partitionedCount !== ops.length) {
    throw new LinearizabilityInputError(
      `model.partition returned ${partitionedCount} operations for a history of ${ops.length}`,
    );
  }
  let firstUnknown: PartitionVerdict | undefined;
  let stateCount = 0;
  for (let index = 0; index < partitions.length; index++) {
    const part = partitions[index]!;
    if (part.length === 0) continue;
    const key = model.partitionKey ? model.partitionKey(part) : String(index);
    const search = new PartitionSearch(model, part, key, budget);
    const verdict = search.run();
    stateCount += search.stateCount;
    if (verdict.result === "illegal") return { ...verdict, stateCount };
    if (verdict.result === "unknown" && firstUnknown === undefined) firstUnknown = verdict;
  }
  return firstUnknown === undefined ? { result: "ok", stateCount } : { ...firstUnknown, stateCount };
}

interface Budget {
  stateCountMax: number;
  /** Returns a reason when the deadline has passed, else undefined. */
  expired(): string | undefined;
}

function makeBudget(options: CheckOptions): Budget {
  const stateCountMax = options.maxStates ?? CHECK_STATE_COUNT_MAX_DEFAULT;
  if (!Number.isInteger(stateCountMax) || stateCountMax < 1) {
    throw new LinearizabilityInputError(
      `checkOperations: maxStates must be an integer >= 1, got ${stateCountMax}`,
    );
  }
  const { timeoutMs, now } = options;
  if (timeoutMs === undefined) return { stateCountMax, expired: () => undefined };
  if (!(timeoutMs > 0)) {
    throw new LinearizabilityInputError(`checkOperations: timeoutMs must be > 0, got ${timeoutMs}`);
  }
  if (now === undefined) {
    throw new LinearizabilityInputError("checkOperations: timeoutMs needs a clock; pass options.now too");
  }
  const deadlineMs = now() + timeoutMs;
  return {
    stateCountMax,
    expired: () => (now() >= deadlineMs ? `timed out after ${timeoutMs} ms` : undefined),
  };
}

function validateOperation<I, O>(op: Operation<I, O>, index: number): void {
  const where = `operation ${index} (client ${op.clientId})`;
  if (!Number.isFinite(op.call)) {
    throw new LinearizabilityInputError(`${where}: call tick must be finite, got ${op.call}`);
  }
  if (Number.isNaN(op.return) || op.return < op.call) {
    throw new LinearizabilityInputError(
      `${where}: return tick ${op.return} is before its call tick ${op.call}`,
    );
  }
  if (op.return === Infinity && op.output !== undefined) {
    throw new LinearizabilityInputError(`${where}: never returned (return = Infinity) but has an output`);
  }
  if (op.return !== Infinity && op.output === undefined) {
    throw new LinearizabilityInputError(
      `${where}: returned at tick ${op.return} without an output; an operation with an unknown outcome ` +
        "must have return = Infinity",
    );
  }
}

type PartitionVerdict = Omit<CheckResult, "stateCount">;

/** One call or return event in the doubly linked event list. */
interface EventNode {
  /** Index into the partition's operations; -1 for the head sentinel. */
  opIndex: number;
  /** For a call, its return event; null for a return (and the head). */
  match: EventNode | null;
  prev: EventNode | null;
  next: EventNode | null;
}

interface Frame<S> {
  call: EventNode;
  stateBefore: S;
}

interface Memo<S> {
  bits: Uint32Array;
  state: S;
}

/** The Wing–Gong/Lowe search over one partition; iterative, with explicit undo. */
class PartitionSearch<S, I, O> {
  readonly #head: EventNode;
  readonly #memo = new Map<string, Memo<S>[]>();
  #memoCount = 0;
  #linearized: Uint32Array;
  #completedRemaining = 0;
  readonly #stack: Frame<S>[] = [];
  // The deepest partial linearization seen, for the explanation of an illegal verdict.
  #best: { opIndexes: number[]; state: S; blockedOpIndex: number };

  constructor(
    readonly model: Model<S, I, O>,
    readonly ops: readonly Operation<I, O>[],
    readonly key: string,
    readonly budget: Budget,
  ) {
    this.#head = buildEventList(ops);
    this.#linearized = new Uint32Array(Math.ceil(ops.length / 32));
    for (const op of ops) if (op.return !== Infinity) this.#completedRemaining++;
    this.#best = { opIndexes: [], state: model.init(), blockedOpIndex: -1 };
  }

  get stateCount(): number {
    return this.#memoCount;
  }

  run(): PartitionVerdict {
    let state = this.model.init();
    let entry = this.#head.next;
    for (let iteration = 1; this.#completedRemaining > 0; iteration++) {
      if (iteration % CLOCK_CHECK_INTERVAL_ITERATIONS === 0) {
        const reason = this.budget.expired();
        if (reason !== undefined) return this.#unknown(reason);
      }
      if (entry === null) throw new Error(`linearizability: ran off the event list in partition ${this.key}`);
      if (entry.match !== null) {
        const op = this.ops[entry.opIndex]!;
        const stepped = this.model.step(state, op.input, op.output);
        if (!stepped.ok) {
          entry = entry.next;
          continue;
        }
        const bits = this.#linearized.slice();
        setBit(bits, entry.opIndex);
        if (this.#memoHas(bits, stepped.state)) {
          entry = entry.next;
          continue;
        }
        if (this.#memoCount >= this.budget.stateCountMax) {
          return this.#unknown(`explored ${this.#memoCount} states (maxStates)`);
        }
        this.#memoAdd(bits, stepped.state);
        this.#stack.push({ call: entry, stateBefore: state });
        state = stepped.state;
        this.#linearized = bits;
        if (op.return !== Infinity) this.#completedRemaining--;
        lift(entry);
        this.#noteDepth(state);
        entry = this.#head.next;
      } else {
        // A return: its operation must be linearized before anything after it. Backtrack.
        this.#noteBlocked(entry.opIndex);
        const frame = this.#stack.pop();
        if (frame === undefined) return this.#illegal();
        unlift(frame.call);
        state = frame.stateBefore;
        clearBit(this.#linearized, frame.call.opIndex);
        if (this.ops[frame.call.opIndex]!.return !== Infinity) this.#completedRemaining++;
        entry = frame.call.next;
      }
    }
    return { result: "ok" };
  }

  #memoKey(bits: Uint32Array, state: S): string {
    return `${hashBits(bits)}:${this.model.hash(state)}`;
  }

  #memoHas(bits: Uint32Array, state: S): boolean {
    const bucket = this.#memo.get(this.#memoKey(bits, state));
    if (bucket === undefined) return false;
    return bucket.some((m) => bitsEqual(m.bits, bits) && this.model.equal(m.state, state));
  }

  #memoAdd(bits: Uint32Array, state: S): void {
    const key = this.#memoKey(bits, state);
    const bucket = this.#memo.get(key);
    if (bucket === undefined) this.#memo.set(key, [{ bits, state }]);
    else bucket.push({ bits, state });
    this.#memoCount++;
  }

  #noteDepth(state: S): void {
    if (this.#stack.length <= this.#best.opIndexes.length) return;
    this.#best = { opIndexes: this.#stack.map((f) => f.call.opIndex), state, blockedOpIndex: -1 };
  }

  #noteBlocked(opIndex: number): void {
    if (this.#stack.length === this.#best.opIndexes.length && this.#best.blockedOpIndex === -1) {
      this.#best.blockedOpIndex = opIndex;
    }
  }

  #unknown(reason: string): PartitionVerdict {
    return {
      result: "unknown",
      partitionKey: this.key,
      explanation: `partition ${this.key}: ${reason} over ${this.ops.length} operations; no verdict`,
    };
  }

  #illegal(): PartitionVerdict {
    const best = this.#best;
    const prefix = best.opIndexes.map((i) => `  ${this.#describeOp(i)}`).join("\n");
    const stateText = this.model.describeState
      ? this.model.describeState(best.state)
      : JSON.stringify(best.state);
    const blocked =
      best.blockedOpIndex === -1
        ? ""
        : `\nthen ${this.#describeOp(best.blockedOpIndex)} had to take effect by its return, but from state ` +
          `${stateText} no remaining operation (itself included) could be applied consistently`;
    return {
      result: "illegal",
      partitionKey: this.key,
      explanation:
        `partition ${this.key}: ${this.ops.length} operations are not linearizable; ` +
        `the longest legal prefix has ${best.opIndexes.length}:\n${prefix}${blocked}`,
    };
  }

  #describeOp(opIndex: number): string {
    const op = this.ops[opIndex]!;
    const text = this.model.describe
      ? this.model.describe(op.input, op.output)
      : `${JSON.stringify(op.input)} -> ${op.output === undefined ? "?" : JSON.stringify(op.output)}`;
    return `client ${op.clientId} ${text} [${op.call}, ${op.return}]`;
  }
}

/** Builds head -> events sorted by tick, calls before returns on equal ticks (closed intervals). */
function buildEventList<I, O>(ops: readonly Operation<I, O>[]): EventNode {
  const events: { tick: number; isReturn: boolean; node: EventNode }[] = [];
  ops.forEach((op, opIndex) => {
    const ret: EventNode = { opIndex, match: null, prev: null, next: null };
    const call: EventNode = { opIndex, match: ret, prev: null, next: null };
    events.push(
      { tick: op.call, isReturn: false, node: call },
      { tick: op.return, isReturn: true, node: ret },
    );
  });
  events.sort((a, b) => {
    if (a.tick !== b.tick) return a.tick < b.tick ? -1 : 1;
    if (a.isReturn !== b.isReturn) return a.isReturn ? 1 : -1;
    return a.node.opIndex - b.node.opIndex;
  });
  const head: EventNode = { opIndex: -1, match: null, prev: null, next: null };
  let last = head;
  for (const { node } of events) {
    last.next = node;
    node.prev = last;
    last = node;
  }
  return head;
}

/** Unlinks a call and its return. A call always has its return later in the list. */
function lift(call: EventNode): void {
  const ret = call.match!;
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Relinks what `lift` unlinked; valid because lifts are undone in LIFO order. */
function unlift(call: EventNode): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

function setBit(bits: Uint32Array, index: number): void {
  bits[index >>> 5]! |= 1 << (index & 31);
}

function clearBit(bits: Uint32Array, index: number): void {
  bits[index >>> 5]! &= ~(1 << (index & 31));
}

function bitsEqual(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** FNV-1a style 32-bit mix over the words. */
function hashBits(bits: Uint32Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bits.length; i++) hash = Math.imul(hash ^ bits[i]!, 0x01000193) >>> 0;
  return hash;
}

// ---------------------------------------------------------------------------------------------
// Models

export type RegisterInput = { op: "put"; value: number } | { op: "get" };
/** `value` is what a get read; a put's output carries nothing. */
export type RegisterOutput = { value?: number };

/** A single integer register, initially 0. */
export const registerModel: Model<number, RegisterInput, RegisterOutput> = {
  init: () => 0,
  step(state, input, output) {
    if (input.op === "put") return { ok: true, state: input.value };
    return { ok: output === undefined || output.value === state, state };
  },
  equal: (a, b) => a === b,
  hash: (s) => String(s),
  describe(input, output) {
    if (input.op === "put") return `put(${input.value})`;
    return `get() -> ${output === undefined ? "?" : output.value}`;
  },
};

export type KvInput =
  | { op: "put"; key: string; value: string }
  | { op: "get"; key: string }
  | { op: "delete"; key: string }
  | { op: "cas"; key: string; expected: string | null; value: string }
  | { op: "add"; key: string; delta: number };
/**
 * A get's `value` (null or absent: key not found); a cas's `ok` (absent counts as false); an
 * add's `value`, the counter after it.
 */
export type KvOutput = { value?: string | null; ok?: boolean };

/**
 * A string key-value map with compare-and-set and counters, partitioned per key. Its state is
 * the value of one key (null when absent), so it must be used through its partition
 * (checkOperations does). `cas` with `expected: null` means "only if absent"; `add` adds to the
 * integer the value spells (absent: 0) and returns the sum, as the kv app does.
 */
export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case "put":
        return { ok: true, state: input.value };
      case "delete":
        return { ok: true, state: null };
      case "get":
        return { ok: output === undefined || (output.value ?? null) === state, state };
      case "cas": {
        const matched = state === input.expected;
        const ok = output === undefined || (output.ok === true) === matched;
        return { ok, state: matched ? input.value : state };
      }
      case "add": {
        const base = state === null ? 0 : Number(state);
        if (state !== null && !/^-?(0|[1-9][0-9]*)$/.test(state)) return { ok: false, state };
        const sum = String(base + input.delta);
        return { ok: output === undefined || output.value === sum, state: sum };
      }
    }
  },
  partition(ops) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of ops) {
      const part = byKey.get(op.input.key);
      if (part === undefined) byKey.set(op.input.key, [op]);
      else part.push(op);
    }
    return [...byKey.values()];
  },
  partitionKey: (ops) => JSON.stringify(ops[0]!.input.key),
  equal: (a, b) => a === b,
  hash: (s) => (s === null ? "null" : `"${s}`),
  describe: describeKv,
  describeState: (s) => (s === null ? "(absent)" : JSON.stringify(s)),
};

function describeKv(input: KvInput, output: KvOutput | undefined): string {
  const key = JSON.stringify(input.key);
  const shown = (v: string | null | undefined) =>
    v === undefined || v === null ? "(absent)" : JSON.stringify(v);
  switch (input.op) {
    case "put":
      return `put(${key}, ${JSON.stringify(input.value)})`;
    case "delete":
      return `delete(${key})`;
    case "get":
      return `get(${key}) -> ${output === undefined ? "?" : shown(output.value)}`;
    case "cas":
      return (
        `cas(${key}, ${shown(input.expected)} => ${JSON.stringify(input.value)}) -> ` +
        `${output === undefined ? "?" : output.ok === true}`
      );
    case "add":
      return `add(${key}, ${input.delta}) -> ${output === undefined ? "?" : shown(output.value)}`;
  }
}
