import { createHash } from "node:crypto";
import { longboat } from "../pb/longboat.js";
import { ByteReader, ByteWriter, BytesFormatError, concatChunks } from "./bytes.ts";
import {
  type IStateMachine,
  RESULT_REJECTED,
  type SMEntry,
  type SMResult,
  type SnapshotRecovery,
  type SnapshotSink,
} from "./types.ts";

/**
 * The built-in `kv` app: string keys → byte values. Commands are `longboat.nodehost.v1.KvCommand`
 * (put / delete / compare-and-set / add), queries `KvQuery` (get / scan), answers `KvQueryResult`.
 * Results: put → 1; delete → 1 if the key existed else 0; cas → 1 when swapped, else 0 with
 * data = the current value (empty when absent); add → 1 with data = the new value as decimal
 * text (a counter is stored as its decimal text; absent counts as 0). Bad client input (undecodable command, empty or
 * oversized key, oversized value) is refused before proposing (validateCommand); should it reach the
 * log anyway, and for add on a value that is not a counter, apply answers value RESULT_REJECTED
 * (2^31) with a UTF-8 reason in data and changes nothing; update never throws for client input,
 * because a throw would crash every replica at the same entry.
 * Scans return keys in [start, end) in UTF-8 byte order (end "" = no upper bound), at most
 * KV_MAX_SCAN_LIMIT; a larger or zero limit is clamped to it, and `more` says the scan stopped early.
 */

export const KV_MAX_KEY_BYTES = 4 * 1024;
export const KV_MAX_VALUE_BYTES = 1024 * 1024;
export const KV_MAX_SCAN_LIMIT = 1000;

const KvCommand = longboat.nodehost.v1.KvCommand;
const KvQuery = longboat.nodehost.v1.KvQuery;
const KvQueryResult = longboat.nodehost.v1.KvQueryResult;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** A query the kv app cannot answer (lookups may throw: they are local, not replicated). */
export class KvQueryError extends Error {
  override readonly name = "KvQueryError";
}

export type KvCommandInput =
  | { op: "put"; key: string; value: Uint8Array }
  | { op: "delete"; key: string }
  | { op: "cas"; key: string; expected: Uint8Array | null; value: Uint8Array }
  | { op: "add"; key: string; delta: number };

export type KvQueryInput =
  | { op: "get"; key: string }
  | { op: "scan"; start: string; end: string; limit: number };

export interface KvQueryAnswer {
  found: boolean;
  value: Uint8Array;
  pairs: { key: string; value: Uint8Array }[];
  more: boolean;
}

/** @example sm.update([{ index: 1, cmd: encodeKvCommand({ op: "put", key: "a", value: bytes }) }]) */
export function encodeKvCommand(c: KvCommandInput): Uint8Array {
  switch (c.op) {
    case "put":
      return KvCommand.encode({ put: { key: c.key, value: c.value } }).finish();
    case "delete":
      return KvCommand.encode({ delete: { key: c.key } }).finish();
    case "cas":
      return KvCommand.encode({
        cas: {
          key: c.key,
          expected: c.expected ?? EMPTY,
          expectedAbsent: c.expected === null,
          value: c.value,
        },
      }).finish();
    case "add":
      return KvCommand.encode({ add: { key: c.key, delta: c.delta } }).finish();
  }
}

export function encodeKvQuery(q: KvQueryInput): Uint8Array {
  if (q.op === "get") return KvQuery.encode({ get: { key: q.key } }).finish();
  return KvQuery.encode({ scan: { start: q.start, end: q.end, limit: q.limit } }).finish();
}

export function decodeKvQueryResult(bytes: Uint8Array): KvQueryAnswer {
  const r = KvQueryResult.decode(bytes);
  return {
    found: r.found ?? false,
    value: r.value ?? EMPTY,
    pairs: (r.pairs ?? []).map((p) => ({ key: p.key ?? "", value: p.value ?? EMPTY })),
    more: r.more ?? false,
  };
}

