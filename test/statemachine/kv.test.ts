import { describe, expect, test } from "bun:test";
import { longboat } from "../../src/pb/longboat.js";
import {
  compareKeys,
  decodeKvQueryResult,
  encodeKvCommand,
  encodeKvQuery,
  KV_MAX_KEY_BYTES,
  KV_MAX_SCAN_LIMIT,
  KV_MAX_VALUE_BYTES,
  KvQueryError,
  KvStateMachine,
  validateKvCommand,
} from "../../src/statemachine/kv.ts";
import { RESULT_REJECTED } from "../../src/statemachine/types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
let nextIndex = 1;

function run(sm: KvStateMachine, cmd: Uint8Array) {
  return sm.update([{ index: nextIndex++, cmd }])[0]!;
}
const put = (sm: KvStateMachine, key: string, value: string) =>
  run(sm, encodeKvCommand({ op: "put", key, value: enc.encode(value) }));
const get = (sm: KvStateMachine, key: string) =>
  decodeKvQueryResult(sm.lookup(encodeKvQuery({ op: "get", key })));
const scan = (sm: KvStateMachine, start: string, end: string, limit: number) =>
  decodeKvQueryResult(sm.lookup(encodeKvQuery({ op: "scan", start, end, limit })));

describe("kv commands", () => {
  test("put returns 1 and get finds the value", () => {
    const sm = new KvStateMachine();
    expect(put(sm, "a", "1").value).toBe(1);
    const r = get(sm, "a");
    expect(r.found).toBe(true);
    expect(dec.decode(r.value)).toBe("1");
  });

  test("get of a missing key is not found", () => {
    expect(get(new KvStateMachine(), "nope").found).toBe(false);
  });

  test("delete returns 1 when the key existed and 0 when it did not", () => {
    const sm = new KvStateMachine();
    put(sm, "a", "1");
    expect(run(sm, encodeKvCommand({ op: "delete", key: "a" })).value).toBe(1);
    expect(run(sm, encodeKvCommand({ op: "delete", key: "a" })).value).toBe(0);
    expect(get(sm, "a").found).toBe(false);
  });

  test("cas swaps when the current value equals expected", () => {
    const sm = new KvStateMachine();
    put(sm, "a", "old");
    const r = run(
      sm,
      encodeKvCommand({ op: "cas", key: "a", expected: enc.encode("old"), value: enc.encode("new") }),
    );
    expect(r.value).toBe(1);
    expect(dec.decode(get(sm, "a").value)).toBe("new");
  });

  test("cas refuses a mismatch and returns the current value", () => {
    const sm = new KvStateMachine();
    put(sm, "a", "cur");
    const r = run(
      sm,
      encodeKvCommand({ op: "cas", key: "a", expected: enc.encode("x"), value: enc.encode("new") }),
    );
    expect(r.value).toBe(0);
    expect(dec.decode(r.data)).toBe("cur");
    expect(dec.decode(get(sm, "a").value)).toBe("cur");
  });

  test("cas with expected absent creates a missing key and refuses an existing one", () => {
    const sm = new KvStateMachine();
    expect(
      run(sm, encodeKvCommand({ op: "cas", key: "k", expected: null, value: enc.encode("v") })).value,
    ).toBe(1);
    const again = run(sm, encodeKvCommand({ op: "cas", key: "k", expected: null, value: enc.encode("w") }));
    expect(again.value).toBe(0);
    expect(dec.decode(again.data)).toBe("v");
  });

  test("cas on a missing key with an expected value is refused with empty data", () => {
    const sm = new KvStateMachine();
    const r = run(
      sm,
      encodeKvCommand({ op: "cas", key: "k", expected: enc.encode(""), value: enc.encode("v") }),
    );
    expect(r.value).toBe(0);
    expect(r.data.byteLength).toBe(0);
  });

  test("add counts from 0 on a missing key and returns the new value", () => {
    const sm = new KvStateMachine();
    const a = run(sm, encodeKvCommand({ op: "add", key: "n", delta: 5 }));
    expect(a.value).toBe(1);
    expect(dec.decode(a.data)).toBe("5");
    const b = run(sm, encodeKvCommand({ op: "add", key: "n", delta: -7 }));
    expect(dec.decode(b.data)).toBe("-2");
    expect(dec.decode(get(sm, "n").value)).toBe("-2");
  });

  test("add works on a counter written by put as decimal text", () => {
    const sm = new KvStateMachine();
    put(sm, "n", "40");
    expect(dec.decode(run(sm, encodeKvCommand({ op: "add", key: "n", delta: 2 })).data)).toBe("42");
  });

  test("add refuses a value that is not an integer and leaves it as it was", () => {
    const sm = new KvStateMachine();
    for (const v of ["x", "1.5", "01", "", " 3", "9007199254740993"]) {
      put(sm, "n", v);
      const r = run(sm, encodeKvCommand({ op: "add", key: "n", delta: 1 }));
      expect(r.value).toBe(RESULT_REJECTED);
      expect(dec.decode(r.data)).toContain("not an integer counter");
      expect(dec.decode(get(sm, "n").value)).toBe(v);
    }
  });

  test("add refuses a sum beyond ±(2^53 − 1) and leaves the counter as it was", () => {
    const sm = new KvStateMachine();
    put(sm, "n", String(Number.MAX_SAFE_INTEGER));
    const r = run(sm, encodeKvCommand({ op: "add", key: "n", delta: 1 }));
    expect(r.value).toBe(RESULT_REJECTED);
    expect(dec.decode(r.data)).toContain("beyond");
    expect(dec.decode(get(sm, "n").value)).toBe(String(Number.MAX_SAFE_INTEGER));
  });

  test("add refuses an empty key and a delta beyond ±(2^53 − 1), naming them", () => {
    const sm = new KvStateMachine();
    const empty = run(sm, encodeKvCommand({ op: "add", key: "", delta: 1 }));
    expect(empty.value).toBe(RESULT_REJECTED);
    expect(dec.decode(empty.data)).toBe("add: key is empty");
    const huge = run(sm, encodeKvCommand({ op: "add", key: "n", delta: 2 ** 60 }));
    expect(huge.value).toBe(RESULT_REJECTED);
    expect(dec.decode(huge.data)).toContain("add: delta");
    expect(get(sm, "n").found).toBe(false);
  });

  test("a batch applies in order with one result per entry", () => {
    const sm = new KvStateMachine();
    const rs = sm.update([
      { index: 1, cmd: encodeKvCommand({ op: "put", key: "a", value: enc.encode("1") }) },
      { index: 2, cmd: encodeKvCommand({ op: "delete", key: "a" }) },
      { index: 3, cmd: encodeKvCommand({ op: "delete", key: "a" }) },
    ]);
    expect(rs.map((r) => r.value)).toEqual([1, 1, 0]);
  });
});

