import { describe, expect, test } from "bun:test";
import { HistoryError, HistoryRecorder } from "./history.js";
import {
  checkOperations,
  type KvInput,
  type KvOutput,
  kvModel,
  LinearizabilityInputError,
  type Model,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from "./linearizability.js";

type RegOp = Operation<RegisterInput, RegisterOutput>;
type KvOp = Operation<KvInput, KvOutput>;

const put = (clientId: number, value: number, call: number, ret: number): RegOp => ({
  clientId,
  input: { op: "put", value },
  call,
  output: ret === Infinity ? undefined : {},
  return: ret,
});
const get = (clientId: number, value: number, call: number, ret: number): RegOp => ({
  clientId,
  input: { op: "get" },
  call,
  output: { value },
  return: ret,
});
const kv = (clientId: number, input: KvInput, call: number, ret: number, output?: KvOutput): KvOp => ({
  clientId,
  input,
  call,
  output: ret === Infinity ? undefined : (output ?? {}),
  return: ret,
});

const checkRegister = (ops: RegOp[]) => checkOperations(registerModel, ops).result;
const checkKv = (ops: KvOp[]) => checkOperations(kvModel, ops).result;

describe("register: linearizable histories", () => {
  test("an empty history is ok", () => {
    expect(checkOperations(registerModel, [])).toEqual({ result: "ok", stateCount: 0 });
  });

  test("sequential put then get of the written value is ok", () => {
    expect(checkRegister([put(1, 1, 0, 10), get(2, 1, 20, 30)])).toBe("ok");
  });

  test("a read overlapping a write may see the old value", () => {
    expect(checkRegister([put(1, 1, 0, 10), get(2, 0, 5, 15)])).toBe("ok");
  });

  test("a read overlapping a write may see the new value", () => {
    expect(checkRegister([put(1, 1, 0, 10), get(2, 1, 5, 15)])).toBe("ok");
  });

  test("intervals are closed: a read called at the write's return tick may see the old value", () => {
    expect(checkRegister([put(1, 1, 0, 10), get(2, 0, 10, 20)])).toBe("ok");
  });

  test("concurrent writes may be ordered either way by later reads", () => {
    const ops = [put(1, 1, 0, 10), put(2, 2, 0, 10), get(3, 1, 20, 30), get(4, 1, 40, 50)];
    expect(checkRegister(ops)).toBe("ok");
  });

  test("a never-returned write that a later read saw is considered applied", () => {
    expect(checkRegister([put(1, 1, 0, Infinity), get(2, 1, 10, 20), get(2, 1, 30, 40)])).toBe("ok");
  });

  test("a never-returned write that no read saw is considered not applied", () => {
    expect(checkRegister([put(1, 1, 0, Infinity), get(2, 0, 10, 20), get(2, 0, 30, 40)])).toBe("ok");
  });

  test("a never-returned write may take effect long after its call", () => {
    expect(checkRegister([put(1, 1, 0, Infinity), get(2, 0, 10, 20), get(2, 1, 30, 40)])).toBe("ok");
  });
});

describe("register: non-linearizable histories", () => {
  test("the classic stale read: a write completes, then a later read returns the old value", () => {
    const verdict = checkOperations(registerModel, [put(1, 1, 0, 10), get(2, 0, 20, 30)]);
    expect(verdict.result).toBe("illegal");
    expect(verdict.explanation).toContain("get() -> 0");
  });

  test("a read that sees a value before its write was invoked is illegal", () => {
    expect(checkRegister([get(2, 1, 0, 5), put(1, 1, 10, 20)])).toBe("illegal");
  });

  test("a never-returned write cannot be seen before its call", () => {
    expect(checkRegister([get(2, 1, 0, 5), put(1, 1, 10, Infinity)])).toBe("illegal");
  });

  test("a never-returned write once seen cannot be unseen", () => {
    expect(checkRegister([put(1, 1, 0, Infinity), get(2, 1, 10, 20), get(2, 0, 30, 40)])).toBe("illegal");
  });

  test("two clients reading two concurrent writes in opposite orders is illegal", () => {
    const ops = [
      put(1, 1, 0, 100),
      put(2, 2, 0, 100),
      get(3, 1, 10, 20),
      get(3, 2, 30, 40),
      get(4, 2, 10, 20),
      get(4, 1, 30, 40),
    ];
    expect(checkRegister(ops)).toBe("illegal");
  });

  test("the explanation lists the longest legal prefix and the operation that was stuck", () => {
    const verdict = checkOperations(registerModel, [put(1, 1, 0, 10), get(2, 1, 20, 30), get(3, 0, 40, 50)]);
    expect(verdict.result).toBe("illegal");
    expect(verdict.explanation).toContain("longest legal prefix has 2");
    expect(verdict.explanation).toContain("client 3 get() -> 0 [40, 50]");
  });
});

describe("kv: compare-and-set, delete, partitions", () => {
  test("a sequential cas chain with a failed cas is ok", () => {
    const ops = [
      kv(1, { op: "cas", key: "k", expected: null, value: "a" }, 0, 10, { ok: true }),
      kv(2, { op: "cas", key: "k", expected: "a", value: "b" }, 20, 30, { ok: true }),
      kv(3, { op: "cas", key: "k", expected: "a", value: "c" }, 40, 50, { ok: false }),
      kv(1, { op: "get", key: "k" }, 60, 70, { value: "b" }),
    ];
    expect(checkKv(ops)).toBe("ok");
  });

  test("two concurrent cas from the same expected value cannot both succeed (lost cas)", () => {
    const ops = [
      kv(1, { op: "put", key: "k", value: "a" }, 0, 10),
      kv(2, { op: "cas", key: "k", expected: "a", value: "b" }, 20, 30, { ok: true }),
      kv(3, { op: "cas", key: "k", expected: "a", value: "c" }, 20, 30, { ok: true }),
    ];
    expect(checkKv(ops)).toBe("illegal");
  });

  test("a successful cas whose write a later read does not see is illegal", () => {
    const ops = [
      kv(1, { op: "put", key: "k", value: "a" }, 0, 10),
      kv(2, { op: "cas", key: "k", expected: "a", value: "b" }, 20, 30, { ok: true }),
      kv(3, { op: "get", key: "k" }, 40, 50, { value: "a" }),
    ];
    expect(checkKv(ops)).toBe("illegal");
  });

  test("a never-returned cas that a later read saw is considered applied", () => {
    const ops = [
      kv(1, { op: "cas", key: "k", expected: null, value: "x" }, 0, Infinity),
      kv(2, { op: "get", key: "k" }, 10, 20, { value: "x" }),
    ];
    expect(checkKv(ops)).toBe("ok");
  });

  test("a delete makes later reads see the key absent, as null or as a missing value", () => {
    const ops = [
      kv(1, { op: "put", key: "k", value: "a" }, 0, 10),
      kv(1, { op: "delete", key: "k" }, 20, 30),
      kv(2, { op: "get", key: "k" }, 40, 50, { value: null }),
      kv(2, { op: "get", key: "k" }, 60, 70, {}),
    ];
    expect(checkKv(ops)).toBe("ok");
  });

  test("keys are checked independently and the illegal key is named", () => {
    const ops = [
      kv(1, { op: "put", key: "a", value: "1" }, 0, 10),
      kv(2, { op: "put", key: "b", value: "1" }, 0, 10),
      kv(3, { op: "get", key: "a" }, 20, 30, { value: "1" }),
      kv(4, { op: "get", key: "b" }, 20, 30, { value: null }),
    ];
    const verdict = checkOperations(kvModel, ops);
    expect(verdict.result).toBe("illegal");
    expect(verdict.partitionKey).toBe('"b"');
    expect(verdict.explanation).toContain('get("b") -> (absent)');
  });

  test("concurrent adds may apply in either order; each returns the sum at its place", () => {
    const ops = [
      kv(1, { op: "add", key: "n", delta: 2 }, 0, 10, { value: "5" }),
      kv(2, { op: "add", key: "n", delta: 3 }, 0, 10, { value: "3" }),
      kv(3, { op: "get", key: "n" }, 20, 30, { value: "5" }),
    ];
    expect(checkKv(ops)).toBe("ok");
  });

  test("an add applied twice (a retry counted again) is illegal", () => {
    const ops = [
      kv(1, { op: "add", key: "n", delta: 1 }, 0, 10, { value: "1" }),
      kv(2, { op: "get", key: "n" }, 20, 30, { value: "2" }),
    ];
    expect(checkKv(ops)).toBe("illegal");
  });

  test("a never-returned add may count or not, but only once", () => {
    const pending = kv(1, { op: "add", key: "n", delta: 4 }, 0, Infinity);
    const read = (value: string) => kv(2, { op: "get", key: "n" }, 20, 30, { value });
    expect(checkKv([pending, read("4")])).toBe("ok");
    expect(checkKv([pending, kv(2, { op: "get", key: "n" }, 20, 30, { value: null })])).toBe("ok");
    expect(checkKv([pending, read("8")])).toBe("illegal");
  });

  test("an add on a value that is not an integer is illegal (the kv app rejects it)", () => {
    const ops = [
      kv(1, { op: "put", key: "n", value: "x" }, 0, 10),
      kv(2, { op: "add", key: "n", delta: 1 }, 20, 30, { value: "1" }),
    ];
    expect(checkKv(ops)).toBe("illegal");
  });

  test("a value written to one key is not readable from another", () => {
    const ops = [
      kv(1, { op: "put", key: "a", value: "1" }, 0, 10),
      kv(2, { op: "get", key: "b" }, 20, 30, { value: "1" }),
    ];
    expect(checkKv(ops)).toBe("illegal");
  });
});

describe("search bounds", () => {
  test("running out of maxStates yields unknown, not ok, on an illegal history", () => {
    const verdict = checkOperations(registerModel, [put(1, 1, 0, 10), get(2, 1, 20, 30), get(3, 0, 40, 50)], {
      maxStates: 1,
    });
    expect(verdict.result).toBe("unknown");
    expect(verdict.explanation).toContain("maxStates");
    expect(verdict.stateCount).toBe(1);
  });

  test("maxStates is reached exactly: a history needing n states passes with n and not n - 1", () => {
    const ops = [put(1, 1, 0, 10), get(2, 1, 20, 30), put(3, 2, 40, 50)];
    expect(checkOperations(registerModel, ops, { maxStates: 3 }).result).toBe("ok");
    expect(checkOperations(registerModel, ops, { maxStates: 2 }).result).toBe("unknown");
  });

  test("a deadline on the injected clock yields unknown", () => {
    let clockMs = 0;
    const ops = randomKvHistory(seededRng(7), {
      opCount: 3000,
      keyCount: 1,
      clientCount: 10,
      pendingPercent: 0,
    });
    const verdict = checkOperations(kvModel, ops, { timeoutMs: 5, now: () => clockMs++ });
    expect(verdict.result).toBe("unknown");
    expect(verdict.explanation).toContain("timed out after 5 ms");
  });

  test("an illegal partition wins over an unknown one", () => {
    const ops = [
      ...randomKvHistory(seededRng(3), { opCount: 200, keyCount: 1, clientCount: 10, pendingPercent: 0 }),
      kv(1, { op: "put", key: "z", value: "1" }, 0, 10),
      kv(2, { op: "get", key: "z" }, 20, 30, { value: "0" }),
    ];
    const verdict = checkOperations(kvModel, ops, { maxStates: 2 });
    expect(verdict.result).toBe("illegal");
    expect(verdict.partitionKey).toBe('"z"');
  });
});

describe("bad input", () => {
  test("a return before the call is rejected, naming the operation", () => {
    expect(() => checkRegister([put(1, 1, 0, 10), get(2, 0, 20, 5)])).toThrow(
      new LinearizabilityInputError("operation 1 (client 2): return tick 5 is before its call tick 20"),
    );
  });

  test("a non-finite call tick is rejected", () => {
    expect(() => checkRegister([get(2, 0, Number.NaN, 5)])).toThrow(LinearizabilityInputError);
  });

  test("a never-returned operation with an output is rejected", () => {
    expect(() => checkRegister([{ ...get(2, 0, 0, 5), return: Infinity }])).toThrow(/never returned/);
  });

  test("a returned operation without an output is rejected", () => {
    expect(() => checkRegister([{ ...get(2, 0, 0, 5), output: undefined }])).toThrow(/without an output/);
  });

  test("maxStates below 1 is rejected", () => {
    expect(() => checkOperations(registerModel, [], { maxStates: 0 })).toThrow(/maxStates must be/);
  });

  test("timeoutMs without a clock is rejected", () => {
    expect(() => checkOperations(registerModel, [], { timeoutMs: 10 })).toThrow(/pass options.now/);
  });
});

describe("randomized", () => {
  test("histories from a sequential execution with random overlaps are always ok", () => {
    const rng = seededRng(1);
    for (let round = 0; round < 40; round++) {
      const ops = randomKvHistory(rng, { opCount: 150, keyCount: 3, clientCount: 5, pendingPercent: 10 });
      const verdict = checkOperations(kvModel, ops, { maxStates: 200_000 });
      expect({ round, ...verdict }).toEqual({ round, result: "ok", stateCount: verdict.stateCount });
    }
  });

  test("corrupting one read to a never-written value is never ok", () => {
    const rng = seededRng(2);
    let illegalCount = 0;
    for (let round = 0; round < 40; round++) {
      const ops = randomKvHistory(rng, { opCount: 150, keyCount: 3, clientCount: 5, pendingPercent: 10 });
      const reads = ops.filter((op) => op.input.op === "get" && op.return !== Infinity);
      const victim = reads[rng(reads.length)]!;
      victim.output = { value: "never-written" };
      const verdict = checkOperations(kvModel, ops, { maxStates: 200_000 });
      expect(verdict.result).not.toBe("ok");
      if (verdict.result === "illegal") illegalCount++;
    }
    expect(illegalCount).toBe(40);
  });

  test("corrupting one read to another written value never crashes the checker", () => {
    const rng = seededRng(5);
    for (let round = 0; round < 40; round++) {
      const ops = randomKvHistory(rng, { opCount: 150, keyCount: 3, clientCount: 5, pendingPercent: 10 });
      const reads = ops.filter((op) => op.input.op === "get" && op.return !== Infinity);
      reads[rng(reads.length)]!.output = { value: `v${rng(VALUE_COUNT)}` };
      expect(["ok", "illegal", "unknown"]).toContain(
        checkOperations(kvModel, ops, { maxStates: 50_000 }).result,
      );
    }
  });

  test("agrees with a brute-force search on small random register histories", () => {
    const rng = seededRng(11);
    const counts = { ok: 0, illegal: 0 };
    for (let round = 0; round < 600; round++) {
      const ops = randomSmallRegisterHistory(rng);
      const expected = bruteForceLinearizable(registerModel, ops) ? "ok" : "illegal";
      expect({ round, result: checkRegister(ops) }).toEqual({ round, result: expected });
      counts[expected]++;
    }
    // Both outcomes must be exercised, or the comparison proves little.
    expect(counts.ok).toBeGreaterThan(50);
    expect(counts.illegal).toBeGreaterThan(50);
  });
});

describe("randomized kv", () => {
  test("agrees with a brute-force search on small random kv histories with cas, delete and pending ops", () => {
    const rng = seededRng(13);
    const counts = { ok: 0, illegal: 0 };
    for (let round = 0; round < 600; round++) {
      const ops = randomSmallKvHistory(rng);
      const expected = bruteForceLinearizable(kvModel, ops) ? "ok" : "illegal";
      expect({ round, result: checkKv(ops) }).toEqual({ round, result: expected });
      counts[expected]++;
    }
    expect(counts.ok).toBeGreaterThan(50);
    expect(counts.illegal).toBeGreaterThan(50);
  });
});

describe("performance", () => {
  test("2,000 operations over 20 keys from 10 clients check with about one memoised state per operation", () => {
    const ops = randomKvHistory(seededRng(42), {
      opCount: 2000,
      keyCount: 20,
      clientCount: 10,
      pendingPercent: 5,
    });
    const verdict = checkOperations(kvModel, ops, { maxStates: 20_000 });
    expect(verdict.result).toBe("ok");
    // Work, not wall-clock time: the memo makes a linearizable history cost about one state per
    // operation (2,024 here); a search that backtracks without it would explode far past 2×.
    expect(verdict.stateCount).toBeGreaterThanOrEqual(ops.length);
    expect(verdict.stateCount).toBeLessThanOrEqual(2 * ops.length);
  });
});

describe("HistoryRecorder", () => {
  test("records completed operations with their call and return ticks", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    const id = history.invoke(1, { op: "put", value: 1 }, 3);
    history.complete(id, {}, 7);
    expect(history.operations()).toEqual([
      { clientId: 1, input: { op: "put", value: 1 }, call: 3, output: {}, return: 7 },
    ]);
  });

  test("an operation never completed has return Infinity and no output", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    history.invoke(1, { op: "put", value: 1 }, 3);
    expect(history.operations()).toEqual([
      { clientId: 1, input: { op: "put", value: 1 }, call: 3, output: undefined, return: Infinity },
    ]);
  });

  test("a recorded history feeds the checker", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    history.complete(history.invoke(1, { op: "put", value: 1 }, 0), {}, 10);
    history.complete(history.invoke(2, { op: "get" }, 20), { value: 0 }, 30);
    expect(checkOperations(registerModel, history.operations()).result).toBe("illegal");
  });

  test("completing an unknown id is rejected", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    expect(() => history.complete(4, {}, 1)).toThrow(
      new HistoryError("HistoryRecorder.complete: unknown operation id 4"),
    );
  });

  test("completing twice is rejected", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    const id = history.invoke(1, { op: "get" }, 0);
    history.complete(id, { value: 0 }, 1);
    expect(() => history.complete(id, { value: 0 }, 2)).toThrow(/already completed at tick 1/);
  });

  test("a return tick before the call tick is rejected", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    const id = history.invoke(1, { op: "get" }, 5);
    expect(() => history.complete(id, { value: 0 }, 4)).toThrow(/before its call at tick 5/);
  });

  test("a non-finite call tick is rejected", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    expect(() => history.invoke(1, { op: "get" }, Infinity)).toThrow(/must be finite/);
  });

  test("the history holds exactly operationCountMax operations, then refuses more", () => {
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>({ operationCountMax: 2 });
    history.invoke(1, { op: "get" }, 0);
    history.invoke(1, { op: "get" }, 1);
    expect(history.operationCount).toBe(2);
    expect(() => history.invoke(1, { op: "get" }, 2)).toThrow(/history is full \(2 operations\)/);
  });

  test("operationCountMax below 1 is rejected", () => {
    expect(() => new HistoryRecorder({ operationCountMax: 0 })).toThrow(/operationCountMax must be/);
  });
});

