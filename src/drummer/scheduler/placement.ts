/**
 * Choosing NodeHosts: distinct alive hosts, region counts honoured, least loaded first (ties
 * broken by address, so a pass is deterministic). An impossible placement is an error that
 * names what is missing, never a crash (reference §7.2, §11.9, §11.10).
 */
import type { RegionCount } from "../types.ts";
import type { ClusterView } from "./cluster.ts";
import type { HostObservation } from "./types.ts";

export type Placement = { ok: true; addresses: string[] } | { ok: false; problem: string };

/** The least loaded host that accept() takes (ties: the lower address); one scan, no sort. */
function leastLoaded(
  c: ClusterView,
  hosts: readonly HostObservation[],
  accept: (h: HostObservation) => boolean,
): HostObservation | undefined {
  let best: HostObservation | undefined;
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const h of hosts) {
    if (!accept(h)) continue;
    const load = c.load(h.raftAddress);
    if (load < bestLoad || (load === bestLoad && best !== undefined && h.raftAddress < best.raftAddress)) {
      best = h;
      bestLoad = load;
    }
  }
  return best;
}

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
  const hosts = c.aliveHosts();
  const picked = new Set<HostObservation>();
  const free = (h: HostObservation) => !exclude.has(h.raftAddress) && !picked.has(h);
  for (const r of regions) {
    for (let i = 0; i < r.count; i++) {
      const h = leastLoaded(c, hosts, (x) => x.region === r.region && free(x));
      if (h === undefined) {
        const there = hosts.filter((x) => x.region === r.region && !exclude.has(x.raftAddress));
        const names = there.map((x) => x.raftAddress).join(", ") || "none";
        return {
          ok: false,
          problem: `needs ${r.count} live NodeHosts in region ${r.region}, has ${there.length} (${names})`,
        };
      }
      picked.add(h);
    }
  }
  while (picked.size < count) {
    const used = new Set([...picked].map((h) => h.region));
    const h = leastLoaded(c, hosts, (x) => free(x) && !used.has(x.region)) ?? leastLoaded(c, hosts, free);
    if (h === undefined) {
      const candidates = hosts.filter((x) => !exclude.has(x.raftAddress));
      const names = candidates.map((x) => x.raftAddress).join(", ") || "none";
      return { ok: false, problem: `needs ${count} live NodeHosts, has ${candidates.length} (${names})` };
    }
    picked.add(h);
  }
  return { ok: true, addresses: [...picked].map((h) => h.raftAddress) };
}

/**
 * The host for a replacement replica: a region the shard's counts still miss first, then
 * the region of the member it replaces, then anywhere; least loaded first.
 */
export function placeReplacement(
  c: ClusterView,
  opts: { missingRegions: string[]; wantedRegion: string; exclude: ReadonlySet<string> },
): Placement {
  const hosts = c.aliveHosts();
  const free = (h: HostObservation) => !opts.exclude.has(h.raftAddress);
  for (const region of [...opts.missingRegions, opts.wantedRegion]) {
    if (region === "") continue;
    const there = leastLoaded(c, hosts, (h) => h.region === region && free(h));
    if (there) return { ok: true, addresses: [there.raftAddress] };
  }
  const any = leastLoaded(c, hosts, free);
  if (any) return { ok: true, addresses: [any.raftAddress] };
  return { ok: false, problem: "no live NodeHost can take a replacement replica" };
}
