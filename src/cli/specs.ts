/**
 * The compact text forms of shards and drummer peers used by flags and environment variables.
 * They only split text into typed values; src/cli/config.ts validates what the values mean.
 */

/** One member of a shard: which replica lives at which raft address. */
export interface ShardMember {
  replicaId: number;
  address: string;
}

/** A shard this NodeHost hosts a replica of. */
export interface ShardSpec {
  shardId: number;
  app: string;
  replicaId: number;
  members: ShardMember[];
  join?: boolean;
  /** Take a snapshot every this many applied entries (0: only on request). */
  snapshotEntries?: number;
  /** Entries kept in the log behind a snapshot. */
  compactionOverhead?: number;
  /** false: keep the log after snapshots until `cmd compact` (disableAutoCompactions). */
  autoCompact?: boolean;
}

/** One drummer of the drummer group. */
export interface DrummerPeer {
  id: number;
  address: string;
}

/** Thrown when spec text does not follow its grammar; the message says which part and why. */
export class SpecError extends Error {
  override name = "SpecError";
}

const SHARD_KEYS = [
  "id",
  "app",
  "replica",
  "members",
  "join",
  "snapshot-entries",
  "compaction-overhead",
  "auto-compact",
] as const;
type ShardKey = (typeof SHARD_KEYS)[number];

/** How a shard is written, for messages. */
export const SHARD_FORM =
  'a shard is id=N,app=NAME,replica=N,members=ID@HOST:PORT;ID@HOST:PORT;… (quote it in a shell, where ";" ends a command), like --shard "id=1,app=kv,replica=1,members=1@h1:7001;2@h2:7001;3@h3:7001"';

/**
 * Parses `id=1,app=kv,replica=1,members=1@h1:7001;2@h2:7001;3@h3:7001` (optionally `,join=true`,
 * which makes `members` optional, and the log's settings `snapshot-entries=N`,
 * `compaction-overhead=N`, `auto-compact=false`).
 */
export function parseShardSpec(text: string): ShardSpec {
  const parts = new Map<ShardKey, string>();
  for (const item of text.split(",")) {
    const eq = item.indexOf("=");
    if (eq < 0) throw new SpecError(`"${item}" is not key=value`);
    const key = item.slice(0, eq);
    if (!(SHARD_KEYS as readonly string[]).includes(key)) {
      throw new SpecError(`unknown key "${key}" (allowed: ${SHARD_KEYS.join(", ")})`);
    }
    if (parts.has(key as ShardKey)) throw new SpecError(`key "${key}" appears twice`);
    parts.set(key as ShardKey, item.slice(eq + 1));
  }
  const join = parseJoin(parts.get("join"));
  const needed: ShardKey[] =
    join && !parts.has("members") ? ["id", "app", "replica"] : ["id", "app", "replica", "members"];
  const missing = needed.filter((k) => !parts.has(k)).map((k) => `"${k}="`);
  const empty = needed.filter((k) => parts.get(k) === "").map((k) => `"${k}="`);
  if (missing.length > 0 || empty.length > 0) {
    const what = [
      missing.length > 0 ? `${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing` : "",
      empty.length > 0 ? `${empty.join(", ")} ${empty.length > 1 ? "have" : "has"} no value` : "",
    ].filter((x) => x !== "");
    throw new SpecError(`${what.join(" and ")}: ${SHARD_FORM}`);
  }
  const spec: ShardSpec = {
    shardId: parseId(required(parts, "id"), "id"),
    app: required(parts, "app"),
    replicaId: parseId(required(parts, "replica"), "replica"),
    members: join && !parts.has("members") ? [] : parseMembers(required(parts, "members")),
  };
  if (join !== undefined) spec.join = join;
  const snapshotEntries = parts.get("snapshot-entries");
  if (snapshotEntries !== undefined) spec.snapshotEntries = parseCount(snapshotEntries, "snapshot-entries");
  const overhead = parts.get("compaction-overhead");
  if (overhead !== undefined) spec.compactionOverhead = parseCount(overhead, "compaction-overhead");
  const autoCompact = parseBool(parts.get("auto-compact"), "auto-compact");
  if (autoCompact !== undefined) spec.autoCompact = autoCompact;
  return spec;
}

function parseCount(text: string, what: string): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new SpecError(`${what} must be an integer ≥ 0, got "${text}"`);
  return n;
}

/** Parses `1=d1:9101,2=d2:9101,3=d3:9101`. */
export function parsePeers(text: string): DrummerPeer[] {
  return text.split(",").map((item) => {
    const eq = item.indexOf("=");
    if (eq < 0) throw new SpecError(`peer "${item}" is not id=host:port`);
    return { id: parseId(item.slice(0, eq), `peer "${item}" id`), address: item.slice(eq + 1) };
  });
}

function parseMembers(text: string): ShardMember[] {
  return text.split(";").map((item) => {
    const at = item.indexOf("@");
    if (at < 0) throw new SpecError(`member "${item}" is not replicaId@host:port`);
    return {
      replicaId: parseId(item.slice(0, at), `member "${item}" replica id`),
      address: item.slice(at + 1),
    };
  });
}

function required(parts: Map<ShardKey, string>, key: ShardKey): string {
  const value = parts.get(key);
  if (value === undefined || value === "") throw new SpecError(`"${key}=" is missing`);
  return value;
}

function parseJoin(text: string | undefined): boolean | undefined {
  return parseBool(text, "join");
}

function parseBool(text: string | undefined, what: string): boolean | undefined {
  if (text === undefined) return undefined;
  if (text === "true") return true;
  if (text === "false") return false;
  throw new SpecError(`${what} must be true or false, got "${text}"`);
}

function parseId(text: string, what: string): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new SpecError(`${what} must be a positive integer, got "${text}"`);
  return n;
}