// ---------------------------------------------------------------------------------------------
// Generators and a brute-force oracle.

type IntRng = (maxExclusive: number) => number;

/** mulberry32: a small seeded PRNG, so every failure reproduces from its seed. */
function seededRng(seed: number): IntRng {
  let a = seed >>> 0;
  return (maxExclusive) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * maxExclusive);
  };
}

const VALUE_COUNT = 4;

/**
 * Runs operations one at a time against a map at strictly increasing linearization ticks, and
 * gives each an interval around its tick; each client's operations do not overlap. The result is
 * linearizable by construction. A pending operation still took effect; it just never returned.
 */
function randomKvHistory(
  rng: IntRng,
  options: { opCount: number; keyCount: number; clientCount: number; pendingPercent: number },
): KvOp[] {
  const store = new Map<string, string>();
  const clientFreeTick = new Array<number>(options.clientCount).fill(0);
  const ops: KvOp[] = [];
  let tick = 0;
  for (let i = 0; i < options.opCount; i++) {
    tick += 1 + rng(3);
    // Every client busy: time moves on to the first one free.
    tick = Math.max(tick, Math.min(...clientFreeTick));
    let clientId = rng(options.clientCount);
    while (clientFreeTick[clientId]! > tick) clientId = (clientId + 1) % options.clientCount;
    const key = `k${rng(options.keyCount)}`;
    const input = randomKvInput(rng, key, store.get(key) ?? null);
    const output = applyKv(store, input);
    const call = Math.max(clientFreeTick[clientId]!, tick - rng(15));
    const ret = tick + rng(15);
    clientFreeTick[clientId] = ret + 1;
    const pending = rng(100) < options.pendingPercent;
    ops.push({
      clientId,
      input,
      call,
      output: pending ? undefined : output,
      return: pending ? Infinity : ret,
    });
  }
  return ops;
}