describe("kv bad input", () => {
  test("a key of exactly 4 KiB is accepted", () => {
    expect(put(new KvStateMachine(), "k".repeat(KV_MAX_KEY_BYTES), "v").value).toBe(1);
  });

  test("a key above 4 KiB is rejected with a reason, not thrown", () => {
    const sm = new KvStateMachine();
    const r = put(sm, "k".repeat(KV_MAX_KEY_BYTES + 1), "v");
    expect(r.value).toBe(RESULT_REJECTED);
    expect(dec.decode(r.data)).toContain("above the limit of 4096");
    expect(sm.size()).toBe(0);
  });

  test("a key counts UTF-8 bytes, not characters", () => {
    const r = put(new KvStateMachine(), "é".repeat(KV_MAX_KEY_BYTES / 2 + 1), "v");
    expect(r.value).toBe(RESULT_REJECTED);
  });

  test("a value of exactly 1 MiB is accepted and one byte more is rejected", () => {
    const sm = new KvStateMachine();
    const ok = run(sm, encodeKvCommand({ op: "put", key: "a", value: new Uint8Array(KV_MAX_VALUE_BYTES) }));
    expect(ok.value).toBe(1);
    const big = run(
      sm,
      encodeKvCommand({ op: "put", key: "b", value: new Uint8Array(KV_MAX_VALUE_BYTES + 1) }),
    );
    expect(big.value).toBe(RESULT_REJECTED);
    expect(dec.decode(big.data)).toContain("value is 1048577 bytes");
  });

  test("an empty key is rejected", () => {
    expect(put(new KvStateMachine(), "", "v").value).toBe(RESULT_REJECTED);
  });

  test("an undecodable command is rejected, not thrown", () => {
    const r = run(new KvStateMachine(), new Uint8Array([0xff, 0xff, 0xff]));
    expect(r.value).toBe(RESULT_REJECTED);
    expect(dec.decode(r.data)).toContain("does not decode");
  });

  test("a command without an operation is rejected", () => {
    const r = run(new KvStateMachine(), longboat.nodehost.v1.KvCommand.encode({}).finish());
    expect(r.value).toBe(RESULT_REJECTED);
    expect(dec.decode(r.data)).toContain("no operation");
  });

  test("an oversized cas value is rejected", () => {
    const r = run(
      new KvStateMachine(),
      encodeKvCommand({ op: "cas", key: "a", expected: null, value: new Uint8Array(KV_MAX_VALUE_BYTES + 1) }),
    );
    expect(r.value).toBe(RESULT_REJECTED);
  });

  test("an undecodable query throws KvQueryError", () => {
    expect(() => new KvStateMachine().lookup(new Uint8Array([0xff, 0xff]))).toThrow(KvQueryError);
  });

  test("a query without an operation throws KvQueryError", () => {
    expect(() => new KvStateMachine().lookup(new Uint8Array(0))).toThrow(/no operation/);
  });
});

