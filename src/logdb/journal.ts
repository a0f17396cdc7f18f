/**
 * The journal record of the SQLite log database (docs/durability.md, "The journal"): every
 * write of one writer transaction — entries, hard states, snapshot metadata, bootstrap
 * records, compactions, removals — encoded as one blob, appended as one row in batch order.
 * The engine thread encodes it; the writer Worker stores it and later applies it to the
 * per-replica tables (sqlite-home.ts). No code runs at import: both threads import it.
 *
 * Layout (all integers unsigned LEB128 varints of safe integers, except the checksum; a
 * tombstone's time is a little-endian float64, as the caller's clock may give fractions):
 *   version (1 byte) | opCount | entryCount | op… | crc32 of everything before it (4 bytes, LE)
 * Each op starts with its kind byte, shard and replica; see encodeOp for the rest.
 */
import type { Entry, EntryType, State } from "../raft/types.ts";
import { LogDBArgumentError } from "./errors.ts";

/** Version byte of a record; a record of another version is refused as corrupt. */
export const JOURNAL_RECORD_VERSION = 1;

export const OpKind = {
  update: 1,
  bootstrap: 2,
  compact: 3,
  remove: 4,
  import: 5,
} as const;

export interface SnapshotPoint {
  index: number;
  term: number;
  /** SnapshotMeta encoded as protobuf (codec.ts). */
  meta: Uint8Array;
}

/** One replica's part of a saveUpdates batch, planned on the engine thread (plan.ts). */
export interface UpdateOp {
  kind: typeof OpKind.update;
  shard: number;
  replica: number;
  state: State | null;
  /** Applied first; resetEntries: every stored entry of the replica goes with it. */
  snapshot: (SnapshotPoint & { resetEntries: boolean }) | null;
  /** Remove entries from this index on before appending (0: none). */
  truncateFrom: number;
  entries: Entry[];
  /**
   * Entries still in the record, after `entries` (decodeRecord with lazy entries: the writer
   * keeps an op until its move, and decodes its entries only then).
   */
  stored?: StoredEntries;
}

/** `count` entries from index `first` left in a record's bytes, the first at byte `at`. */
export interface StoredEntries {
  bytes: Uint8Array;
  at: number;
  first: number;
  count: number;
}

export interface BootstrapOp {
  kind: typeof OpKind.bootstrap;
  shard: number;
  replica: number;
  /** The record as codec.ts encodes it (JSON). */
  record: string;
}

export interface CompactOp {
  kind: typeof OpKind.compact;
  shard: number;
  replica: number;
  /** Entries with index ≤ this go. */
  index: number;
}

export interface RemoveOp {
  kind: typeof OpKind.remove;
  shard: number;
  replica: number;
  tombstone: { removedAtMs: number; reason: string } | null;
}

export interface ImportOp {
  kind: typeof OpKind.import;
  shard: number;
  replica: number;
  bootstrap: string;
  state: State;
  snapshot: SnapshotPoint;
}

export type JournalOp = UpdateOp | BootstrapOp | CompactOp | RemoveOp | ImportOp;

export interface EncodedRecord {
  bytes: Uint8Array;
  /**
   * Byte offset in bytes of each update op's first entry, one per update op in op order (the
   * overlay decodes entries from there only when they are read: readEntries).
   */
  entriesAt: number[];
  entryCount: number;
}

const TEXT = new TextEncoder();
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Thrown by the writer at the first value a varint (or the type byte) cannot hold;
 * encodeRecord then runs checkOp for the field's name. Checking while writing costs one
 * comparison per number where checkOp, run up front on every op, cost 4–5 % of the engine
 * thread at 48 shards (docs/performance.md, "handover").
 */
class Unencodable extends Error {}
const UNENCODABLE = new Unencodable("unencodable value");

/** Checks that a field is a safe integer ≥ 0 (a varint cannot hold anything else). */
function u(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new LogDBArgumentError(`journal: ${what} must be a non-negative safe integer, got ${n}`);
  }
  return n;
}

/** Scratch kept between records up to this size (a larger one is dropped after its record). */
const SCRATCH_KEPT_BYTES = 1 << 20;
let scratch: Uint8Array = new Uint8Array(64 * 1024);

/**
 * One pass into a scratch buffer, checking each number as it writes it; encodeRecord then
 * copies the bytes into the record's own buffer (one copy of a few KiB, where a sizing pass
 * read every entry a second time).
 */
class Writer {
  buf: Uint8Array = scratch;
  pos = 0;