/** Code point order of two strings = byte order of their UTF-8 encodings. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(i)!;
    if (ca !== cb) return ca - cb;
    if (ca > 0xffff) i++;
  }
  return a.length - b.length;
}

function rejected(reason: string): SMResult {
  return { value: RESULT_REJECTED, data: utf8.encode(reason) };
}

function checkKey(key: string): string | null {
  if (key.length === 0) return "key is empty";
  const bytes = utf8.encode(key).byteLength;
  if (bytes > KV_MAX_KEY_BYTES) return `key is ${bytes} bytes, above the limit of ${KV_MAX_KEY_BYTES}`;
  return null;
}

function checkValue(value: Uint8Array, what: string): string | null {
  if (value.byteLength > KV_MAX_VALUE_BYTES) {
    return `${what} is ${value.byteLength} bytes, above the limit of ${KV_MAX_VALUE_BYTES}`;
  }
  return null;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Where the last smallVarint ended (a module variable: no tuple per call on the apply path). */
let varintEnd = 0;

/** Reads a varint of at most 4 bytes (< 2^28) at i and sets varintEnd, or gives -1. */
function smallVarint(b: Uint8Array, i: number): number {
  let v = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (i >= b.length) return -1;
    const c = b[i++] as number;
    v |= (c & 0x7f) << shift;
    if (c < 0x80) {
      varintEnd = i;
      return v;
    }
  }
  return -1;
}

/**
 * The common put, decoded by hand: `KvCommand{put: KvPut{key, value}}` with the key field then
 * at most the value field and nothing else, an ASCII key of 1..KV_MAX_KEY_BYTES bytes and a value
 * within KV_MAX_VALUE_BYTES. Gives the key and a copy of the value (the only copy: the map keeps
 * it), or null for anything else — which then goes through protobufjs and the checks below, so
 * what is accepted and refused, and every refusal's reason, stay the same. (protobufjs would
 * decode such bytes to the same key and value; an ASCII key's UTF-8 length is its length.)
 */
function fastPut(b: Uint8Array, copyValue: boolean): { key: string; value: Uint8Array } | null {
  if (b.length < 4 || b[0] !== 0x0a) return null;
  const outerLen = smallVarint(b, 1);
  if (outerLen < 0 || varintEnd + outerLen !== b.length || b[varintEnd] !== 0x0a) return null;
  const keyLen = smallVarint(b, varintEnd + 1);
  const keyAt = varintEnd;
  if (keyLen <= 0 || keyLen > KV_MAX_KEY_BYTES || keyAt + keyLen > b.length) return null;
  let key = "";
  for (let j = keyAt; j < keyAt + keyLen; j++) {
    const c = b[j] as number;
    if (c >= 0x80) return null;
    key += String.fromCharCode(c);
  }
  const i = keyAt + keyLen;
  if (i === b.length) return { key, value: EMPTY };
  if (b[i] !== 0x12) return null;
  const valueLen = smallVarint(b, i + 1);
  if (valueLen < 0 || valueLen > KV_MAX_VALUE_BYTES || varintEnd + valueLen !== b.length) return null;
  return { key, value: copyValue ? b.slice(varintEnd, b.length) : EMPTY };
}

/** A command decoded, or why it cannot be applied whatever the state (decode error, bad field). */
function parseCommand(bytes: Uint8Array): longboat.nodehost.v1.KvCommand | string {
  let cmd: longboat.nodehost.v1.KvCommand;
  try {
    cmd = KvCommand.decode(bytes);
  } catch (error) {
    return `kv command does not decode: ${(error as Error).message}`;
  }
  const bad = staticProblem(cmd);
  return bad === null ? cmd : bad;
}

/** The checks that need the command alone: shared by validateKvCommand and apply. */
function staticProblem(cmd: longboat.nodehost.v1.KvCommand): string | null {
  if (cmd.put) {
    const bad = checkKey(cmd.put.key ?? "") ?? checkValue(cmd.put.value ?? EMPTY, "value");
    return bad === null ? null : `put: ${bad}`;
  }
  if (cmd.delete) {
    const bad = checkKey(cmd.delete.key ?? "");
    return bad === null ? null : `delete: ${bad}`;
  }
  if (cmd.cas) {
    const c = cmd.cas;
    const bad =
      checkKey(c.key ?? "") ??
      checkValue(c.value ?? EMPTY, "value") ??
      checkValue(c.expected ?? EMPTY, "expected value");
    return bad === null ? null : `cas: ${bad}`;
  }
  if (cmd.add) {
    const bad = checkKey(cmd.add.key ?? "");
    if (bad !== null) return `add: ${bad}`;
    const delta = cmd.add.delta ?? 0;
    return Number.isSafeInteger(delta) ? null : `add: delta ${delta} is not an integer within ±(2^53 − 1)`;
  }
  return "kv command has no operation (expected put, delete, cas or add)";
}

