/**
 * zod schemas of the Drummer API's request messages, in the proto3 JSON mapping (camelCase or
 * snake_case keys, uint64 as a number or decimal string) and for decoded application/proto
 * messages alike. Each problem names its field: `ReportRequest.replicas[2].shardId: …`.
 */
import { z } from "zod";
import { bool, string, uint } from "../../api/schemas.ts";

/** A repeated field: absent gives [], each item checked with its path. */
function list<T extends z.ZodType>(item: T, maxItems: number) {
  return z
    .unknown()
    .optional()
    .transform((v, ctx): z.output<T>[] => {
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) {
        ctx.addIssue({ code: "custom", message: "expected a list" });
        return [];
      }
      if (v.length > maxItems) {
        ctx.addIssue({ code: "custom", message: `${v.length} items, at most ${maxItems} are accepted` });
        return [];
      }
      const out: z.output<T>[] = [];
      for (const [i, x] of v.entries()) {
        const parsed = item.safeParse(x);
        if (parsed.success) {
          out.push(parsed.data);
          continue;
        }
        for (const issue of parsed.error.issues) {
          const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
          if (keys.length > 0) {
            for (const k of keys)
              ctx.addIssue({ code: "custom", message: "unknown field", path: [i, ...issue.path, k] });
          } else {
            const text =
              issue.code === "invalid_type" && issue.path.length === 0 ? "expected an object" : issue.message;
            ctx.addIssue({ code: "custom", message: text, path: [i, ...issue.path] });
          }
        }
      }
      return out;
    });
}

/** Bounds of a report (a NodeHost runs at most this many replicas). */
export const REPORT_REPLICAS_MAX = 100_000;
export const MEMBERS_MAX = 64;
/** App names in one report, at most. */
export const REPORT_APPS_MAX = 256;

const member = z.strictObject({ replicaId: uint(64), raftAddress: string });
const region = z.strictObject({ region: string, count: uint(32) });
const replicaKey = z.strictObject({ shardId: uint(64), replicaId: uint(64) });
const replicaReport = z.strictObject({
  shardId: uint(64),
  replicaId: uint(64),
  app: string,
  isLeader: bool,
  leaderReplicaId: uint(64),
  configChangeId: uint(64),
  members: list(member, MEMBERS_MAX),
  appliedIndex: uint(64),
  pending: bool,
  // Optional in the type: reports built by hand (tests, benchmarks) may leave them out.
  term: uint(64).optional(),
  commitIndex: uint(64).optional(),
});
const result = z.strictObject({ decisionId: uint(64), ok: bool, message: string });
const figure = z.number().finite().min(0).optional().default(0);
const hostFigures = z.strictObject({
  sample: uint(64),
  intervalMs: uint(32),
  proposalsPerSecond: figure,
  proposalP99Ms: figure,
  fsyncsPerSecond: figure,
});

export const DrummerSchemas = {
  Report: z.strictObject({
    raftAddress: string,
    apiAddress: string,
    region: string,
    deploymentId: uint(64),
    replicas: list(replicaReport, REPORT_REPLICAS_MAX),
    logsOnDisk: list(replicaKey, REPORT_REPLICAS_MAX),
    results: list(result, REPORT_REPLICAS_MAX),
    apps: list(string, REPORT_APPS_MAX),
    figures: hostFigures.optional(),
  }),
  CreateShard: z.strictObject({
    shardId: uint(64),
    app: string,
    replicaCount: uint(32),
    regions: list(region, 64),
  }),
  SetRegions: z.strictObject({ shardId: uint(64), regions: list(region, 64) }),
  Bootstrap: z.strictObject({}),
  GetDeployment: z.strictObject({}),
  ListNodeHosts: z.strictObject({}),
  ListShards: z.strictObject({ shardIds: list(uint(64), 100_000) }),
  ListDecisions: z.strictObject({ shardId: uint(64), includeFinished: bool }),
  ListDrummers: z.strictObject({}),
  AddDrummer: z.strictObject({ drummerId: uint(64), raftAddress: string, timeoutMs: uint(32) }),
  RemoveDrummer: z.strictObject({ drummerId: uint(64), timeoutMs: uint(32) }),
} as const;

export type DrummerMethod = keyof typeof DrummerSchemas;
export type DrummerRequest<M extends DrummerMethod> = z.output<(typeof DrummerSchemas)[M]>;

export function isDrummerMethod(name: string): name is DrummerMethod {
  return Object.hasOwn(DrummerSchemas, name);
}