describe("kv validateCommand (checked before proposing)", () => {
  const sm = new KvStateMachine();
  const cmd = (c: Parameters<typeof encodeKvCommand>[0]) => encodeKvCommand(c);

  test("accepts every well-formed command, whatever the state", () => {
    expect(sm.validateCommand(cmd({ op: "put", key: "a", value: enc.encode("v") }))).toBeNull();
    expect(sm.validateCommand(cmd({ op: "delete", key: "a" }))).toBeNull();
    expect(
      sm.validateCommand(cmd({ op: "cas", key: "a", expected: null, value: enc.encode("v") })),
    ).toBeNull();
    expect(sm.validateCommand(cmd({ op: "add", key: "a", delta: -3 }))).toBeNull();
    expect(
      validateKvCommand(cmd({ op: "put", key: "a", value: new Uint8Array(KV_MAX_VALUE_BYTES) })),
    ).toBeNull();
  });

  test("refuses what apply would refuse for the command alone, with the same reason", () => {
    const bad = [
      cmd({ op: "put", key: "", value: enc.encode("v") }),
      cmd({ op: "put", key: "a", value: new Uint8Array(3 * 1024 * 1024) }),
      cmd({ op: "put", key: "k".repeat(KV_MAX_KEY_BYTES + 1), value: enc.encode("v") }),
      cmd({ op: "cas", key: "a", expected: new Uint8Array(KV_MAX_VALUE_BYTES + 1), value: enc.encode("v") }),
      cmd({ op: "delete", key: "" }),
      cmd({ op: "add", key: "", delta: 1 }),
      new Uint8Array([0xff, 0xff, 0xff]),
      longboat.nodehost.v1.KvCommand.encode({}).finish(),
    ];
    for (const c of bad) {
      const reason = sm.validateCommand(c);
      expect(reason).not.toBeNull();
      expect(dec.decode(run(new KvStateMachine(), c).data)).toBe(reason!);
    }
    expect(validateKvCommand(bad[1]!)).toBe("put: value is 3145728 bytes, above the limit of 1048576");
  });

  test("does not refuse what depends on the state (add on a value that is not a counter)", () => {
    const m = new KvStateMachine();
    put(m, "n", "not a number");
    const c = cmd({ op: "add", key: "n", delta: 1 });
    expect(m.validateCommand(c)).toBeNull();
    expect(run(m, c).value).toBe(RESULT_REJECTED);
  });
});

