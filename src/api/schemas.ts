import { z } from "zod";

/**
 * zod schemas for the NodeHost API's request messages in the proto3 JSON mapping: camelCase
 * fields (snake_case accepted too, see normalizeKeys), uint64 as a decimal string or a number,
 * bytes as base64 (standard or URL-safe). The same schemas check a decoded application/proto
 * message (numbers and Uint8Array), so both codecs share one set of rules.
 */

const UINT32_MAX = 2 ** 32 - 1;

export function uint(bits: 32 | 64) {
  const max = bits === 32 ? UINT32_MAX : Number.MAX_SAFE_INTEGER;
  const what = bits === 32 ? "uint32" : "uint64 (a decimal string or a number)";
  return z
    .unknown()
    .optional()
    .transform((v, ctx): number => {
      if (v === undefined || v === null) return 0;
      let n = Number.NaN;
      if (typeof v === "number") n = v;
      else if (typeof v === "string" && /^\d+$/.test(v)) n = Number(v);
      if (!Number.isInteger(n) || n < 0) {
        ctx.addIssue({ code: "custom", message: `expected ${what}, got ${JSON.stringify(v)}` });
        return 0;
      }
      if (n > max) {
        ctx.addIssue({
          code: "custom",
          message: `${JSON.stringify(v)} exceeds the largest accepted value ${max}`,
        });
        return 0;
      }
      return n;
    });
}

const BASE64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;

export const bytes = z
  .unknown()
  .optional()
  .transform((v, ctx): Uint8Array => {
    if (v === undefined || v === null) return new Uint8Array(0);
    if (v instanceof Uint8Array) return v;
    if (typeof v === "string" && BASE64_RE.test(v) && v.replace(/=+$/, "").length % 4 !== 1) {
      return new Uint8Array(Buffer.from(v, v.includes("-") || v.includes("_") ? "base64url" : "base64"));
    }
    ctx.addIssue({ code: "custom", message: "expected bytes as a base64 string" });
    return new Uint8Array(0);
  });

export const string = z
  .unknown()
  .optional()
  .transform((v, ctx): string => {
    if (v === undefined || v === null) return "";
    if (typeof v === "string") return v;
    ctx.addIssue({ code: "custom", message: `expected a string, got ${JSON.stringify(v)}` });
    return "";
  });

export const bool = z
  .unknown()
  .optional()
  .transform((v, ctx): boolean => {
    if (v === undefined || v === null) return false;
    if (typeof v === "boolean") return v;
    ctx.addIssue({ code: "custom", message: `expected true or false, got ${JSON.stringify(v)}` });
    return false;
  });

export function enumOf(names: readonly string[]) {
  return z
    .unknown()
    .optional()
    .transform((v, ctx): number => {
      if (v === undefined || v === null) return 0;
      if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < names.length) return v;
      if (typeof v === "string" && names.includes(v)) return names.indexOf(v);
      ctx.addIssue({
        code: "custom",
        message: `expected one of ${names.join(", ")}, got ${JSON.stringify(v)}`,
      });
      return 0;
    });
}

/** A message field: absent or null gives null. */
export function message<T extends z.ZodType>(schema: T) {
  return z
    .unknown()
    .optional()
    .transform((v, ctx): z.output<T> | null => {
      if (v === undefined || v === null) return null;
      const parsed = schema.safeParse(v);
      if (parsed.success) return parsed.data;
      for (const issue of parsed.error.issues) {
        if (issue.code === "unrecognized_keys") {
          for (const k of issue.keys)
            ctx.addIssue({ code: "custom", message: "unknown field", path: [...issue.path, k] });
        } else if (issue.code === "invalid_type" && issue.path.length === 0) {
          ctx.addIssue({ code: "custom", message: "expected an object or null" });
        } else {
          ctx.addIssue({ code: "custom", message: issue.message, path: [...issue.path] });
        }
      }
      return null;
    });
}

export const SessionSchema = z.strictObject({
  shardId: uint(64),
  clientId: uint(64),
  seriesId: uint(64),
  respondedTo: uint(64),
});