/**
 * Why the kv app would refuse cmd whatever its state (it does not decode, has no operation, an
 * empty or oversized key, an oversized value), or null. NodeHost checks it before proposing,
 * so such a command is refused at once and never replicated.
 */
export function validateKvCommand(cmd: Uint8Array): string | null {
  if (fastPut(cmd, false) !== null) return null;
  const parsed = parseCommand(cmd);
  return typeof parsed === "string" ? parsed : null;
}

export class KvStateMachine implements IStateMachine {
  private map = new Map<string, Uint8Array>();
  /** Keys in byte order, rebuilt lazily for scans after an insert or delete. */
  private sorted: string[] | null = [];

  update(entries: SMEntry[]): SMResult[] {
    return entries.map((e) => this.apply(e.cmd));
  }

  validateCommand(cmd: Uint8Array): string | null {
    return validateKvCommand(cmd);
  }

  /** Still checks everything: a command may reach the log without validation (another build, a plugin client). */
  private apply(cmdBytes: Uint8Array): SMResult {
    const fast = fastPut(cmdBytes, true);
    if (fast !== null) {
      this.setOwned(fast.key, fast.value);
      return { value: 1, data: EMPTY };
    }
    const cmd = parseCommand(cmdBytes);
    if (typeof cmd === "string") return rejected(cmd);
    if (cmd.put) return this.put(cmd.put.key ?? "", cmd.put.value ?? EMPTY);
    if (cmd.delete) return this.delete(cmd.delete.key ?? "");
    if (cmd.cas) return this.cas(cmd.cas);
    return this.add(cmd.add!.key ?? "", cmd.add!.delta ?? 0);
  }

  private put(key: string, value: Uint8Array): SMResult {
    this.set(key, value);
    return { value: 1, data: EMPTY };
  }

  private delete(key: string): SMResult {
    const existed = this.map.delete(key);
    if (existed) this.sorted = null;
    return { value: existed ? 1 : 0, data: EMPTY };
  }

  private cas(c: longboat.nodehost.v1.KvCompareAndSet.$Properties): SMResult {
    const key = c.key ?? "";
    const value = c.value ?? EMPTY;
    const expected = c.expected ?? EMPTY;
    const current = this.map.get(key);
    const matches = c.expectedAbsent
      ? current === undefined
      : current !== undefined && bytesEqual(current, expected);
    if (!matches) return { value: 0, data: current ?? EMPTY };
    this.set(key, value);
    return { value: 1, data: EMPTY };
  }