describe("kv scan", () => {
  function filled(n: number): KvStateMachine {
    const sm = new KvStateMachine();
    for (let i = 0; i < n; i++) put(sm, `k${String(i).padStart(4, "0")}`, String(i));
    return sm;
  }

  test("scan returns keys in [start, end) in order", () => {
    const r = scan(filled(10), "k0003", "k0006", 0);
    expect(r.pairs.map((p) => p.key)).toEqual(["k0003", "k0004", "k0005"]);
    expect(r.more).toBe(false);
  });

  test("scan with an empty end runs to the last key", () => {
    expect(scan(filled(5), "k0003", "", 0).pairs.map((p) => p.key)).toEqual(["k0003", "k0004"]);
  });

  test("scan stops at the limit and says more", () => {
    const r = scan(filled(10), "", "", 3);
    expect(r.pairs.length).toBe(3);
    expect(r.more).toBe(true);
  });

  test("scan that ends exactly at the last key says no more", () => {
    const r = scan(filled(3), "", "", 3);
    expect(r.pairs.length).toBe(3);
    expect(r.more).toBe(false);
  });

  test("scan clamps a limit above 1000 (and 0) to 1000", () => {
    const sm = filled(KV_MAX_SCAN_LIMIT + 5);
    expect(scan(sm, "", "", 5000).pairs.length).toBe(KV_MAX_SCAN_LIMIT);
    const r = scan(sm, "", "", 0);
    expect(r.pairs.length).toBe(KV_MAX_SCAN_LIMIT);
    expect(r.more).toBe(true);
  });

  test("scan sees keys inserted and deleted after an earlier scan", () => {
    const sm = filled(3);
    scan(sm, "", "", 0);
    put(sm, "k0001a", "x");
    run(sm, encodeKvCommand({ op: "delete", key: "k0000" }));
    expect(scan(sm, "", "", 0).pairs.map((p) => p.key)).toEqual(["k0001", "k0001a", "k0002"]);
  });

  test("keys compare in UTF-8 byte order, not UTF-16 order", () => {
    // U+FF5E (3 UTF-8 bytes, EF BD 9E) sorts before U+1F600 (F0 9F 98 80) in bytes,
    // but after it in UTF-16 code units (D83D ...).
    expect(compareKeys("\uff5e", "😀")).toBeLessThan(0);
    expect(compareKeys("a", "ab")).toBeLessThan(0);
  });
});

describe("kv snapshot", () => {
  test("save then recover into a fresh machine gives the same hash and data", () => {
    const sm = new KvStateMachine();
    put(sm, "a", "1");
    put(sm, "β", "2");
    run(sm, encodeKvCommand({ op: "put", key: "empty", value: new Uint8Array(0) }));
    const chunks: Uint8Array[] = [];
    sm.saveSnapshot((c) => chunks.push(c));
    const payload = Buffer.concat(chunks);
    const copy = new KvStateMachine();
    put(copy, "stale", "x");
    copy.recoverFromSnapshot(payload);
    expect(copy.hash()).toBe(sm.hash());
    expect(get(copy, "stale").found).toBe(false);
    expect(dec.decode(get(copy, "β").value)).toBe("2");
  });

  test("snapshotChunks captures the state when called: later writes are not in it, keys come in order", () => {
    const sm = new KvStateMachine();
    // More keys than one sort slice, inserted out of order, none sorted yet (no scan, no hash).
    const n = 10_000;
    for (let i = 0; i < n; i++) put(sm, `k${(i * 7919) % n}`, `v${i}`);
    const it = sm.snapshotChunks();
    const before = sm.hash();
    put(sm, "k1", "changed after the capture");
    put(sm, "zz-new", "added after the capture");
    run(sm, encodeKvCommand({ op: "delete", key: "k2" }));
    const chunks: Uint8Array[] = [];
    let pauses = 0;
    for (let c = it.next(); !c.done; c = it.next()) {
      if (c.value.byteLength === 0) pauses++;
      else chunks.push(c.value);
    }
    // The sort ran in slices: the engine's steps ended between them.
    expect(pauses).toBeGreaterThan(2);
    const copy = new KvStateMachine();
    copy.recoverFromSnapshot(Buffer.concat(chunks));
    expect(copy.hash()).toBe(before);
    expect(get(copy, "zz-new").found).toBe(false);
    // The same bytes as a save of the captured state with its keys already sorted.
    const again: Uint8Array[] = [];
    copy.saveSnapshot((c) => again.push(c));
    expect(Buffer.concat(again).equals(Buffer.concat(chunks))).toBe(true);
  });

  test("a truncated snapshot throws and leaves the state unchanged", () => {
    const sm = new KvStateMachine();
    put(sm, "a", "1");
    const chunks: Uint8Array[] = [];
    sm.saveSnapshot((c) => chunks.push(c));
    const payload = Buffer.concat(chunks);
    const other = new KvStateMachine();
    put(other, "keep", "me");
    expect(() => other.recoverFromSnapshot(payload.subarray(0, payload.byteLength - 1))).toThrow(/truncated/);
    expect(get(other, "keep").found).toBe(true);
  });

  test("equal contents give equal hashes whatever the insertion order", () => {
    const a = new KvStateMachine();
    const b = new KvStateMachine();
    put(a, "x", "1");
    put(a, "y", "2");
    put(b, "y", "2");
    put(b, "x", "1");
    expect(a.hash()).toBe(b.hash());
    put(b, "x", "3");
    expect(a.hash()).not.toBe(b.hash());
  });
});

