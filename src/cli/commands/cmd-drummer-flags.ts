/**
 * The ops and flags of `longboat cmd` against the drummers (`--drummer d1:9001,…`): which ops
 * there are, the flags only they use, and the checks of what each op needs. config.ts merges
 * them into cmd's own table; this file imports nothing from it (no cycle) and nothing heavy
 * (`--help` and a bad flag load it).
 */
import type { ZodNumber, ZodType } from "zod";
import { ConfigError, type Field, type Labels, lazySchema, z } from "../merge.ts";

/** The ops that talk to the drummers; none takes positional arguments (all are flags). */
export const DRUMMER_OPS = [
  "nodehosts",
  "shards",
  "create-shard",
  "set-regions",
  "bootstrap",
  "drummers",
  "add-drummer",
  "remove-drummer",
  "wait",
] as const;
export type DrummerOp = (typeof DRUMMER_OPS)[number];

/** Positional arguments of each drummer op (none), in the shape of cmd's op table. */
export const DRUMMER_OP_ARGS: Record<DrummerOp, readonly string[]> = {
  nodehosts: [],
  shards: [],
  "create-shard": [],
  "set-regions": [],
  bootstrap: [],
  drummers: [],
  "add-drummer": [],
  "remove-drummer": [],
  wait: [],
};

export function isDrummerOp(op: string): op is DrummerOp {
  return (DRUMMER_OPS as readonly string[]).includes(op);
}

/** A placement goal of a shard: `count` replicas in `region`. */
export interface RegionCount {
  region: string;
  count: number;
}

/** The drummer ops' options in the resolved cmd config. */
export interface DrummerCmdOptions {
  /** Shard id (shards, create-shard, set-regions) or drummer id (add-drummer, remove-drummer). */
  id?: number;
  app: string;
  replicas: number;
  /** Absent: not given; [] (`--regions none`): no region goal. */
  regions?: RegionCount[];
  raftAddress?: string;
  healthy: boolean;
  /** wait: how long to wait in all, in milliseconds. */
  timeout: number;
}

/** Upper bound of --replicas: a shard of more members than this is a typo. */
export const REPLICAS_MAX = 9;
/** Default of wait --timeout. */
export const WAIT_TIMEOUT_DEFAULT = "60s";

const REGION_ITEM = "must be region=count (a region name and a positive number of replicas), as in eu=2";
/** `eu=2,us=1` (or `none`) as a list of region counts; names are checked by the drummers. */
const regions = lazySchema(() =>
  z.array(z.string({ error: REGION_ITEM }), { error: REGION_ITEM }).transform((items, ctx): RegionCount[] => {
    if (items.length === 1 && items[0] === "none") return [];
    const out: RegionCount[] = [];
    for (const [i, item] of items.entries()) {
      const m = /^([^=\s]+)=([0-9]{1,3})$/.exec(item);
      const count = m ? Number(m[2]) : 0;
      if (!m || count < 1) {
        ctx.addIssue({ code: "custom", message: REGION_ITEM, path: [i] });
        continue;
      }
      if (out.some((r) => r.region === m[1])) {
        ctx.addIssue({ code: "custom", message: `names region ${m[1]} twice`, path: [i] });
        continue;
      }
      out.push({ region: m[1]!, count });
    }
    return out;
  }),
);

/** config.ts's value schemas the flags below use (passed in: this file must not import config.ts). */
export interface FieldSchemas {
  positiveInt: ZodNumber;
  /** A positive integer at most max, refused above with the message given. */
  positiveIntAtMost: (max: number, error: string) => ZodType;
  address: ZodType;
  /** Duration text (30s, 2m) to milliseconds. */
  duration: ZodType;
  bool: ZodType;
}

/** The flags only the drummer ops use (appended to cmd's table). */
export function drummerCmdFields({
  positiveInt,
  positiveIntAtMost,
  address,
  duration,
  bool,
}: FieldSchemas): Field[] {
  return [
    {
      key: "id",
      flag: "id",
      kind: "int",
      valueName: "n",
      help: "shards, create-shard, set-regions: the shard ID; add-drummer, remove-drummer: the drummer ID",
      schema: positiveInt,
    },
    {
      key: "app",
      flag: "app",
      kind: "text",
      valueName: "name",
      help: "create-shard: the state machine every replica runs (built in: kv, noop; or a NodeHost's --plugin)",
      schema: lazySchema(
        () => z.string({ error: "must be an app name" }).min(1, { error: "must be an app name" }),
        (v) => (typeof v === "string" && v.length > 0 ? { data: v } : undefined),
      ),
      default: "kv",
    },
    {
      key: "replicas",
      flag: "replicas",
      kind: "int",
      valueName: "n",
      help: `create-shard: how many replicas the drummers keep running (3 survives one lost NodeHost, 5 two; at most ${REPLICAS_MAX})`,
      schema: positiveIntAtMost(REPLICAS_MAX, `must be at most ${REPLICAS_MAX}`),
      default: 3,
    },
    {
      key: "regions",
      flag: "regions",
      kind: "list",
      valueName: "region=n,…",
      help: "create-shard, set-regions: how many replicas go to each region (NodeHost --region), e.g. eu=2,us=1; the rest go anywhere; `none` clears it",
      schema: regions,
    },
    {
      key: "raftAddress",
      flag: "raft-address",
      kind: "text",
      valueName: "host:port",
      help: "add-drummer: the new drummer's raft address (start it with longboat drummer --join afterwards)",
      schema: address,
    },
    {
      key: "healthy",
      flag: "healthy",
      kind: "bool",
      help: "wait: until every drummer answers and every shard is ok (the condition cmd status exits 0 on)",
      schema: bool,
      default: false,
    },
    {
      key: "timeout",
      flag: "timeout",
      kind: "text",
      valueName: "duration",
      help: "wait: how long to wait in all before giving up with exit 1 (30s, 2m, …)",
      schema: duration,
      default: WAIT_TIMEOUT_DEFAULT,
    },
  ];
}

