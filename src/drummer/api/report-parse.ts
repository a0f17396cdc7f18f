/**
 * The ReportRequest checker, hand written because reports are the drummers' hot path (1,000
 * NodeHosts × 100 replicas every 5 s): the zod schema of the other methods costed about 2 ms a
 * report. Same rules and same messages as the NodeHost API's field helpers: camelCase fields,
 * uint64 as a number or a decimal string, unknown fields refused, every problem named by its
 * path (`ReportRequest.replicas.2.shardId: expected uint64 …`).
 */
import { ConnectError } from "../../api/errors.ts";
import type { DrummerRequest } from "./schemas.ts";
import { MEMBERS_MAX, REPORT_APPS_MAX, REPORT_REPLICAS_MAX } from "./schemas.ts";

type Report = DrummerRequest<"Report">;
type Obj = Record<string, unknown>;

const REPORT_KEYS = new Set([
  "raftAddress",
  "apiAddress",
  "region",
  "deploymentId",
  "replicas",
  "logsOnDisk",
  "results",
  "apps",
  "figures",
]);
const REPLICA_KEYS = new Set([
  "shardId",
  "replicaId",
  "app",
  "isLeader",
  "leaderReplicaId",
  "configChangeId",
  "members",
  "appliedIndex",
  "pending",
  "term",
  "commitIndex",
]);
const MEMBER_KEYS = new Set(["replicaId", "raftAddress"]);
const KEY_KEYS = new Set(["shardId", "replicaId"]);
const RESULT_KEYS = new Set(["decisionId", "ok", "message"]);
const FIGURES_KEYS = new Set([
  "sample",
  "intervalMs",
  "proposalsPerSecond",
  "proposalP99Ms",
  "fsyncsPerSecond",
]);
const UINT32_MAX = 4_294_967_295;
/** Problems named in one error, at most. */
const PROBLEMS_MAX = 20;

class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    if (this.list.length < PROBLEMS_MAX) this.list.push(`${path}: ${message}`);
  }
}

/** The path of a field, built only for a problem (a report has a thousand fields). */
const at = (base: string, field: string) => (field === "" ? base : `${base}.${field}`);

function uint(p: Problems, base: string, field: string, v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER) return v;
  const path = at(base, field);
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (Number.isInteger(n) && n >= 0 && n <= Number.MAX_SAFE_INTEGER) return n;
  if (Number.isInteger(n) && n > Number.MAX_SAFE_INTEGER) {
    p.add(path, `${JSON.stringify(v)} exceeds the largest accepted value ${Number.MAX_SAFE_INTEGER}`);
  } else p.add(path, `expected uint64 (a decimal string or a number), got ${JSON.stringify(v)}`);
  return 0;
}

/** A double that is a figure: finite and not negative (JSON's "NaN"/"Infinity" strings are refused). */
function figure(p: Problems, base: string, field: string, v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return v;
  p.add(at(base, field), `expected a finite number ≥ 0, got ${JSON.stringify(v)}`);
  return 0;
}

function figures(p: Problems, where: string, v: unknown): Report["figures"] {
  if (v === undefined || v === null) return undefined;
  const o = obj(p, where, v, FIGURES_KEYS);
  if (!o) return undefined;
  const intervalMs = uint(p, where, "intervalMs", o.intervalMs);
  if (intervalMs > UINT32_MAX) p.add(at(where, "intervalMs"), `${intervalMs} exceeds the uint32 range`);
  return {
    sample: uint(p, where, "sample", o.sample),
    intervalMs,
    proposalsPerSecond: figure(p, where, "proposalsPerSecond", o.proposalsPerSecond),
    proposalP99Ms: figure(p, where, "proposalP99Ms", o.proposalP99Ms),
    fsyncsPerSecond: figure(p, where, "fsyncsPerSecond", o.fsyncsPerSecond),
  };
}

function str(p: Problems, base: string, field: string, v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  p.add(at(base, field), `expected a string, got ${JSON.stringify(v)}`);
  return "";
}

function bool(p: Problems, base: string, field: string, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  p.add(at(base, field), `expected true or false, got ${JSON.stringify(v)}`);
  return false;
}

function obj(p: Problems, path: string, v: unknown, keys: Set<string>): Obj | null {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    p.add(path, "expected an object");
    return null;
  }
  for (const k in v) if (!keys.has(k)) p.add(`${path}.${k}`, "unknown field");
  return v as Obj;
}