describe("kv put bytes: the hand decode answers as protobufjs would", () => {
  const KvCommand = longboat.nodehost.v1.KvCommand;
  const putBytes = (key: string, value: Uint8Array) => encodeKvCommand({ op: "put", key, value });
  /** What the kv app answered before the hand decode: protobufjs, then the put checks. */
  function expected(bytes: Uint8Array): { rejected: string } | { key: string; value: Uint8Array } | null {
    let cmd: longboat.nodehost.v1.KvCommand;
    try {
      cmd = KvCommand.decode(bytes);
    } catch (error) {
      return { rejected: `kv command does not decode: ${(error as Error).message}` };
    }
    if (!cmd.put) return null; // another operation: not a put's business
    const key = cmd.put.key ?? "";
    const value = cmd.put.value ?? new Uint8Array(0);
    const keyBytes = enc.encode(key).byteLength;
    if (key.length === 0) return { rejected: "put: key is empty" };
    if (keyBytes > KV_MAX_KEY_BYTES)
      return { rejected: `put: key is ${keyBytes} bytes, above the limit of ${KV_MAX_KEY_BYTES}` };
    if (value.byteLength > KV_MAX_VALUE_BYTES)
      return {
        rejected: `put: value is ${value.byteLength} bytes, above the limit of ${KV_MAX_VALUE_BYTES}`,
      };
    return { key, value: value.slice() };
  }
  function check(bytes: Uint8Array): void {
    const want = expected(bytes);
    const sm = new KvStateMachine();
    const copy = bytes.slice();
    const r = run(sm, copy);
    const v = validateKvCommand(bytes);
    if (want === null) return;
    if ("rejected" in want) {
      expect(r.value).toBe(RESULT_REJECTED);
      expect(dec.decode(r.data)).toBe(want.rejected);
      expect(v).toBe(want.rejected);
      return;
    }
    expect(r).toEqual({ value: 1, data: new Uint8Array(0) });
    expect(v).toBeNull();
    copy.fill(0x21); // the stored value is the map's own, not a view of the entry
    const g = get(sm, want.key);
    expect(g.found).toBe(true);
    expect(g.value).toEqual(want.value);
  }
  const concat = (...parts: number[][]) => new Uint8Array(parts.flat());
  const ascii = (s: string) => [...enc.encode(s)];

  test("malformed and unusual puts: truncated, overrun lengths, reordered, repeated, extra fields, non-ASCII, limits", () => {
    const good = putBytes("k1", enc.encode("value-16-bytes!!"));
    const cases: Uint8Array[] = [
      good,
      good.subarray(0, good.length - 1), // value cut short
      good.subarray(0, 3), // inside the key
      concat([0x0a, 0x7f], [...good.subarray(2)]), // outer length beyond the end
      concat([...good], [0x00]), // a trailing zero byte (field 0)
      concat([...good], [0x12, 0x02, 0x0a, 0x00]), // then a delete: last oneof member wins
      concat([0x0a, 0x08], [0x12, 0x01, 0x76], [0x0a, 0x03], ascii("abc")), // value before key
      concat([0x0a, 0x0a], [0x0a, 0x01], ascii("a"), [0x0a, 0x01], ascii("b"), [0x12, 0x01, 0x76]), // key twice
      concat([0x0a, 0x07], [0x0a, 0x01], ascii("a"), [0x18, 0x05], [0x12, 0x00]), // an unknown varint field
      concat([0x0a, 0x09], [0x0a, 0x01], ascii("a"), [0x12, 0x01, 0x76], [0x12, 0x01, 0x77]), // value twice: the last wins
      concat([0x0a, 0x07], [0x0a, 0x01], ascii("a"), [0x12, 0x82, 0x80, 0x00]), // non-minimal length varint, overrun
      concat([0x0a, 0x08], [0x0a, 0x01], ascii("a"), [0x12, 0x81, 0x80, 0x00], [0x76]), // non-minimal length 1
      concat([0x0a, 0x03], [0x0a, 0x01], ascii("a")), // no value field
      concat([0x0a, 0x04], [0x0a, 0x01], ascii("a"), [0x10, 0x01]), // value field as a varint (wrong wire type)
      concat([0x0a, 0x02], [0x0a, 0x00]), // empty key
      concat([0x0a, 0x00]), // put with nothing
      putBytes("ключ", enc.encode("v")), // non-ASCII key
      concat([0x0a, 0x05], [0x0a, 0x03], [0x61, 0xff, 0x62]), // invalid UTF-8 in the key
      putBytes("x".repeat(KV_MAX_KEY_BYTES), enc.encode("v")),
      putBytes("x".repeat(KV_MAX_KEY_BYTES + 1), enc.encode("v")),
      putBytes("é".repeat(KV_MAX_KEY_BYTES / 2 + 1), enc.encode("v")),
      putBytes("k", new Uint8Array(KV_MAX_VALUE_BYTES)),
      putBytes("k", new Uint8Array(KV_MAX_VALUE_BYTES + 1)),
      concat([0x0a, 0x80, 0x80, 0x80, 0x80, 0x10]), // an outer length varint of 5 bytes
    ];
    for (const c of cases) check(c);
  });

  test("every one-byte change and every truncation of a put answers as protobufjs would", () => {
    const base = putBytes("key-7", enc.encode("0123456789abcdef"));
    for (let at = 0; at < base.length; at++) {
      for (const b of [0x00, 0x01, 0x0a, 0x12, 0x7f, 0x80, 0xff, base[at]! ^ 0x01, base[at]! + 1]) {
        const m = base.slice();
        m[at] = b & 0xff;
        check(m);
      }
      check(base.subarray(0, at));
    }
  });
});

