// Summarises a Chrome-format .cpuprofile (as written by `bun --cpu-prof`): the top functions by
// self time and the self time per source file, as % of all samples.
//
//   bun scripts/bench/profsum.ts <file.cpuprofile> [--top 25] [--from <epoch ms> --to <epoch ms>]
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/**
 * Top functions and files by self time; with `window` (epoch milliseconds, as Bun stamps
 * profiles) only the samples taken inside it (a benchmark's steady phase, say).
 */
export function summarise(p: Profile, top: number, window?: { fromMs: number; toMs: number }): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  if (p.samples && p.timeDeltas && p.samples.length === p.timeDeltas.length) {
    // The delta before sample i is time spent in the previous sample's node.
    let atUs = p.startTime + (p.timeDeltas[0] ?? 0);
    for (let i = 1; i < p.samples.length; i++) {
      atUs += p.timeDeltas[i]!;
      if (window && (atUs < window.fromMs * 1000 || atUs > window.toMs * 1000)) continue;
      const prev = p.samples[i - 1]!;
      selfUs.set(prev, (selfUs.get(prev) ?? 0) + Math.max(0, p.timeDeltas[i]!));
    }
  } else {
    for (const n of p.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * 1000);
  }
  let totalUs = 0;
  for (const v of selfUs.values()) totalUs += v;
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const url = n.callFrame.url.replace(/^.*\/(src|scripts|node_modules)\//, "$1/");
    const name = n.callFrame.functionName || "(anonymous)";
    const where = url ? `${url}:${n.callFrame.lineNumber + 1}` : "";
    const key = where ? `${name}  ${where}` : name;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const f = url || name;
    file.set(f, (file.get(f) ?? 0) + us);
  }
  const pct = (us: number) => `${((us / totalUs) * 100).toFixed(1).padStart(5)} %`;
  const lines = [`total sampled ${(totalUs / 1000).toFixed(0)} ms`, "", `top ${top} functions by self time:`];
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`);
  lines.push("", `top ${top} files by self time:`);
  for (const [k, us] of [...file].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`);
  return lines.join("\n");
}

if (import.meta.main) {
  const path = process.argv[2];
  if (!path) {
    console.error(
      "usage: bun scripts/bench/profsum.ts <file.cpuprofile> [--top 25] [--from <epoch ms> --to <epoch ms>]",
    );
    process.exit(2);
  }
  const opt = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const top = opt("top") ?? 25;
  const fromMs = opt("from");
  const toMs = opt("to");
  const window =
    fromMs !== undefined || toMs !== undefined ? { fromMs: fromMs ?? 0, toMs: toMs ?? Infinity } : undefined;
  console.log(summarise(JSON.parse(readFileSync(path, "utf8")) as Profile, top, window));
}