function randomKvInput(rng: IntRng, key: string, current: string | null): KvInput {
  const value = `v${rng(VALUE_COUNT)}`;
  switch (rng(5)) {
    case 0:
      return { op: "put", key, value };
    case 1:
      return { op: "delete", key };
    case 2:
      return { op: "cas", key, expected: rng(2) === 0 ? current : `v${rng(VALUE_COUNT)}`, value };
    default:
      return { op: "get", key };
  }
}

function applyKv(store: Map<string, string>, input: KvInput): KvOutput {
  const current = store.get(input.key) ?? null;
  switch (input.op) {
    case "put":
      store.set(input.key, input.value);
      return { ok: true };
    case "delete":
      store.delete(input.key);
      return { ok: true };
    case "get":
      return { value: current };
    case "cas":
      if (current !== input.expected) return { ok: false };
      store.set(input.key, input.value);
      return { ok: true };
    case "add": {
      const sum = String(Number(current ?? "0") + input.delta);
      store.set(input.key, sum);
      return { value: sum };
    }
  }
}

/** Up to 6 register operations with random intervals, values and outputs; some never return. */
function randomSmallRegisterHistory(rng: IntRng): RegOp[] {
  const ops: RegOp[] = [];
  const opCount = 1 + rng(6);
  for (let i = 0; i < opCount; i++) {
    const call = rng(20);
    const ret = rng(8) === 0 ? Infinity : call + rng(10);
    const clientId = i;
    if (rng(2) === 0) ops.push(put(clientId, 1 + rng(2), call, ret));
    else if (ret !== Infinity) ops.push(get(clientId, rng(3), call, ret));
  }
  return ops;
}