/** A repeated field: absent or null gives []. */
function repeated<T extends z.ZodType>(schema: T) {
  return z
    .unknown()
    .optional()
    .transform((v, ctx): z.output<T>[] => {
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) {
        ctx.addIssue({ code: "custom", message: "expected a list" });
        return [];
      }
      const out: z.output<T>[] = [];
      v.forEach((item, i) => {
        const parsed = schema.safeParse(item);
        if (parsed.success) out.push(parsed.data);
        else
          for (const issue of parsed.error.issues)
            ctx.addIssue({ code: "custom", message: issue.message, path: [i, ...issue.path] });
      });
      return out;
    });
}

const MemberSchema = z.strictObject({ replicaId: uint(64), address: string });

export const MembershipSchema = z.strictObject({
  configChangeId: uint(64),
  addresses: repeated(MemberSchema),
  nonVotings: repeated(MemberSchema),
  witnesses: repeated(MemberSchema),
  removed: repeated(uint(64)),
});

export const REPLICA_ROLES = [
  "REPLICA_ROLE_UNSPECIFIED",
  "REPLICA_ROLE_FULL",
  "REPLICA_ROLE_NON_VOTING",
  "REPLICA_ROLE_WITNESS",
] as const;

export const RequestSchemas = {
  GetSession: z.strictObject({ shardId: uint(64), timeoutMs: uint(32) }),
  CloseSession: z.strictObject({ session: message(SessionSchema), timeoutMs: uint(32) }),
  Propose: z.strictObject({
    session: message(SessionSchema),
    shardId: uint(64),
    command: bytes,
    timeoutMs: uint(32),
  }),
  Read: z.strictObject({ shardId: uint(64), query: bytes, timeoutMs: uint(32) }),
  StaleRead: z.strictObject({ shardId: uint(64), query: bytes }),
  AddReplica: z.strictObject({
    shardId: uint(64),
    replicaId: uint(64),
    raftAddress: string,
    role: enumOf(REPLICA_ROLES),
    configChangeId: uint(64),
    timeoutMs: uint(32),
  }),
  DeleteReplica: z.strictObject({
    shardId: uint(64),
    replicaId: uint(64),
    configChangeId: uint(64),
    timeoutMs: uint(32),
  }),
  GetMembership: z.strictObject({ shardId: uint(64), timeoutMs: uint(32) }),
  TransferLeader: z.strictObject({ shardId: uint(64), targetReplicaId: uint(64) }),
  RequestSnapshot: z.strictObject({
    shardId: uint(64),
    exportPath: string,
    compactionOverhead: uint(64),
    overrideCompactionOverhead: bool,
    timeoutMs: uint(32),
    compactionIndex: uint(64),
    export: bool,
  }),
  Status: z.strictObject({}),
  RemoveData: z.strictObject({
    shardId: uint(64),
    replicaId: uint(64),
    membership: message(MembershipSchema),
    timeoutMs: uint(32),
  }),
  Compact: z.strictObject({
    shardId: uint(64),
    compactionOverhead: uint(64),
    overrideCompactionOverhead: bool,
  }),
  QueryRaftLog: z.strictObject({
    shardId: uint(64),
    firstIndex: uint(64),
    lastIndex: uint(64),
    maxBytes: uint(64),
    replicaId: uint(64),
  }),
} as const;

export type MethodName = keyof typeof RequestSchemas;

/** ExportSnapshot's request (a server stream, so not among the unary RequestSchemas). */
export const ExportSnapshotSchema = z.strictObject({
  shardId: uint(64),
  unconfirmed: bool,
  timeoutMs: uint(32),
});
export type RequestOf<M extends MethodName> = z.output<(typeof RequestSchemas)[M]>;

/** Renames snake_case keys to camelCase in plain objects, at every depth (proto3 JSON accepts both). */
export function normalizeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalizeKeys);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())] = normalizeKeys(v);
  }
  return out;
}

/** One line naming every problem and its field: `ProposeRequest.shardId: expected uint64 …`. */
export function describeIssues(messageName: string, error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      if (issue.code === "unrecognized_keys") {
        return issue.keys
          .map((k) => `${[messageName, ...issue.path, k].join(".")}: unknown field`)
          .join("; ");
      }
      if (issue.code === "invalid_type" && issue.path.length === 0) {
        return `${messageName}: expected a JSON object`;
      }
      return `${[messageName, ...issue.path].join(".")}: ${issue.message}`;
    })
    .join("; ");
}