/** What the drummer-side config needs: the address lists and the flags above, with shard. */
interface Checked extends DrummerCmdOptions {
  nodehost: string[];
  drummer: string[];
  shard?: number;
}

const NEEDS: Record<DrummerOp, { id?: "shard" | "drummer" | "optional shard"; more?: (keyof Checked)[] }> = {
  nodehosts: {},
  shards: { id: "optional shard" },
  "create-shard": { id: "shard" },
  "set-regions": { id: "shard", more: ["regions"] },
  bootstrap: {},
  drummers: {},
  "add-drummer": { id: "drummer", more: ["raftAddress"] },
  "remove-drummer": { id: "drummer" },
  wait: { more: ["healthy"] },
};

const FLAG_OF: Partial<Record<keyof Checked, string>> = {
  regions: "--regions eu=2,us=1 (or none)",
  raftAddress: "--raft-address host:port",
  healthy: "--healthy (the condition it waits for)",
};

/**
 * Checks what a drummer op needs (throws ConfigError, exit 2): --drummer, its id, its flags.
 * `--shard N` is taken for `--id N` by the shard ops. Mutates config.id for that.
 */
export function checkDrummerCmd(op: DrummerOp | "status", config: Checked, labels: Labels): void {
  if (config.drummer.length === 0) {
    throw new ConfigError(
      `cmd ${op} needs --drummer host:port,… (the drummers' API addresses, e.g. --drummer d1:9001,d2:9001,d3:9001)`,
    );
  }
  if (config.nodehost.length > 0) {
    // A flag beats the environment (a shell may export both LONGBOAT_NODEHOST and
    // LONGBOAT_DRUMMER); with both in the environment, status shows the whole deployment.
    const fromEnv = (key: string) => labels.get(key)?.startsWith("LONGBOAT_") === true;
    if (fromEnv("nodehost")) {
      config.nodehost = [];
    } else if (op === "status" && fromEnv("drummer")) {
      config.drummer = [];
      return;
    } else if (op === "status") {
      throw new ConfigError(
        `cmd status shows one NodeHost's replicas (--nodehost) or the whole deployment (--drummer); give one of ${labels.get("nodehost")} and ${labels.get("drummer")}`,
      );
    } else {
      throw new ConfigError(
        `cmd ${op} talks to the drummers (--drummer), not to a NodeHost: drop ${labels.get("nodehost")}`,
      );
    }
  }
  // LONGBOAT_ID and LONGBOAT_RAFT_ADDRESS are also a drummer's (and a NodeHost's) own settings:
  // taken from the environment they could name this shell's drummer, so they must be typed here.
  const need = op === "status" ? {} : NEEDS[op];
  const used = [
    ...(need.id ? ["id" as const] : []),
    ...(need.more?.includes("raftAddress") ? ["raftAddress" as const] : []),
  ];
  for (const key of used) {
    const from = labels.get(key);
    if (config[key] !== undefined && from?.startsWith("LONGBOAT_")) {
      throw new ConfigError(
        `cmd ${op} takes --${key === "id" ? "id" : "raft-address"} from the command line only, not from ${from} (which also sets a drummer's or NodeHost's own ${key === "id" ? "ID" : "raft address"})`,
      );
    }
  }
  if (need.id === "shard" || need.id === "optional shard") {
    if (config.shard !== undefined && config.id !== undefined && config.shard !== config.id) {
      throw new ConfigError(
        `${labels.get("id")} ${config.id} and ${labels.get("shard")} ${config.shard} name different shards; give one`,
      );
    }
    config.id ??= config.shard;
    if (need.id === "shard" && config.id === undefined) {
      throw new ConfigError(`cmd ${op} needs --id N, the shard ID`);
    }
  }
  if (need.id === "drummer" && config.id === undefined) {
    throw new ConfigError(`cmd ${op} needs --id N, the drummer ID`);
  }
  for (const key of need.more ?? []) {
    const v = config[key];
    if (v === undefined || v === false) throw new ConfigError(`cmd ${op} needs ${FLAG_OF[key]}`);
  }
  if (op === "create-shard" && config.regions !== undefined) {
    const sum = config.regions.reduce((s, r) => s + r.count, 0);
    if (sum > config.replicas) {
      throw new ConfigError(
        `${labels.get("regions")} asks for ${sum} replicas in regions but ${labels.get("replicas")} is ${config.replicas}`,
      );
    }
  }
}