function isEmptyList(v: unknown): boolean {
  return v === undefined || v === null || (Array.isArray(v) && v.length === 0);
}

function list<T>(
  p: Problems,
  path: string,
  v: unknown,
  max: number,
  item: (x: unknown, at: string) => T | null,
): T[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    p.add(path, "expected a list");
    return [];
  }
  if (v.length > max) {
    p.add(path, `${v.length} items, at most ${max} are accepted`);
    return [];
  }
  const out: T[] = [];
  for (let i = 0; i < v.length; i++) {
    const x = item(v[i], `${path}.${i}`);
    if (x !== null) out.push(x);
  }
  return out;
}

function replica(p: Problems, at: string, v: unknown): Report["replicas"][number] | null {
  const o = obj(p, at, v, REPLICA_KEYS);
  if (!o) return null;
  return {
    shardId: uint(p, at, "shardId", o.shardId),
    replicaId: uint(p, at, "replicaId", o.replicaId),
    app: str(p, at, "app", o.app),
    isLeader: bool(p, at, "isLeader", o.isLeader),
    leaderReplicaId: uint(p, at, "leaderReplicaId", o.leaderReplicaId),
    configChangeId: uint(p, at, "configChangeId", o.configChangeId),
    // Left out in most reports (the leader has them): no path built for an empty list.
    members: isEmptyList(o.members)
      ? []
      : list(p, `${at}.members`, o.members, MEMBERS_MAX, (x, mat) => {
          const m = obj(p, mat, x, MEMBER_KEYS);
          return m
            ? {
                replicaId: uint(p, mat, "replicaId", m.replicaId),
                raftAddress: str(p, mat, "raftAddress", m.raftAddress),
              }
            : null;
        }),
    appliedIndex: uint(p, at, "appliedIndex", o.appliedIndex),
    pending: bool(p, at, "pending", o.pending),
    term: uint(p, at, "term", o.term),
    commitIndex: uint(p, at, "commitIndex", o.commitIndex),
  };
}

/** Checks a decoded ReportRequest (proto or JSON); throws invalid_argument naming every bad field. */
export function parseReport(input: unknown, messageName: string): Report {
  const p = new Problems();
  const o = obj(p, messageName, input, REPORT_KEYS) ?? {};
  const report: Report = {
    raftAddress: str(p, messageName, "raftAddress", o.raftAddress),
    apiAddress: str(p, messageName, "apiAddress", o.apiAddress),
    region: str(p, messageName, "region", o.region),
    deploymentId: uint(p, messageName, "deploymentId", o.deploymentId),
    replicas: list(p, `${messageName}.replicas`, o.replicas, REPORT_REPLICAS_MAX, (x, at) =>
      replica(p, at, x),
    ),
    logsOnDisk: list(p, `${messageName}.logsOnDisk`, o.logsOnDisk, REPORT_REPLICAS_MAX, (x, at) => {
      const k = obj(p, at, x, KEY_KEYS);
      return k
        ? { shardId: uint(p, at, "shardId", k.shardId), replicaId: uint(p, at, "replicaId", k.replicaId) }
        : null;
    }),
    results: list(p, `${messageName}.results`, o.results, REPORT_REPLICAS_MAX, (x, at) => {
      const r = obj(p, at, x, RESULT_KEYS);
      return r
        ? {
            decisionId: uint(p, at, "decisionId", r.decisionId),
            ok: bool(p, at, "ok", r.ok),
            message: str(p, at, "message", r.message),
          }
        : null;
    }),
    apps: list(p, `${messageName}.apps`, o.apps, REPORT_APPS_MAX, (x, where) => str(p, where, "", x)),
  };
  // A NodeHost runs one replica of a shard: the leader's book relies on distinct shard ids.
  if (report.replicas.length > 1) {
    const seen = new Set<number>();
    for (const [i, r] of report.replicas.entries()) {
      if (seen.has(r.shardId))
        p.add(`${messageName}.replicas.${i}.shardId`, `shard ${r.shardId} is listed twice`);
      seen.add(r.shardId);
    }
  }
  const f = figures(p, `${messageName}.figures`, o.figures);
  if (f) report.figures = f;
  if (p.list.length > 0) throw new ConnectError("invalid_argument", p.list.join("; "));
  return report;
}
