/**
 * Choosing NodeHosts: distinct alive hosts, region counts honoured, least loaded first (ties
 * broken by address, so a pass is deterministic). An impossible placement is an error that
 * names what is missing, never a crash (reference §7.2, §11.9, §11.10).
 */
import type { RegionCount } from "../types.ts";
import type { ClusterView } from "./cluster.ts";
import type { HostObservation } from "./types.ts";

export type Placement = { ok: true; addresses: string[] } | { ok: false; problem: string };

const byLoad = (c: ClusterView) => (a: HostObservation, b: HostObservation) =>
  c.load(a.raftAddress) - c.load(b.raftAddress) || (a.raftAddress < b.raftAddress ? -1 : 1);

/**
 * Picks `count` distinct hosts among the alive ones not excluded: first each region's count,
 * then the rest anywhere, spreading over regions not used yet before doubling up.
 */
export function placeReplicas(
  c: ClusterView,
  count: number,
  regions: readonly RegionCount[],
  exclude: ReadonlySet<string>,
): Placement {
  const candidates = c.aliveHosts().filter((h) => !exclude.has(h.raftAddress));
  const picked: HostObservation[] = [];
  for (const r of regions) {
    const there = candidates.filter((h) => h.region === r.region && !picked.includes(h)).sort(byLoad(c));
    if (there.length < r.count) {
      const names = there.map((h) => h.raftAddress).join(", ") || "none";
      return {
        ok: false,
        problem: `needs ${r.count} live NodeHosts in region ${r.region}, has ${there.length} (${names})`,
      };
    }
    picked.push(...there.slice(0, r.count));
  }
  while (picked.length < count) {
    const rest = candidates.filter((h) => !picked.includes(h));
    if (rest.length === 0) {
      const names = candidates.map((h) => h.raftAddress).join(", ") || "none";
      return { ok: false, problem: `needs ${count} live NodeHosts, has ${candidates.length} (${names})` };
    }
    const used = new Set(picked.map((h) => h.region));
    const fresh = rest.filter((h) => !used.has(h.region));
    picked.push((fresh.length > 0 ? fresh : rest).sort(byLoad(c))[0]!);
  }
  return { ok: true, addresses: picked.map((h) => h.raftAddress) };
}

/**
 * The host for a replacement replica: a region the shard's counts still miss first, then
 * the region of the member it replaces, then anywhere; least loaded first.
 */
export function placeReplacement(
  c: ClusterView,
  opts: { missingRegions: string[]; wantedRegion: string; exclude: ReadonlySet<string> },
): Placement {
  const candidates = c
    .aliveHosts()
    .filter((h) => !opts.exclude.has(h.raftAddress))
    .sort(byLoad(c));
  for (const region of [...opts.missingRegions, opts.wantedRegion]) {
    if (region === "") continue;
    const there = candidates.find((h) => h.region === region);
    if (there) return { ok: true, addresses: [there.raftAddress] };
  }
  if (candidates.length > 0) return { ok: true, addresses: [candidates[0]!.raftAddress] };
  return { ok: false, problem: "no live NodeHost can take a replacement replica" };
}