  /** Room for n more bytes. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.byteLength) return;
    const grown = new Uint8Array(Math.max(this.buf.byteLength * 2, this.pos + n));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  varint(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) throw UNENCODABLE;
    if (this.pos + 8 > this.buf.byteLength) this.room(8);
    const b = this.buf;
    let pos = this.pos;
    while (n >= 0x80000000) {
      b[pos++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    while (n >= 128) {
      b[pos++] = (n & 127) | 128;
      n >>>= 7;
    }
    b[pos++] = n;
    this.pos = pos;
  }

  byte(n: number): void {
    if (!(n >= 0 && n < 256 && (n | 0) === n)) throw UNENCODABLE;
    if (this.pos + 1 > this.buf.byteLength) this.room(1);
    this.buf[this.pos++] = n;
  }

  /** A float64, little-endian (a time in milliseconds may carry a fraction). */
  f64(n: number): void {
    if (!Number.isFinite(n)) throw UNENCODABLE;
    this.room(8);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat64(this.pos, n, true);
    this.pos += 8;
  }

  bytes(data: Uint8Array): void {
    const n = data.byteLength;
    this.varint(n);
    if (this.pos + n > this.buf.byteLength) this.room(n);
    // A small command (the common case) is copied by hand: cheaper than a set() call.
    if (n <= 64) {
      const b = this.buf;
      let pos = this.pos;
      for (let i = 0; i < n; i++) b[pos++] = data[i] as number;
    } else this.buf.set(data, this.pos);
    this.pos += n;
  }
}

function writeState(w: Writer, s: State): void {
  w.varint(s.term);
  w.varint(s.vote);
  w.varint(s.commit);
}

function writeSnapshot(w: Writer, s: SnapshotPoint): void {
  w.varint(s.index);
  w.varint(s.term);
  w.bytes(s.meta);
}

function writeUpdate(w: Writer, op: UpdateOp, entriesAt: number[]): void {
  const flags = (op.state ? 1 : 0) | (op.snapshot ? 2 : 0) | (op.snapshot?.resetEntries ? 4 : 0);
  w.byte(flags);
  if (op.state) writeState(w, op.state);
  if (op.snapshot) writeSnapshot(w, op.snapshot);
  w.varint(op.truncateFrom);
  w.varint(op.entries.length);
  if (op.entries.length > 0) w.varint((op.entries[0] as Entry).index);
  entriesAt.push(w.pos);
  for (const e of op.entries) {
    w.varint(e.term);
    w.byte(e.type);
    w.varint(e.key);
    w.varint(e.clientId);
    w.varint(e.seriesId);
    w.varint(e.respondedTo);
    w.varint(e.proposerId);
    w.varint(e.proposerEpoch);
    w.bytes(e.cmd);
  }
}

function writeOp(w: Writer, op: JournalOp, entriesAt: number[]): void {
  w.byte(op.kind);
  w.varint(op.shard);
  w.varint(op.replica);
  switch (op.kind) {
    case OpKind.update:
      writeUpdate(w, op, entriesAt);
      break;
    case OpKind.bootstrap:
      w.bytes(TEXT.encode(op.record));
      break;
    case OpKind.compact:
      w.varint(op.index);
      break;
    case OpKind.remove:
      w.byte(op.tombstone ? 1 : 0);
      if (op.tombstone) {
        w.f64(op.tombstone.removedAtMs);
        w.bytes(TEXT.encode(op.tombstone.reason));
      }
      break;
    case OpKind.import:
      w.bytes(TEXT.encode(op.bootstrap));
      writeState(w, op.state);
      writeSnapshot(w, op.snapshot);
      break;
  }
}

/**
 * Every number of an op checked, naming the first bad field. Run only once the writer found a
 * value it cannot encode (it checks every number it writes).
 */
function checkOp(op: JournalOp): number {
  u(op.shard, "shard");
  u(op.replica, "replica");
  if (op.kind === OpKind.compact) u(op.index, "compact index");
  if (op.kind === OpKind.remove && op.tombstone && !Number.isFinite(op.tombstone.removedAtMs)) {
    throw new LogDBArgumentError(
      `journal: tombstone removedAtMs must be a finite number, got ${op.tombstone.removedAtMs}`,
    );
  }
  const states = op.kind === OpKind.update ? [op.state] : op.kind === OpKind.import ? [op.state] : [];
  for (const s of states) if (s) for (const f of ["term", "vote", "commit"] as const) u(s[f], `state.${f}`);
  const snapshot = op.kind === OpKind.update || op.kind === OpKind.import ? op.snapshot : null;
  if (snapshot) {
    u(snapshot.index, "snapshot index");
    u(snapshot.term, "snapshot term");
  }
  if (op.kind !== OpKind.update) return 0;
  u(op.truncateFrom, "truncateFrom");
  if (op.entries.length > 0) u((op.entries[0] as Entry).index, "first entry index");
  for (const e of op.entries) {
    for (const f of [
      "term",
      "key",
      "clientId",
      "seriesId",
      "respondedTo",
      "proposerId",
      "proposerEpoch",
    ] as const)
      u(e[f], `entry ${e.index} ${f}`);
    if (!(e.type >= 0 && e.type < 256))
      throw new LogDBArgumentError(`journal: entry ${e.index} type ${e.type}`);
  }
  return op.entries.length;
}

