/**
 * Checks of the values DrummerDB stores and the API accepts. Each returns the problem as a
 * phrase that names the value ("… must be …, got …"), or null when the value is right.
 * They never throw: DrummerDB applies an entry on every replica, and a throw there would stop
 * every replica at the same entry.
 */
import { APP_NAME_PATTERN } from "../statemachine/registry.ts";
import type { RegionCount, ShardMember } from "./types.ts";
import { DB_LIMITS } from "./db/state.ts";

const ADDRESS_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}):(\d{1,5})$/;
const REGION_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export function checkId(what: string, v: number): string | null {
  return Number.isSafeInteger(v) && v >= 1 ? null : `${what} must be a positive integer, got ${v}`;
}

export function checkAddress(what: string, v: string): string | null {
  const m = ADDRESS_RE.exec(v);
  const port = m ? Number(m[2]) : 0;
  if (m && port >= 1 && port <= 65535) return null;
  return `${what} must be host:port with a port in 1..65535, got ${JSON.stringify(v.slice(0, 80))}`;
}

export function checkRegion(what: string, v: string): string | null {
  return REGION_RE.test(v)
    ? null
    : `${what} must be 1-64 letters, digits, '_', '.', ':' or '-', got ${JSON.stringify(v.slice(0, 80))}`;
}

export function checkApp(what: string, v: string): string | null {
  return APP_NAME_PATTERN.test(v)
    ? null
    : `${what} must be an app name of 1-64 letters, digits, '_', '.' or '-', got ${JSON.stringify(v.slice(0, 80))}`;
}

/** Region counts of a shard of replicaCount replicas: named, distinct, positive, not above replicaCount in sum. */
export function checkRegions(what: string, regions: RegionCount[], replicaCount: number): string | null {
  if (regions.length > DB_LIMITS.regionsPerShard) {
    return `${what} lists ${regions.length} regions, at most ${DB_LIMITS.regionsPerShard} are allowed`;
  }
  const seen = new Set<string>();
  let sum = 0;
  for (const [i, r] of regions.entries()) {
    const bad = checkRegion(`${what}[${i}].region`, r.region) ?? checkId(`${what}[${i}].count`, r.count);
    if (bad) return bad;
    if (seen.has(r.region)) return `${what} names region ${r.region} twice`;
    seen.add(r.region);
    sum += r.count;
  }
  if (sum > replicaCount) {
    return `${what} asks for ${sum} replicas in regions but the shard has ${replicaCount} (the counts must not add up to more)`;
  }
  return null;
}

/** Members of one membership: positive distinct ids, valid distinct addresses. */
export function checkMembers(what: string, members: ShardMember[]): string | null {
  const ids = new Set<number>();
  const addresses = new Set<string>();
  for (const [i, m] of members.entries()) {
    const bad =
      checkId(`${what}[${i}].replicaId`, m.replicaId) ??
      checkAddress(`${what}[${i}].raftAddress`, m.raftAddress);
    if (bad) return bad;
    if (ids.has(m.replicaId)) return `${what} lists replica ${m.replicaId} twice`;
    if (addresses.has(m.raftAddress)) return `${what} puts two replicas at ${m.raftAddress}`;
    ids.add(m.replicaId);
    addresses.add(m.raftAddress);
  }
  return null;
}

/** Free text (reasons, outcomes) cut to the stored bound. */
export function clip(text: string): string {
  return text.length <= DB_LIMITS.textChars ? text : `${text.slice(0, DB_LIMITS.textChars - 1)}…`;
}