/** Up to 6 operations on one key with random intervals, inputs and outputs; some never return. */
function randomSmallKvHistory(rng: IntRng): KvOp[] {
  const ops: KvOp[] = [];
  const opCount = 1 + rng(6);
  const value = () => (rng(3) === 0 ? null : `v${rng(2)}`);
  for (let i = 0; i < opCount; i++) {
    const call = rng(20);
    const ret = rng(6) === 0 ? Infinity : call + rng(10);
    const input = randomKvInput(rng, "k", value());
    const output: KvOutput = input.op === "get" ? { value: value() } : { ok: rng(2) === 0 };
    ops.push(kv(i, input, call, ret, output));
  }
  return ops;
}

/** Tries every order that respects real time; a never-returned operation may also be left out. */
function bruteForceLinearizable<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): boolean {
  const placed = new Array<boolean>(ops.length).fill(false);
  const search = (state: S, completedLeft: number): boolean => {
    if (completedLeft === 0) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i]) continue;
      const op = ops[i]!;
      const mustWait = ops.some((other, j) => !placed[j] && j !== i && other.return < op.call);
      if (mustWait) continue;
      const stepped = model.step(state, op.input, op.output);
      if (!stepped.ok) continue;
      placed[i] = true;
      const found = search(stepped.state, completedLeft - (op.return === Infinity ? 0 : 1));
      placed[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(model.init(), ops.filter((op) => op.return !== Infinity).length);
}