/**
 * Encodes one writer transaction's ops. With `shared`, the bytes are in a SharedArrayBuffer:
 * posted to the writer Worker without a copy (a structured clone shares it), while the
 * overlay keeps views of the same bytes. Nobody writes to a record after this returns.
 * @throws LogDBArgumentError for a value it cannot hold.
 */
export function encodeRecord(ops: readonly JournalOp[], shared = false): EncodedRecord {
  let entryCount = 0;
  for (const op of ops) if (op.kind === OpKind.update) entryCount += op.entries.length;
  const w = new Writer();
  const entriesAt: number[] = [];
  // Every number is checked as it is written into the scratch buffer, so nothing is handed
  // out for a batch holding a value a varint cannot carry; checkOp then names it.
  try {
    w.byte(JOURNAL_RECORD_VERSION);
    w.varint(ops.length);
    w.varint(entryCount);
    for (const op of ops) writeOp(w, op, entriesAt);
  } catch (error) {
    if (!(error instanceof Unencodable)) throw error;
    for (const op of ops) checkOp(op);
    throw new LogDBArgumentError("journal: a value cannot be encoded");
  }
  const size = w.pos;
  const bytes = new Uint8Array(shared ? new SharedArrayBuffer(size + 4) : new ArrayBuffer(size + 4));
  bytes.set(w.buf.subarray(0, size));
  if (w.buf.byteLength <= SCRATCH_KEPT_BYTES) scratch = w.buf;
  const crc = Bun.hash.crc32(bytes.subarray(0, size)) >>> 0;
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(size, crc, true);
  return { bytes, entriesAt, entryCount };
}

/** A record that does not decode: the caller names the file (LogDBCorruptError). */
export class JournalRecordError extends Error {
  override readonly name = "JournalRecordError";
}

class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly end: number,
  ) {}

  byte(): number {
    if (this.pos >= this.end) throw new JournalRecordError("record ends early");
    return this.buf[this.pos++] as number;
  }

  f64(): number {
    if (this.pos + 8 > this.end) throw new JournalRecordError("record ends early");
    const n = new DataView(this.buf.buffer, this.buf.byteOffset).getFloat64(this.pos, true);
    this.pos += 8;
    return n;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      n += (b & 127) * scale;
      if (b < 128) {
        if (!Number.isSafeInteger(n)) throw new JournalRecordError(`varint ${n} is not a safe integer`);
        return n;
      }
      scale *= 128;
    }
    throw new JournalRecordError("varint longer than 8 bytes");
  }

  bytes(): Uint8Array {
    const length = this.varint();
    if (this.pos + length > this.end) throw new JournalRecordError("bytes run past the record");
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  text(): string {
    try {
      return UTF8.decode(this.bytes());
    } catch (error) {
      if (error instanceof JournalRecordError) throw error;
      throw new JournalRecordError("text is not UTF-8");
    }
  }

  state(): State {
    return { term: this.varint(), vote: this.varint(), commit: this.varint() };
  }

  snapshot(): SnapshotPoint {
    return { index: this.varint(), term: this.varint(), meta: this.bytes() };
  }
}

/** One entry at r's position (index given: the record stores the first index once per op). */
function readEntry(r: Reader, index: number): Entry {
  const term = r.varint();
  const type = r.byte() as EntryType;
  const key = r.varint();
  const clientId = r.varint();
  const seriesId = r.varint();
  const respondedTo = r.varint();
  const proposerId = r.varint();
  const proposerEpoch = r.varint();
  const cmd = r.bytes();
  return { term, index, type, key, clientId, seriesId, respondedTo, cmd, proposerId, proposerEpoch };
}

/** Moves r past one entry and returns its term. */
function skipEntry(r: Reader): number {
  const term = r.varint();
  r.byte();
  for (let i = 0; i < 6; i++) r.varint();
  const length = r.varint();
  if (r.pos + length > r.end) throw new JournalRecordError("bytes run past the record");
  r.pos += length;
  return term;
}

/**
 * Entries of one update op of an encoded record, decoded where they are read (the overlay keeps
 * the record and encodeRecord's entriesAt instead of an object per entry): the entry at byte
 * `at` has index `firstIndex`; `skip` entries are passed over, then `count` are given to visit,
 * in order, until it returns false. Each cmd is a copy, so nothing read holds the record's
 * bytes. The record is the engine thread's own, already checked: no checksum here.
 */
