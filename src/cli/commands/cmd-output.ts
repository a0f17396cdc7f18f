/** Output helpers shared by the `longboat cmd` op families: one line per answer, tables, sizes. */
import type { longboat } from "../../pb/longboat.js";
import type { CmdConfig } from "../config.ts";
import { printLine } from "../output.ts";

/** Prints the human text, or the JSON value with --json; one line each. */
export function print(config: CmdConfig, human: string, json: unknown): void {
  printLine(config.json ? JSON.stringify(json) : human);
}

/** The --shard of an op that needs one (resolveCmdConfig has checked it is given). */
export function shardOf(config: CmdConfig): number {
  if (config.shard === undefined) throw new Error("--shard is required for this op");
  return config.shard;
}

export function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "(no shards)";
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(width[i]!))
      .join("  ")
      .trimEnd();
  return [
    line(cols.map((c) => c.toUpperCase())),
    ...rows.map((r) => line(cols.map((c) => String(r[c])))),
  ].join("\n");
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

export function formatMembership(m: longboat.raft.v1.IMembership): string {
  const list = (xs: longboat.raft.v1.IMember[] | null | undefined) =>
    (xs ?? []).map((x) => `${x.replicaId}@${x.address}`).join(" ") || "-";
  return [
    `config change id: ${Number(m.configChangeId ?? 0)}`,
    `full members:     ${list(m.addresses)}`,
    `non-voting:       ${list(m.nonVotings)}`,
    `witnesses:        ${list(m.witnesses)}`,
    `removed:          ${(m.removed ?? []).join(" ") || "-"}`,
  ].join("\n");
}