describe("kv recovery in steps (recoverInSteps)", () => {
  function filled(): KvStateMachine {
    const sm = new KvStateMachine();
    for (let i = 0; i < 300; i++) put(sm, `key-${(i * 7919) % 1000}`, "v".repeat(i % 50) + i);
    put(sm, "ключ-ü", "ünïcode");
    put(sm, "big", "b".repeat(70_000));
    return sm;
  }
  function payloadOf(sm: KvStateMachine): Uint8Array {
    const chunks: Uint8Array[] = [];
    sm.saveSnapshot((c) => chunks.push(c.slice()));
    return new Uint8Array(Buffer.concat(chunks));
  }

  test("any split of the payload into chunks recovers the state recoverFromSnapshot does", () => {
    const source = filled();
    const payload = payloadOf(source);
    for (const size of [1, 3, 7, 4096, 65_537, payload.byteLength]) {
      const sm = new KvStateMachine();
      put(sm, "old", "gone after finish");
      const steps = sm.recoverInSteps();
      for (let at = 0; at < payload.byteLength; at += size) {
        // a reused buffer: the machine copies what it keeps
        const chunk = Uint8Array.from(payload.subarray(at, at + size));
        steps.write(chunk);
        chunk.fill(0);
      }
      expect(get(sm, "old").value).toBeDefined(); // nothing changes before finish
      expect(sm.size()).toBe(1);
      steps.finish();
      expect(sm.hash()).toBe(source.hash());
      expect(get(sm, "old").found).toBe(false);
      expect(scan(sm, "", "", 5).pairs.map((p) => p.key)).toEqual(
        scan(source, "", "", 5).pairs.map((p) => p.key),
      );
    }
  });

  test("a cut or overlong payload is refused and leaves the state as it was", () => {
    const payload = payloadOf(filled());
    for (const bad of [payload.subarray(0, payload.byteLength - 1), payload.subarray(0, 5)]) {
      const sm = new KvStateMachine();
      put(sm, "keep", "me");
      const before = sm.hash();
      const steps = sm.recoverInSteps();
      steps.write(bad);
      expect(() => steps.finish()).toThrow(/cut short/);
      expect(sm.hash()).toBe(before);
    }
    const sm = new KvStateMachine();
    const steps = sm.recoverInSteps();
    const extra = new Uint8Array(payload.byteLength + 4);
    extra.set(payload);
    expect(() => steps.write(extra)).toThrow(/trailing bytes/);
    const invalidUtf8 = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0, 0, 0, 0]);
    expect(() => new KvStateMachine().recoverInSteps().write(invalidUtf8)).toThrow();
  });
});