  private add(key: string, delta: number): SMResult {
    const current = this.map.get(key);
    let base = 0;
    if (current !== undefined) {
      const text = fromUtf8.decode(current);
      if (!/^-?(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(Number(text))) {
        return rejected(`add: the value of ${JSON.stringify(key)} is not an integer counter`);
      }
      base = Number(text);
    }
    const sum = base + delta;
    if (!Number.isSafeInteger(sum)) return rejected(`add: ${base} + ${delta} is beyond ±(2^53 − 1)`);
    const stored = utf8.encode(String(sum));
    this.set(key, stored);
    return { value: 1, data: stored };
  }

  private set(key: string, value: Uint8Array): void {
    // Copy: the entry's cmd buffer may be reused by the caller.
    this.setOwned(key, value.slice());
  }

  /** value is the map's own (a copy nothing else holds). */
  private setOwned(key: string, value: Uint8Array): void {
    if (!this.map.has(key)) this.sorted = null;
    this.map.set(key, value);
  }

  lookup(query: Uint8Array): Uint8Array {
    let q: longboat.nodehost.v1.KvQuery;
    try {
      q = KvQuery.decode(query);
    } catch (error) {
      throw new KvQueryError(`kv query does not decode: ${(error as Error).message}`);
    }
    if (q.get) {
      const v = this.map.get(q.get.key ?? "");
      return KvQueryResult.encode({ found: v !== undefined, value: v ?? EMPTY }).finish();
    }
    if (q.scan) return KvQueryResult.encode(this.scan(q.scan)).finish();
    throw new KvQueryError("kv query has no operation (expected get or scan)");
  }

  private scan(s: longboat.nodehost.v1.KvScan.$Properties): longboat.nodehost.v1.KvQueryResult.$Properties {
    const start = s.start ?? "";
    const end = s.end ?? "";
    const requested = s.limit ?? 0;
    const limit = requested === 0 || requested > KV_MAX_SCAN_LIMIT ? KV_MAX_SCAN_LIMIT : requested;
    const keys = this.sortedKeys();
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(keys[mid]!, start) < 0) lo = mid + 1;
      else hi = mid;
    }
    const pairs: { key: string; value: Uint8Array }[] = [];
    let i = lo;
    for (; i < keys.length && pairs.length < limit; i++) {
      const key = keys[i]!;
      if (end !== "" && compareKeys(key, end) >= 0) break;
      pairs.push({ key, value: this.map.get(key)! });
    }
    const more = pairs.length === limit && i < keys.length && (end === "" || compareKeys(keys[i]!, end) < 0);
    return { pairs, more };
  }

  private sortedKeys(): string[] {
    if (this.sorted === null) this.sorted = [...this.map.keys()].sort(compareKeys);
    return this.sorted;
  }

  /** Payload: u64 pairCount, then per pair in key order: u32 keyLength, key UTF-8, u32 valueLength, value. */
  saveSnapshot(sink: SnapshotSink): void {
    const chunks = this.snapshotChunks();
    for (let c = chunks.next(); !c.done; c = chunks.next()) sink(c.value);
  }

  /**
   * The snapshot in steps (types.ts, snapshotChunks): captures the keys and the value
   * references now — values are never changed in place (every write stores a new buffer) — in
   * O(keys) without sorting, then sorts (in slices, when the sorted list is not cached) and
   * encodes KV_SNAPSHOT_CHUNK_BYTES at a time as the engine pulls, while updates go on.
   */
  snapshotChunks(): Iterator<Uint8Array> {
    if (this.sorted !== null) {
      const keys = this.sorted;
      const values = new Array<Uint8Array>(keys.length);
      for (let i = 0; i < keys.length; i++) values[i] = this.map.get(keys[i]!)!;
      return encodeKvSnapshot(keys, values, null);
    }
    return encodeKvSnapshot(Array.from(this.map.keys()), Array.from(this.map.values()), sortInSlices);
  }

  recoverFromSnapshot(payload: Uint8Array): void {
    const r = new ByteReader(payload, "kv snapshot");
    const count = r.u64("pair count");
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const next = new Map<string, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const key = decoder.decode(r.bytes(`key ${i}`));
      next.set(key, r.bytes(`value ${i}`).slice());
    }
    r.end();
    this.map.clear();
    for (const [k, v] of next) this.map.set(k, v);
    this.sorted = null;
  }

  /**
   * Recovery in steps (types.ts, SnapshotRecovery): each chunk's complete pairs are decoded
   * into a new map as they come (a pair cut by a chunk's end waits for the bytes it needs);
   * finish() checks the count and swaps the map in. Same checks as recoverFromSnapshot.
   */
  recoverInSteps(): SnapshotRecovery {
    const next = new Map<string, Uint8Array>();
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const where = "kv snapshot";
    let count = -1;
    let pairs = 0;
    let key: string | null = null;
    /** Bytes of an item cut by a chunk's end, and how many it needs to be whole. */
    let held: Uint8Array[] = [];
    let heldBytes = 0;
    let need = 0;
    return {
      write: (chunk) => {
        if (heldBytes + chunk.byteLength < need) {
          held.push(chunk.slice());
          heldBytes += chunk.byteLength;
          return;
        }
        const buf = held.length === 0 ? chunk : concatChunks([...held, chunk]);
        held = [];
        heldBytes = 0;
        need = 0;
        const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        let at = 0;
        if (count < 0) {
          if (buf.byteLength < 8) {
            need = 8;
          } else {
            const n = view.getUint32(4, true) * 2 ** 32 + view.getUint32(0, true);
            if (!Number.isSafeInteger(n))
              throw new BytesFormatError(`${where}: pair count ${n} exceeds 2^53 - 1`);
            count = n;
            at = 8;
          }
        }
        while (need === 0 && at < buf.byteLength) {
          if (pairs === count) {
            throw new BytesFormatError(`${where}: trailing bytes after ${count} pairs`);
          }
          if (buf.byteLength - at < 4) {
            need = 4;
            break;
          }
          const len = view.getUint32(at, true);
          if (buf.byteLength - at - 4 < len) {
            need = 4 + len;
            break;
          }
          const bytes = buf.subarray(at + 4, at + 4 + len);
          at += 4 + len;
          if (key === null) {
            key = decoder.decode(bytes);
          } else {
            next.set(key, bytes.slice());
            key = null;
            pairs++;
          }
        }
        if (at < buf.byteLength) {
          held = [buf.slice(at)];
          heldBytes = buf.byteLength - at;
        }
      },
      finish: () => {
        if (count < 0 || pairs !== count || key !== null || heldBytes > 0) {
          throw new BytesFormatError(
            `${where}: cut short (${pairs} of ${count < 0 ? "?" : count} pairs, ${heldBytes} bytes left over)`,
          );
        }
        this.map = next;
        this.sorted = null;
      },
      abort: () => {
        next.clear();
        held = [];
      },
    };
  }

  hash(): string {
    const h = createHash("sha256");
    const len = new Uint8Array(4);
    const view = new DataView(len.buffer);
    for (const key of this.sortedKeys()) {
      const k = utf8.encode(key);
      const v = this.map.get(key)!;
      view.setUint32(0, k.byteLength, true);
      h.update(len).update(k);
      view.setUint32(0, v.byteLength, true);
      h.update(len).update(v);
    }
    return h.digest("hex");
  }

  /** Number of keys (tests, metrics). */
  size(): number {
    return this.map.size;
  }

  close(): void {}
}