export function readEntries(
  bytes: Uint8Array,
  at: number,
  firstIndex: number,
  skip: number,
  count: number,
  visit: (e: Entry) => boolean,
): void {
  const r = new Reader(bytes, bytes.byteLength - 4);
  r.pos = at;
  for (let i = 0; i < skip; i++) skipEntry(r);
  for (let i = 0; i < count; i++) {
    const e = readEntry(r, firstIndex + skip + i);
    e.cmd = e.cmd.slice();
    if (!visit(e)) return;
  }
}

/** The term of the entry `skip` entries after the one at byte `at` (see readEntries). */
export function readEntryTerm(bytes: Uint8Array, at: number, skip: number): number {
  const r = new Reader(bytes, bytes.byteLength - 4);
  r.pos = at;
  for (let i = 0; i < skip; i++) skipEntry(r);
  return r.varint();
}

function readUpdate(r: Reader, shard: number, replica: number, lazy: boolean): UpdateOp {
  const flags = r.byte();
  const state = flags & 1 ? r.state() : null;
  const snapshot = flags & 2 ? { ...r.snapshot(), resetEntries: (flags & 4) !== 0 } : null;
  const truncateFrom = r.varint();
  const count = r.varint();
  const entries: Entry[] = [];
  const index = count > 0 ? r.varint() : 0;
  if (lazy && count > 0) {
    const at = r.pos;
    for (let i = 0; i < count; i++) skipEntry(r);
    const stored = { bytes: r.buf, at, first: index, count };
    return { kind: OpKind.update, shard, replica, state, snapshot, truncateFrom, entries, stored };
  }
  for (let i = 0; i < count; i++) entries.push(readEntry(r, index + i));
  return { kind: OpKind.update, shard, replica, state, snapshot, truncateFrom, entries };
}

/** The entries of a lazily decoded op (StoredEntries), in order; each cmd a view into the record. */
export function forEachStoredEntry(s: StoredEntries, visit: (e: Entry) => void): void {
  const r = new Reader(s.bytes, s.bytes.byteLength - 4);
  r.pos = s.at;
  for (let i = 0; i < s.count; i++) visit(readEntry(r, s.first + i));
}

function readOp(r: Reader, lazy: boolean): JournalOp {
  const kind = r.byte();
  const shard = r.varint();
  const replica = r.varint();
  switch (kind) {
    case OpKind.update:
      return readUpdate(r, shard, replica, lazy);
    case OpKind.bootstrap:
      return { kind, shard, replica, record: r.text() };
    case OpKind.compact:
      return { kind, shard, replica, index: r.varint() };
    case OpKind.remove: {
      const tombstone = r.byte() === 1 ? { removedAtMs: r.f64(), reason: r.text() } : null;
      return { kind, shard, replica, tombstone };
    }
    case OpKind.import:
      return { kind, shard, replica, bootstrap: r.text(), state: r.state(), snapshot: r.snapshot() };
    default:
      throw new JournalRecordError(`unknown op kind ${kind}`);
  }
}

/**
 * Decodes a record after checking its checksum. The entries' cmd are views into bytes. With
 * `lazy`, an update op's entries are walked (the record checked to its end) but left in the
 * record (UpdateOp.stored, forEachStoredEntry): no object per entry until they are read.
 * @throws JournalRecordError when the record is damaged or of another version.
 */
export function decodeRecord(bytes: Uint8Array, lazy = false): JournalOp[] {
  if (bytes.byteLength < 5) throw new JournalRecordError(`record of ${bytes.byteLength} bytes is too short`);
  const end = bytes.byteLength - 4;
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(end, true);
  if (Bun.hash.crc32(bytes.subarray(0, end)) >>> 0 !== stored) {
    throw new JournalRecordError("checksum mismatch");
  }
  const r = new Reader(bytes, end);
  const version = r.byte();
  if (version !== JOURNAL_RECORD_VERSION) throw new JournalRecordError(`record version ${version}`);
  const count = r.varint();
  r.varint(); // entry count: the writer reads it without decoding (recordEntryCount)
  const ops: JournalOp[] = [];
  for (let i = 0; i < count; i++) ops.push(readOp(r, lazy));
  if (r.pos !== end) throw new JournalRecordError(`${end - r.pos} bytes after the last op`);
  return ops;
}

/** The entry count in a record's header, without decoding the rest. */
export function recordEntryCount(bytes: Uint8Array): number {
  const r = new Reader(bytes, Math.max(0, bytes.byteLength - 4));
  r.byte();
  r.varint();
  return r.varint();
}