/** Bytes of one chunk of a kv snapshot (a pair larger than it makes a larger chunk). */
export const KV_SNAPSHOT_CHUNK_BYTES = 256 * 1024;

/** Keys sorted per slice of this many before they are merged (a slice sorts in a few ms). */
const SORT_RUN_KEYS = 4096;

/**
 * The order of keys (compareKeys) as a permutation, by a merge sort that yields (an empty
 * chunk: the engine ends its step) after each run sorted and every SORT_RUN_KEYS merged keys.
 */
function* sortInSlices(keys: string[]): Generator<Uint8Array, number[]> {
  const byKey = (a: number, b: number) => compareKeys(keys[a]!, keys[b]!);
  let runs: number[][] = [];
  for (let i = 0; i < keys.length; i += SORT_RUN_KEYS) {
    const run: number[] = [];
    for (let j = i; j < Math.min(keys.length, i + SORT_RUN_KEYS); j++) run.push(j);
    runs.push(run.sort(byKey));
    yield EMPTY;
  }
  while (runs.length > 1) {
    const next: number[][] = [];
    for (let r = 0; r < runs.length; r += 2) {
      const a = runs[r]!;
      const b = runs[r + 1];
      if (b === undefined) {
        next.push(a);
        continue;
      }
      const out = new Array<number>(a.length + b.length);
      let x = 0;
      let y = 0;
      let k = 0;
      while (x < a.length && y < b.length) {
        out[k++] = byKey(a[x]!, b[y]!) <= 0 ? a[x++]! : b[y++]!;
        if (k % SORT_RUN_KEYS === 0) yield EMPTY;
      }
      while (x < a.length) out[k++] = a[x++]!;
      while (y < b.length) out[k++] = b[y++]!;
      next.push(out);
    }
    runs = next;
  }
  return runs[0] ?? [];
}

/** Encodes the pairs in key order: keys already sorted (sort null), or sorted here in slices. */
function* encodeKvSnapshot(
  keys: string[],
  values: Uint8Array[],
  sort: ((keys: string[]) => Generator<Uint8Array, number[]>) | null,
): Generator<Uint8Array> {
  const order = sort === null ? null : yield* sort(keys);
  let out: Uint8Array[] = [];
  const w = new ByteWriter((c) => out.push(c), KV_SNAPSHOT_CHUNK_BYTES);
  w.u64(keys.length);
  for (let n = 0; n < keys.length; n++) {
    const i = order === null ? n : order[n]!;
    w.bytes(utf8.encode(keys[i]!));
    w.bytes(values[i]!);
    if (out.length > 0) {
      yield* out;
      out = [];
    }
  }
  w.flush();
  yield* out;
}

export function createKv(): IStateMachine {
  return new KvStateMachine();
}
