/**
 * Every configuration schema of the CLI, one table of fields per subcommand. A value comes from
 * the flag, else LONGBOAT_<FLAG>, else the `--config` JSON file (camelCase keys), else the default.
 *
 * @example
 * resolveNodeHostConfig({ flags: { "raft-address": "h1:7001", "api-address": "h1:8001" }, env: process.env })
 */
import type { ZodType } from "zod";
import { AddressError, PORT_MAX, parseAddress } from "./address.ts";
import {
  checkDrummerCmd,
  DRUMMER_OP_ARGS,
  type DrummerCmdOptions,
  type DrummerOp,
  drummerCmdFields,
  isDrummerOp,
} from "./commands/cmd-drummer-flags.ts";
import {
  ConfigError,
  type ConfigInput,
  type FastPath,
  type Field,
  type Labels,
  lazySchema,
  mergeFields,
  z,
} from "./merge.ts";
import type { DrummerPeer, ShardSpec } from "./specs.ts";

export { ConfigError } from "./merge.ts";
export type { ConfigInput, Field } from "./merge.ts";

// ---- value schemas ----------------------------------------------------------------------

// Each schema's fast path (lazySchema) takes what it surely accepts, as it would give it back;
// zod decides, and words the refusal of, anything else.
/** A fast path that takes the values `ok` says, unchanged. */
const when =
  (ok: (value: unknown) => boolean): FastPath =>
  (value) =>
    ok(value) ? { data: value } : undefined;
const isInt = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): boolean =>
  Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const isText = (v: unknown, min = 0): boolean => typeof v === "string" && v.length >= min;

const POSITIVE_INT = "must be a positive integer";
const positiveInt = lazySchema(
  () => z.number({ error: POSITIVE_INT }).int({ error: POSITIVE_INT }).min(1, { error: POSITIVE_INT }),
  when((v) => isInt(v, 1)),
); // zod's int() refuses numbers beyond 2^53-1

/** A positive integer at most max, refused above with `error`. */
const positiveIntAtMost = (max: number, error: string) =>
  lazySchema(
    () => positiveInt.max(max, { error }),
    when((v) => isInt(v, 1, max)),
  );

const NON_NEGATIVE_INT = "must be an integer ≥ 0";
const nonNegativeInt = lazySchema(
  () =>
    z
      .number({ error: NON_NEGATIVE_INT })
      .int({ error: NON_NEGATIVE_INT })
      .min(0, { error: NON_NEGATIVE_INT }),
  when((v) => isInt(v, 0)),
);

const SAFE_INTEGER = "must be an integer within ±(2^53 − 1)";
const safeInteger = lazySchema(
  () => z.number({ error: SAFE_INTEGER }).int({ error: SAFE_INTEGER }),
  when((v) => isInt(v, Number.MIN_SAFE_INTEGER)),
);

const NON_EMPTY = "must be a non-empty string";
const nonEmpty = lazySchema(
  () => z.string({ error: NON_EMPTY }).min(1, { error: NON_EMPTY }),
  when((v) => isText(v, 1)),
);

/** Any text. */
const anyText = lazySchema(
  () => z.string({ error: "must be text" }),
  when((v) => isText(v)),
);

const ADDRESS = "must be host:port with a port in 1..65535";
const isAddress = (v: unknown): boolean => {
  if (typeof v !== "string") return false;
  try {
    parseAddress(v);
    return true;
  } catch {
    return false;
  }
};
const address = lazySchema(
  () =>
    z.string({ error: ADDRESS }).superRefine((text, ctx) => {
      try {
        parseAddress(text);
      } catch (e) {
        if (!(e instanceof AddressError)) throw e;
        ctx.addIssue({ code: "custom", message: ADDRESS, params: { detail: e.reason } });
      }
    }),
  when(isAddress),
);

const ADDRESS_LIST = "must be a non-empty list of host:port";
const addressList = lazySchema(
  () => z.array(address, { error: ADDRESS_LIST }).min(1, { error: ADDRESS_LIST }),
  (v) => (Array.isArray(v) && v.length > 0 && v.every(isAddress) ? { data: [...v] } : undefined),
);

/** Upper bound of --rtt-ms: a tick longer than a minute is a typo, not a network. */
export const RTT_MS_MAX = 60_000;
const rttMs = positiveIntAtMost(RTT_MS_MAX, `must be at most ${RTT_MS_MAX} (one minute)`);

const DURATION = "must be a duration like 500ms, 5s, 2m or 1h";
const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Upper bound of a duration option: one day. */
export const DURATION_MS_MAX = 86_400_000;
/** Milliseconds of a duration, or why not: "form" (not a duration) or "range" (beyond 1ms..24h). */
function durationMs(v: string | number): number | "form" | "range" {
  const m = typeof v === "number" ? [String(v), String(v), "ms"] : /^([0-9]+)(ms|s|m|h)$/.exec(v);
  const ms = m ? Number(m[1]) * DURATION_UNITS_MS[m[2]!]! : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 1 || ms > DURATION_MS_MAX) return m ? "range" : "form";
  return ms;
}
/** A duration as text with a unit (or a number of milliseconds in a config file); gives milliseconds. */
const duration = lazySchema(
  () =>
    z.union([z.string(), z.number()], { error: DURATION }).transform((v, ctx): number => {
      const ms = durationMs(v);
      if (typeof ms === "number") return ms;
      ctx.addIssue({ code: "custom", message: ms === "range" ? "must be between 1ms and 24h" : DURATION });
      return 0;
    }),
  (v) => {
    const ms = typeof v === "string" || typeof v === "number" ? durationMs(v) : "form";
    return typeof ms === "number" ? { data: ms } : undefined;
  },
);

/** Upper bound of cmd --timeout-ms: one hour. */
export const TIMEOUT_MS_MAX = 3_600_000;
/** Upper bound of dev --shards. */
export const DEV_SHARDS_MAX = 1024;
/** dev runs this many NodeHosts and drummers. */
export const DEV_NODEHOSTS = 4;
export const DEV_DRUMMERS = 3;
/** dev uses ports base+1 .. base+DEV_PORT_SPAN (the last drummer's API port). */
export const DEV_PORT_SPAN = 30 + DEV_DRUMMERS;
export const DEV_BASE_PORT_MAX = PORT_MAX - DEV_PORT_SPAN;
/** Shortest dev --dead-timeout. */
export const DEV_DEAD_TIMEOUT_MS_MIN = 2000;

const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
const logLevel = lazySchema(
  () => z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }),
  when((v) => (LOG_LEVELS as readonly unknown[]).includes(v)),
);

const member = lazySchema(() =>
  z.strictObject(
    { replicaId: positiveInt, address },
    { error: "must be an object {replicaId, address} with no other keys" },
  ),
);

const SHARD_KEYS = "shardId, app, replicaId, members, join, snapshotEntries, compactionOverhead, autoCompact";
const shard = lazySchema(() =>
  z
    .strictObject(
      {
        shardId: positiveInt,
        app: nonEmpty,
        replicaId: positiveInt,
        members: z.array(member),
        join: z.boolean().optional(),
        snapshotEntries: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
        compactionOverhead: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
        autoCompact: z.boolean().optional(),
      },
      { error: `must be an object {${SHARD_KEYS}} with no other keys` },
    )
    .superRefine((s, ctx) => {
      const dupId = firstDuplicate(s.members.map((m) => m.replicaId));
      if (dupId !== undefined)
        ctx.addIssue({ code: "custom", message: `shard ${s.shardId} lists replica ${dupId} twice` });
      const dupAddress = firstDuplicate(s.members.map((m) => m.address));
      if (dupAddress !== undefined) {
        ctx.addIssue({ code: "custom", message: `shard ${s.shardId} lists address ${dupAddress} twice` });
      }
      if (!s.join && !s.members.some((m) => m.replicaId === s.replicaId)) {
        const ids = s.members.map((m) => m.replicaId).join(", ");
        ctx.addIssue({
          code: "custom",
          message: `shard ${s.shardId}: replica ${s.replicaId} is not among its members (${ids}); add it or set join=true`,
        });
      }
    }),
);

const shards = lazySchema(() =>
  z.array(shard, { error: "must be a list of shards" }).superRefine((list, ctx) => {
    const dup = firstDuplicate(list.map((s) => s.shardId));
    if (dup !== undefined) ctx.addIssue({ code: "custom", message: `shard ${dup} is given twice` });
  }),
);

const PEERS = "must be a non-empty list of drummers {id, address}";
const peers = lazySchema(() =>
  z
    .array(z.strictObject({ id: positiveInt, address }, { error: PEERS }), { error: PEERS })
    .min(1, { error: PEERS })
    .superRefine((list, ctx) => {
      const dupId = firstDuplicate(list.map((p) => p.id));
      if (dupId !== undefined) ctx.addIssue({ code: "custom", message: `lists drummer ${dupId} twice` });
      const dupAddress = firstDuplicate(list.map((p) => p.address));
      if (dupAddress !== undefined)
        ctx.addIssue({ code: "custom", message: `lists address ${dupAddress} twice` });
    }),
);

function firstDuplicate<T>(values: readonly T[]): T | undefined {
  return values.find((v, i) => values.indexOf(v) !== i);
}

// ---- shared fields ----------------------------------------------------------------------

const rttField: Field = {
  key: "rttMs",
  flag: "rtt-ms",
  kind: "int",
  valueName: "ms",
  help: "round-trip time between hosts in milliseconds; one Raft tick",
  schema: rttMs,
  default: 100,
};
const deploymentField: Field = {
  key: "deploymentId",
  flag: "deployment-id",
  kind: "int",
  valueName: "id",
  help: "deployment ID shared by every host of one deployment; messages from others are dropped",
  schema: positiveInt,
  default: 1,
};
const apiTokenField: Field = {
  key: "apiToken",
  flag: "api-token",
  kind: "text",
  valueName: "token",
  help: "bearer token the HTTP API requires",
  schema: nonEmpty,
};

const logLevelField: Field = {
  key: "logLevel",
  flag: "log-level",
  kind: "text",
  valueName: "level",
  help: `log level: ${LOG_LEVELS.join(", ")}`,
  schema: logLevel,
  default: "info",
};

// ---- API security (server and client side) ------------------------------------------------

const BOOL = lazySchema(
  () => z.boolean({ error: "must be true or false" }),
  when((v) => typeof v === "boolean"),
);

const pemFile = (key: string, flag: string, help: string): Field => ({
  key,
  flag,
  kind: "text",
  valueName: "file",
  help,
  schema: nonEmpty,
});

/** Options of a server's API: TLS, the open-door flag, the metrics token, the export directory. */
export interface ApiServerConfig {
  apiTlsCert?: string;
  apiTlsKey?: string;
  apiTlsCa?: string;
  apiInsecure: boolean;
  metricsToken?: string;
  /** Seconds between the refreshes of the dashboard at GET / (src/ui). */
  refresh: number;
}

export const API_SERVER_FIELDS: readonly Field[] = [
  pemFile(
    "apiTlsCert",
    "api-tls-cert",
    "certificate (PEM) the API serves over TLS (HTTP/1.1 and HTTP/2 by ALPN); with --api-tls-key",
  ),
  pemFile("apiTlsKey", "api-tls-key", "private key (PEM) of --api-tls-cert"),
  pemFile(
    "apiTlsCa",
    "api-tls-ca",
    "CA certificate (PEM): API clients must present a certificate it signed (mutual TLS); requests forwarded to the leader trust it",
  ),
  {
    key: "apiInsecure",
    flag: "api-insecure",
    kind: "bool",
    help: "serve the API on a non-loopback address without --api-token or --api-tls-ca: anyone who reaches it reads and writes every shard (a warning is logged at each start)",
    schema: BOOL,
    default: false,
  },
  {
    key: "metricsToken",
    flag: "metrics-token",
    kind: "text",
    valueName: "token",
    help: "bearer token GET /metrics requires (the API token works too), so a scraper needs no API access",
    schema: nonEmpty,
  },
  {
    key: "refresh",
    flag: "refresh",
    kind: "int",
    valueName: "seconds",
    help: "seconds between the refreshes of the dashboard served at GET / on the API address",
    schema: positiveIntAtMost(3600, "must be at most 3600 (one hour)"),
    default: 2,
  },
];

/** Whether host is a loopback name or address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The API-security rules of a server's configuration: the TLS files come as a pair, a CA needs
 * them, and an API that anyone on the network could reach without a token or a client
 * certificate needs --api-insecure.
 */
function checkApiSecurity(
  config: ApiServerConfig & { apiAddress: string; apiToken?: string },
  labels: Labels,
): void {
  if ((config.apiTlsCert === undefined) !== (config.apiTlsKey === undefined)) {
    const given = config.apiTlsCert === undefined ? labels.get("apiTlsKey") : labels.get("apiTlsCert");
    throw new ConfigError(`--api-tls-cert and --api-tls-key must be given together, got only ${given}`);
  }
  if (config.apiTlsCa !== undefined && config.apiTlsCert === undefined) {
    throw new ConfigError(
      `${labels.get("apiTlsCa")} needs --api-tls-cert and --api-tls-key: client certificates are checked over TLS`,
    );
  }
  const host = parseAddress(config.apiAddress).host;
  if (
    isLoopback(host) ||
    config.apiToken !== undefined ||
    config.apiTlsCa !== undefined ||
    config.apiInsecure
  )
    return;
  throw new ConfigError(
    `${labels.get("apiAddress")} ${config.apiAddress} is not a loopback address and the API has no --api-token or --api-tls-ca: anyone who reaches it could read and write every shard. Set --api-token (with --api-tls-cert/--api-tls-key so it is not sent in clear), or --api-tls-ca for client certificates, or --api-insecure to accept an open API (a closed test network only)`,
  );
}

/** Options of a client of the API (cmd, backup): https when any is given. */
export interface ApiClientConfig {
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureSkipVerify: boolean;
}

export const API_CLIENT_FIELDS: readonly Field[] = [
  pemFile(
    "tlsCa",
    "tls-ca",
    "CA certificate (PEM) that signed the NodeHosts' API certificates; the API is then called over https",
  ),
  pemFile(
    "tlsCert",
    "tls-cert",
    "client certificate (PEM) for an API that requires one (--api-tls-ca); with --tls-key",
  ),
  pemFile("tlsKey", "tls-key", "private key (PEM) of --tls-cert"),
  {
    key: "insecureSkipVerify",
    flag: "insecure-skip-verify",
    kind: "bool",
    help: "https without checking the server's certificate: for development only (anyone on the path can read the token)",
    schema: BOOL,
    default: false,
  },
];

function checkApiClient(config: ApiClientConfig, labels: Labels): void {
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    const given = config.tlsCert === undefined ? labels.get("tlsKey") : labels.get("tlsCert");
    throw new ConfigError(`--tls-cert and --tls-key must be given together, got only ${given}`);
  }
  if (config.insecureSkipVerify && config.tlsCa !== undefined) {
    throw new ConfigError(
      `${labels.get("insecureSkipVerify")} and ${labels.get("tlsCa")} contradict each other: drop --insecure-skip-verify to check the server against the CA`,
    );
  }
}

/** --tls-ca, --tls-cert and --tls-key come together or not at all. */
function checkTls(values: Record<string, unknown>, labels: Map<string, string>): void {
  const keys = ["tlsCa", "tlsCert", "tlsKey"];
  const given = keys.filter((k) => values[k] !== undefined);
  if (given.length === 0 || given.length === 3) return;
  throw new ConfigError(
    `--tls-ca, --tls-cert and --tls-key must be given together, got only ${given.map((k) => labels.get(k)).join(" and ")}`,
  );
}

// ---- nodehost -----------------------------------------------------------------------------

/** Options of `longboat nodehost`. */
export interface NodeHostConfig extends ApiServerConfig {
  /** The only directory RequestSnapshot may export into; absent: export refused. */
  snapshotExportDir?: string;
  dataDir: string;
  raftAddress: string;
  apiAddress: string;
  rttMs: number;
  deploymentId: number;
  region: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  plugin: string[];
  shards: ShardSpec[];
  master: string[];
  /** The drummers' API token and TLS, for the master client. */
  masterToken?: string;
  masterTlsCa?: string;
  masterTlsCert?: string;
  masterTlsKey?: string;
  apiToken?: string;
  logLevel: (typeof LOG_LEVELS)[number];
  onLeaderChange?: string;
  onLeaderChangeShell: boolean;
  leaderWebhook?: string;
  hookTimeoutMs: number;
}

/** Upper bound of --hook-timeout-ms: ten minutes. */
export const HOOK_TIMEOUT_MS_MAX = 600_000;

const WEBHOOK_URL = "must be an http:// or https:// URL";
const webhookUrl = lazySchema(() =>
  z.string({ error: WEBHOOK_URL }).refine((text) => {
    try {
      const url = new URL(text);
      return url.protocol === "http:" || url.protocol === "https:";
    } catch {
      return false;
    }
  }, WEBHOOK_URL),
);

/** Leader-change hooks (docs/leader-hooks.md). */
const HOOK_FIELDS: readonly Field[] = [
  {
    key: "onLeaderChange",
    flag: "on-leader-change",
    kind: "text",
    valueName: "command",
    help: "command run (no shell) on each leadership change of a replica here, one at a time per shard, with LONGBOAT_SHARD, _REPLICA, _TERM, _LEADER and _ROLE (leader|follower|none) set",
    schema: nonEmpty,
  },
  {
    key: "onLeaderChangeShell",
    flag: "on-leader-change-shell",
    kind: "bool",
    help: "run --on-leader-change through /bin/sh -c",
    schema: BOOL,
    default: false,
  },
  {
    key: "leaderWebhook",
    flag: "leader-webhook",
    kind: "text",
    valueName: "url",
    help: "URL POSTed the same facts as JSON on each leadership change, in order, retried with backoff; the term is the fencing token",
    schema: webhookUrl,
  },
  {
    key: "hookTimeoutMs",
    flag: "hook-timeout-ms",
    kind: "int",
    valueName: "ms",
    help: `longest a hook command or one webhook POST may take in milliseconds, at most ${HOOK_TIMEOUT_MS_MAX}`,
    schema: positiveIntAtMost(HOOK_TIMEOUT_MS_MAX, `must be at most ${HOOK_TIMEOUT_MS_MAX} (ten minutes)`),
    default: 10_000,
  },
];

const tlsField = (key: string, flag: string, what: string): Field => ({
  key,
  flag,
  kind: "text",
  valueName: "file",
  help: `${what} (PEM file) for mutual TLS of the raft transport; give --tls-ca, --tls-cert and --tls-key together`,
  schema: nonEmpty,
});

export const NODEHOST_FIELDS: readonly Field[] = [
  {
    key: "dataDir",
    flag: "data-dir",
    kind: "text",
    valueName: "dir",
    help: "directory of the log database and snapshots",
    schema: nonEmpty,
    default: "./longboat-data",
  },
  {
    key: "raftAddress",
    flag: "raft-address",
    kind: "text",
    valueName: "host:port",
    help: "address other NodeHosts reach this one at for Raft messages",
    schema: address,
    required: true,
  },
  {
    key: "apiAddress",
    flag: "api-address",
    kind: "text",
    valueName: "host:port",
    help: "address the HTTP API (Connect protocol, /healthz, /metrics) listens on",
    schema: address,
    required: true,
  },
  rttField,
  deploymentField,
  {
    key: "region",
    flag: "region",
    kind: "text",
    valueName: "name",
    help: "region name the drummer uses to spread replicas",
    schema: nonEmpty,
    default: "default",
  },
  tlsField("tlsCa", "tls-ca", "CA certificate"),
  tlsField("tlsCert", "tls-cert", "this host's certificate"),
  tlsField("tlsKey", "tls-key", "this host's private key"),
  {
    key: "plugin",
    flag: "plugin",
    kind: "list",
    valueName: "file",
    help: "state machine plugin module to load; comma-separated or repeated",
    schema: lazySchema(() => z.array(nonEmpty, { error: "must be a list of file names" })),
    default: [],
  },
  {
    key: "shards",
    flag: "shard",
    kind: "shards",
    valueName: "spec",
    help: "a replica to host: id=1,app=kv,replica=1,members=1@h1:7001;2@h2:7001;3@h3:7001[,join=true]; repeated. Log settings: snapshot-entries=N (a snapshot every N applied entries; default 0, only on request), compaction-overhead=N (entries kept behind a snapshot; default 5000), auto-compact=false (keep the log until cmd compact)",
    schema: shards,
    default: [],
  },
  {
    key: "master",
    flag: "master",
    kind: "list",
    valueName: "host:port,…",
    help: "drummer API addresses to report to; comma-separated",
    schema: addressList,
    default: [],
  },
  {
    key: "masterToken",
    flag: "master-token",
    kind: "text",
    valueName: "token",
    help: "bearer token the drummers' API requires (their --api-token); with --master",
    schema: nonEmpty,
  },
  pemFile(
    "masterTlsCa",
    "master-tls-ca",
    "CA certificate (PEM) that signed the drummers' API certificates; reports then go over https; with --master",
  ),
  pemFile(
    "masterTlsCert",
    "master-tls-cert",
    "client certificate (PEM) for drummers that require one (their --api-tls-ca); with --master-tls-key",
  ),
  pemFile("masterTlsKey", "master-tls-key", "private key (PEM) of --master-tls-cert"),
  apiTokenField,
  ...API_SERVER_FIELDS,
  {
    key: "snapshotExportDir",
    flag: "snapshot-export-dir",
    kind: "text",
    valueName: "dir",
    help: "directory snapshots may be exported into (cmd snapshot --export); a client never names a path, and without this export is refused",
    schema: nonEmpty,
  },
  logLevelField,
  ...HOOK_FIELDS,
];

/** Merges and validates nodehost options; throws ConfigError. */
export function resolveNodeHostConfig(input: ConfigInput): NodeHostConfig {
  const { values, labels } = mergeFields(NODEHOST_FIELDS, input);
  const config = values as unknown as NodeHostConfig;
  checkTls(values, labels);
  if (config.master.length > 0 && config.shards.length > 0) {
    throw new ConfigError(
      `${labels.get("master")} and ${labels.get("shards")} cannot be used together: with --master the drummers decide which replicas this NodeHost runs (drop --shard, or drop --master for static shards)`,
    );
  }
  checkMasterSecurity(config, labels);
  if (config.onLeaderChangeShell && config.onLeaderChange === undefined) {
    throw new ConfigError(`${labels.get("onLeaderChangeShell")} needs --on-leader-change`);
  }
  if (config.raftAddress === config.apiAddress) {
    throw new ConfigError(
      `${labels.get("apiAddress")} must differ from --raft-address, both are ${config.raftAddress}`,
    );
  }
  for (const s of config.shards) {
    const own = s.members.find((m) => m.replicaId === s.replicaId);
    if (own !== undefined && own.address !== config.raftAddress) {
      throw new ConfigError(
        `${labels.get("shards")}: shard ${s.shardId} puts replica ${s.replicaId} at ${own.address}, but this NodeHost's raft address is ${config.raftAddress}`,
      );
    }
  }
  checkApiSecurity(config, labels);
  return config;
}

/** The --master-* flags need --master; the client certificate and key come as a pair. */
function checkMasterSecurity(config: NodeHostConfig, labels: Labels): void {
  const given = (["masterToken", "masterTlsCa", "masterTlsCert", "masterTlsKey"] as const).filter(
    (k) => config[k] !== undefined,
  );
  if (config.master.length === 0 && given.length > 0) {
    throw new ConfigError(
      `${labels.get(given[0]!)} needs --master: it is how this NodeHost calls the drummers it reports to`,
    );
  }
  if ((config.masterTlsCert === undefined) !== (config.masterTlsKey === undefined)) {
    const one = config.masterTlsCert === undefined ? labels.get("masterTlsKey") : labels.get("masterTlsCert");
    throw new ConfigError(`--master-tls-cert and --master-tls-key must be given together, got only ${one}`);
  }
}

// ---- drummer ------------------------------------------------------------------------------

/** Options of `longboat drummer`. */
export interface DrummerConfig extends ApiServerConfig {
  id: number;
  peers: DrummerPeer[];
  apiAddress: string;
  /** This drummer's address among the peers. */
  raftAddress: string;
  dataDir: string;
  deploymentId: number;
  rttMs: number;
  deadTimeoutMs: number;
  reportIntervalMs: number;
  maxRepairs: number;
  join: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  apiToken?: string;
  logLevel: (typeof LOG_LEVELS)[number];
}

/** Upper bound of --max-repairs. */
export const MAX_REPAIRS_MAX = 10_000;

export const DRUMMER_FIELDS: readonly Field[] = [
  {
    key: "id",
    flag: "id",
    kind: "int",
    valueName: "n",
    help: "this drummer's ID; must appear in --peers",
    schema: positiveInt,
    required: true,
  },
  {
    key: "peers",
    flag: "peers",
    kind: "peers",
    valueName: "id=host:port,…",
    help: "every drummer of a new group and its raft address: 1=d1:9101,2=d2:9101,3=d3:9101 (used at first start only; later the group's membership is in its log)",
    schema: peers,
    required: true,
  },
  {
    key: "apiAddress",
    flag: "api-address",
    kind: "text",
    valueName: "host:port",
    help: "address the drummer API listens on (NodeHosts' --master, cmd's --drummer)",
    schema: address,
    required: true,
  },
  {
    key: "raftAddress",
    flag: "raft-address",
    kind: "text",
    valueName: "host:port",
    help: "this drummer's raft address (default: its entry in --peers; if given it must match it)",
    schema: address,
  },
  {
    key: "dataDir",
    flag: "data-dir",
    kind: "text",
    valueName: "dir",
    help: "directory of the drummer's log database",
    schema: nonEmpty,
    default: "./longboat-drummer-data",
  },
  deploymentField,
  rttField,
  {
    key: "deadTimeout",
    flag: "dead-timeout",
    kind: "text",
    valueName: "duration",
    help: "a NodeHost silent this long is dead and its replicas are rebuilt elsewhere (e.g. 60s, 2m)",
    schema: duration,
    default: "60s",
  },
  {
    key: "reportInterval",
    flag: "report-interval",
    kind: "text",
    valueName: "duration",
    help: "how often NodeHosts report to the drummers (the drummers tell them); at most half the dead timeout",
    schema: duration,
    default: "5s",
  },
  {
    key: "maxRepairs",
    flag: "max-repairs",
    kind: "int",
    valueName: "n",
    help: "shards repaired at once, at most (losing a rack does not start a storm)",
    schema: positiveIntAtMost(MAX_REPAIRS_MAX, `must be at most ${MAX_REPAIRS_MAX}`),
    default: 4,
  },
  {
    key: "join",
    flag: "join",
    kind: "bool",
    help: "start as a drummer added to a running group (longboat cmd add-drummer first); --peers then only needs this drummer",
    schema: BOOL,
    default: false,
  },
  tlsField("tlsCa", "tls-ca", "CA certificate"),
  tlsField("tlsCert", "tls-cert", "this drummer's certificate"),
  tlsField("tlsKey", "tls-key", "this drummer's private key"),
  {
    ...apiTokenField,
    help: "bearer token the drummer API requires (NodeHosts give it as --master-token, cmd as --api-token)",
  },
  ...API_SERVER_FIELDS,
  logLevelField,
];

/** Merges and validates drummer options; throws ConfigError. */
export function resolveDrummerConfig(input: ConfigInput): DrummerConfig {
  const { values, labels } = mergeFields(DRUMMER_FIELDS, input);
  const config = values as unknown as Omit<
    DrummerConfig,
    "raftAddress" | "deadTimeoutMs" | "reportIntervalMs"
  > & {
    raftAddress?: string;
    deadTimeout: number;
    reportInterval: number;
  };
  checkTls(values, labels);
  const self = config.peers.find((p) => p.id === config.id);
  if (self === undefined) {
    const ids = config.peers.map((p) => p.id).join(", ");
    throw new ConfigError(`${labels.get("id")} is ${config.id}, which is not among --peers (${ids})`);
  }
  if (config.raftAddress !== undefined && config.raftAddress !== self.address) {
    throw new ConfigError(
      `${labels.get("raftAddress")} is ${config.raftAddress}, but --peers gives drummer ${config.id} the address ${self.address}`,
    );
  }
  if (self.address === config.apiAddress) {
    throw new ConfigError(
      `${labels.get("apiAddress")} must differ from the raft address, both are ${self.address}`,
    );
  }
  if (config.reportInterval * 2 > config.deadTimeout) {
    throw new ConfigError(
      `${labels.get("deadTimeout")} (${config.deadTimeout} ms) must be at least twice ${labels.get("reportInterval")} (${config.reportInterval} ms): a NodeHost that misses one report would be dead`,
    );
  }
  checkApiSecurity(config, labels);
  const { deadTimeout, reportInterval, ...rest } = config;
  return { ...rest, raftAddress: self.address, deadTimeoutMs: deadTimeout, reportIntervalMs: reportInterval };
}

// ---- cmd ----------------------------------------------------------------------------------

/** The operation of `longboat cmd <op>` with its positional arguments. */
export type CmdRequest =
  | { op: "status" }
  | { op: "health" }
  | { op: "put"; key: string; value?: string }
  | { op: "scan" }
  | { op: "get"; key: string }
  | { op: "delete"; key: string }
  | { op: "cas"; key: string; expected: string; value: string }
  | { op: "add"; key: string; delta: number }
  | { op: "members" }
  | { op: "add-replica"; replicaId: number; address: string }
  | { op: "remove-replica"; replicaId: number }
  | { op: "transfer-leader"; replicaId: number }
  | { op: "snapshot" }
  | { op: "compact" }
  | { op: "log" }
  | { op: "remove-data"; replicaId: number }
  | { op: "watch" }
  | { op: DrummerOp };

export type CmdOp = CmdRequest["op"];

/** Positional arguments of each op; `replicaId` and `address` are validated as such. */
export const CMD_OPS: Record<CmdOp, readonly string[]> = {
  status: [],
  health: [],
  put: ["key", "value"],
  scan: [],
  get: ["key"],
  delete: ["key"],
  cas: ["key", "expected", "value"],
  add: ["key", "delta"],
  members: [],
  "add-replica": ["replicaId", "address"],
  "remove-replica": ["replicaId"],
  "transfer-leader": ["replicaId"],
  snapshot: [],
  compact: [],
  log: [],
  "remove-data": ["replicaId"],
  watch: [],
  ...DRUMMER_OP_ARGS,
};

/** Options of `longboat cmd`. */
export interface CmdConfig extends ApiClientConfig, DrummerCmdOptions {
  request: CmdRequest;
  /** snapshot: also copy it into the NodeHost's --snapshot-export-dir. */
  export: boolean;
  nodehost: string[];
  drummer: string[];
  shard?: number;
  json: boolean;
  timeoutMs: number;
  apiToken?: string;
  /** log: first and last index to print (inclusive). */
  from?: number;
  to?: number;
  /** remove-data: API addresses of live members to read the shard's membership from. */
  membershipFrom: string[];
  /** snapshot and compact: entries kept behind the snapshot. */
  compactionOverhead?: number;
  /** snapshot: compact up to this index instead. */
  compactionIndex?: number;
  /** Writes without a client session: a write retried after a timeout may apply twice. */
  noSession: boolean;
  /** put: read the value from this file (instead of the <value> argument). */
  file?: string;
  /** scan: only keys that start with this. */
  prefix: string;
  /** scan: at most this many keys. */
  limit?: number;
}

export const CMD_FIELDS: readonly Field[] = [
  {
    key: "nodehost",
    flag: "nodehost",
    kind: "list",
    valueName: "host:port,…",
    help: "NodeHost API addresses to send the request to (tried in order); comma-separated",
    schema: addressList,
    default: [],
  },
  {
    key: "drummer",
    flag: "drummer",
    kind: "list",
    valueName: "host:port,…",
    help: "drummer API addresses for status and the drummer ops (any of them answers; the leader is followed); comma-separated",
    schema: addressList,
    default: [],
  },
  {
    key: "shard",
    flag: "shard",
    kind: "int",
    valueName: "id",
    help: "shard ID the op works on (needed by every op but status, health and watch, which it narrows)",
    schema: positiveInt,
  },
  {
    key: "json",
    flag: "json",
    kind: "bool",
    help: "print JSON instead of a table",
    schema: BOOL,
    default: false,
  },
  {
    key: "timeoutMs",
    flag: "timeout-ms",
    kind: "int",
    valueName: "ms",
    help: `how long to wait for an answer in milliseconds, retries included, at most ${TIMEOUT_MS_MAX}`,
    schema: positiveIntAtMost(TIMEOUT_MS_MAX, `must be at most ${TIMEOUT_MS_MAX} (one hour)`),
    default: 5000,
  },
  apiTokenField,
  ...API_CLIENT_FIELDS,
  {
    key: "export",
    flag: "export",
    kind: "bool",
    help: "snapshot: also copy it into the directory the NodeHost's operator set (--snapshot-export-dir)",
    schema: BOOL,
    default: false,
  },
  {
    key: "from",
    flag: "from",
    kind: "int",
    valueName: "index",
    help: "log: first index to print (default: the first entry stored)",
    schema: positiveInt,
  },
  {
    key: "to",
    flag: "to",
    kind: "int",
    valueName: "index",
    help: "log: last index to print (default: the last entry stored)",
    schema: positiveInt,
  },
  {
    key: "membershipFrom",
    flag: "membership-from",
    kind: "list",
    valueName: "host:port,…",
    help: "remove-data: API addresses of live members of the shard to read its membership from (needed when the removed replica's own log never saw its removal)",
    schema: addressList,
    default: [],
  },
  {
    key: "compactionOverhead",
    flag: "compaction-overhead",
    kind: "int",
    valueName: "entries",
    help: "snapshot and compact: entries to keep in the log behind the snapshot (default: the replica's setting)",
    schema: nonNegativeInt,
  },
  {
    key: "compactionIndex",
    flag: "compaction-index",
    kind: "int",
    valueName: "index",
    help: "snapshot: compact the log up to this index (at most the snapshot's) instead",
    schema: positiveInt,
  },
  {
    key: "file",
    flag: "file",
    kind: "text",
    valueName: "path",
    help: "put: the value is this file's bytes (instead of <value>; a <value> of - reads stdin)",
    schema: nonEmpty,
  },
  {
    key: "prefix",
    flag: "prefix",
    kind: "text",
    valueName: "text",
    help: "scan: only the keys that start with this (default: every key)",
    schema: anyText,
    default: "",
  },
  {
    key: "limit",
    flag: "limit",
    kind: "int",
    valueName: "n",
    help: "scan: at most this many keys (default: all)",
    schema: positiveInt,
  },
  {
    key: "noSession",
    flag: "no-session",
    kind: "bool",
    help: "write without a client session: one Raft round less, but a write retried after a timeout may apply twice, so a timed-out write is not retried",
    schema: BOOL,
    default: false,
  },
  ...drummerCmdFields({ positiveInt, positiveIntAtMost, address, duration, bool: BOOL }),
];

/** Merges and validates cmd options and `args` (the op and its positional arguments); throws ConfigError. */
export function resolveCmdConfig(input: ConfigInput & { args: readonly string[] }): CmdConfig {
  const request = parseRequest(input.args);
  const { values, labels } = mergeFields(CMD_FIELDS, input);
  const config = { ...values, request } as unknown as CmdConfig;
  checkApiClient(config, labels);
  if (request.op === "status") {
    if (config.nodehost.length === 0 && config.drummer.length === 0) {
      throw new ConfigError("cmd status needs --nodehost or --drummer");
    }
    if (config.drummer.length > 0) checkDrummerCmd("status", config, labels);
    return config;
  }
  if (isDrummerOp(request.op)) {
    checkDrummerCmd(request.op, config, labels);
    return config;
  }
  if (config.nodehost.length === 0) throw new ConfigError(`cmd ${request.op} needs --nodehost`);
  // --shard only narrows what these show
  if (request.op === "watch" || request.op === "health") return config;
  if (request.op === "put") {
    if (request.value === undefined && config.file === undefined) {
      throw new ConfigError(
        "cmd put takes <key> <value>, or <key> with --file <path> (a <value> of - reads stdin)",
      );
    }
    if (request.value !== undefined && config.file !== undefined) {
      throw new ConfigError(
        `cmd put: give the value as <value> or with --file, not both (got "${request.value}" and --file ${config.file})`,
      );
    }
  } else if (config.file !== undefined) {
    throw new ConfigError(`--file is for cmd put, not cmd ${request.op}`);
  }
  if (config.shard === undefined) throw new ConfigError(`cmd ${request.op} needs --shard`);
  if (config.from !== undefined && config.to !== undefined && config.to < config.from) {
    throw new ConfigError(`--to ${config.to} is below --from ${config.from}`);
  }
  if (config.compactionOverhead !== undefined && config.compactionIndex !== undefined) {
    throw new ConfigError("give --compaction-overhead or --compaction-index, not both");
  }
  return config;
}

/** How a positional argument of `cmd` is checked; numeric: text read as a number first. */
const CMD_ARGS: Record<string, { schema: ZodType; numeric?: RegExp }> = {
  replicaId: { schema: positiveInt, numeric: /^[0-9]+$/ },
  address: { schema: address },
  delta: { schema: safeInteger, numeric: /^-?[0-9]+$/ },
};

function parseRequest(args: readonly string[]): CmdRequest {
  const [op, ...rest] = args;
  const ops = Object.keys(CMD_OPS);
  if (op === undefined) throw new ConfigError(`cmd needs an op (one of ${ops.join(", ")})`);
  if (!ops.includes(op)) throw new ConfigError(`cmd op "${op}" is unknown (one of ${ops.join(", ")})`);
  // put's value may come from --file instead (resolveCmdConfig checks there is one).
  const names = op === "put" && rest.length === 1 ? ["key"] : CMD_OPS[op as CmdOp];
  if (rest.length !== names.length) {
    const usage = names.map((n) => `<${n}>`).join(" ");
    throw new ConfigError(
      `cmd ${op} takes ${names.length} argument(s) ${usage}, got ${rest.length}`.trimEnd(),
    );
  }
  const request: Record<string, unknown> = { op };
  names.forEach((name, i) => {
    const text = rest[i]!;
    const { schema, numeric } = CMD_ARGS[name] ?? { schema: anyText };
    const value = numeric?.test(text) ? Number(text) : text;
    const result = schema.safeParse(value);
    if (!result.success) {
      const issue = result.error.issues[0]!;
      const detail = (issue as { params?: { detail?: string } }).params?.detail;
      throw new ConfigError(
        `cmd ${op} <${name}> ${issue.message}, got ${JSON.stringify(value)}${detail ? ` (${detail})` : ""}`,
      );
    }
    request[name] = result.data;
  });
  return request as CmdRequest;
}

// ---- backup -------------------------------------------------------------------------------

/** Options of `longboat backup`. */
export interface BackupConfig extends ApiClientConfig {
  nodehost: string[];
  shard: number;
  out: string;
  withoutQuorum: boolean;
  json: boolean;
  timeoutMs: number;
  apiToken?: string;
}

const shardField = (help: string): Field => ({
  key: "shard",
  flag: "shard",
  kind: "int",
  valueName: "id",
  help,
  schema: positiveInt,
  required: true,
});
const jsonField: Field = {
  key: "json",
  flag: "json",
  kind: "bool",
  help: "print the result as JSON",
  schema: BOOL,
  default: false,
};

export const BACKUP_FIELDS: readonly Field[] = [
  {
    key: "nodehost",
    flag: "nodehost",
    kind: "list",
    valueName: "host:port,…",
    help: "API addresses of the shard's NodeHosts; the one whose replica leads takes the snapshot",
    schema: addressList,
    required: true,
  },
  shardField("shard to back up"),
  {
    key: "out",
    flag: "out",
    kind: "text",
    valueName: "file",
    help: "file to write the backup to on this machine; must not exist",
    schema: nonEmpty,
    required: true,
  },
  {
    key: "withoutQuorum",
    flag: "without-quorum",
    kind: "bool",
    help: "for a shard that lost quorum: take the snapshot on the first --nodehost holding the shard, without the leader; it holds what that replica applied, which may miss acknowledged writes",
    schema: BOOL,
    default: false,
  },
  jsonField,
  {
    key: "timeoutMs",
    flag: "timeout-ms",
    kind: "int",
    valueName: "ms",
    help: `how long to wait for a leader, for the snapshot, and for each chunk of it, in milliseconds, at most ${TIMEOUT_MS_MAX}`,
    schema: positiveIntAtMost(TIMEOUT_MS_MAX, `must be at most ${TIMEOUT_MS_MAX} (one hour)`),
    default: 60_000,
  },
  apiTokenField,
  ...API_CLIENT_FIELDS,
];

/** Merges and validates backup options; throws ConfigError. */
export function resolveBackupConfig(input: ConfigInput): BackupConfig {
  const { values, labels } = mergeFields(BACKUP_FIELDS, input);
  const config = values as unknown as BackupConfig;
  checkApiClient(config, labels);
  return config;
}

// ---- restore ------------------------------------------------------------------------------

/** Options of `longboat restore`. */
export interface RestoreConfig {
  dataDir: string;
  shard: number;
  replica: number;
  members: { replicaId: number; address: string }[];
  from: string;
  deploymentId: number;
  json: boolean;
}

const MEMBERS = "must be a list of replicaId@host:port, like 1@h1:7001,2@h2:7001,3@h3:7001";
const memberList = lazySchema(() =>
  z
    .array(z.string({ error: MEMBERS }), { error: MEMBERS })
    .min(1, { error: MEMBERS })
    .transform((items, ctx) => {
      const out: { replicaId: number; address: string }[] = [];
      for (const item of items) {
        const at = item.indexOf("@");
        const id = at > 0 && /^[0-9]+$/.test(item.slice(0, at)) ? Number(item.slice(0, at)) : Number.NaN;
        const addr = item.slice(at + 1);
        let problem =
          at < 0 ? "has no @" : !Number.isSafeInteger(id) || id < 1 ? "has no positive replica id" : "";
        if (problem === "") {
          try {
            parseAddress(addr);
          } catch (e) {
            if (!(e instanceof AddressError)) throw e;
            problem = `has a bad address (${e.reason})`;
          }
        }
        if (problem !== "") {
          ctx.addIssue({ code: "custom", message: `${MEMBERS}; ${JSON.stringify(item)} ${problem}` });
          return z.NEVER;
        }
        out.push({ replicaId: id, address: addr });
      }
      const dupId = firstDuplicate(out.map((m) => m.replicaId));
      const dupAddress = firstDuplicate(out.map((m) => m.address));
      if (dupId !== undefined) ctx.addIssue({ code: "custom", message: `lists replica ${dupId} twice` });
      else if (dupAddress !== undefined)
        ctx.addIssue({ code: "custom", message: `lists address ${dupAddress} twice` });
      return out;
    }),
);

export const RESTORE_FIELDS: readonly Field[] = [
  {
    key: "dataDir",
    flag: "data-dir",
    kind: "text",
    valueName: "dir",
    help: "data directory of the NodeHost that will run the replica (created when absent); no NodeHost may be running on it",
    schema: nonEmpty,
    required: true,
  },
  shardField("shard to restore; the backup must be of this shard"),
  {
    key: "replica",
    flag: "replica",
    kind: "int",
    valueName: "id",
    help: "replica id this data directory's NodeHost runs; one of --members",
    schema: positiveInt,
    required: true,
  },
  {
    key: "members",
    flag: "members",
    kind: "list",
    valueName: "id@host:port,…",
    help: "the shard's new members with their raft addresses, the same on every member restored",
    schema: memberList,
    required: true,
  },
  {
    key: "from",
    flag: "from",
    kind: "text",
    valueName: "file",
    help: "the backup (longboat backup) or exported snapshot file to restore",
    schema: nonEmpty,
    required: true,
  },
  {
    key: "deploymentId",
    flag: "deployment-id",
    kind: "int",
    valueName: "id",
    help: "deployment ID of the NodeHosts that will run the shard; the backup must be of the same deployment",
    schema: positiveInt,
    default: 1,
  },
  jsonField,
];

/** Merges and validates restore options; throws ConfigError. */
export function resolveRestoreConfig(input: ConfigInput): RestoreConfig {
  const { values, labels } = mergeFields(RESTORE_FIELDS, input);
  const config = values as unknown as RestoreConfig;
  if (!config.members.some((m) => m.replicaId === config.replica)) {
    const ids = config.members.map((m) => m.replicaId).join(", ");
    throw new ConfigError(
      `${labels.get("replica")} is ${config.replica}, which is not among --members (${ids}); restore each member's own data directory with its own --replica`,
    );
  }
  return config;
}

// ---- dev ----------------------------------------------------------------------------------

/** Options of `longboat dev`. */
export interface DevConfig {
  dataDir: string;
  basePort: number;
  shards: number;
  /** A child that dies is left dead (to watch the drummers repair its replicas). */
  noRestart: boolean;
  /** The drummers' dead timeout (ms): a NodeHost silent this long has its replicas rebuilt. */
  deadTimeoutMs: number;
  /** Show every log line of the processes (not only warnings and errors). */
  verbose: boolean;
}

export const DEV_FIELDS: readonly Field[] = [
  {
    key: "dataDir",
    flag: "data-dir",
    kind: "text",
    valueName: "dir",
    help: "directory holding every process's data, log file and pid file",
    schema: nonEmpty,
    default: "./.longboat-dev",
  },
  {
    key: "basePort",
    flag: "base-port",
    kind: "int",
    valueName: "port",
    help: `NodeHost raft ports base+1..${DEV_NODEHOSTS}, API ports base+11..${10 + DEV_NODEHOSTS}; drummer raft ports base+21..${20 + DEV_DRUMMERS}, API ports base+31..${30 + DEV_DRUMMERS}`,
    schema: positiveIntAtMost(
      DEV_BASE_PORT_MAX,
      `must be at most ${DEV_BASE_PORT_MAX} (the highest port used is base+${DEV_PORT_SPAN})`,
    ),
    default: 7100,
  },
  {
    key: "shards",
    flag: "shards",
    kind: "int",
    valueName: "count",
    help: `number of kv shards of 3 replicas the drummers create, at most ${DEV_SHARDS_MAX}`,
    schema: positiveIntAtMost(DEV_SHARDS_MAX, `must be at most ${DEV_SHARDS_MAX}`),
    default: 3,
  },
  {
    key: "noRestart",
    flag: "no-restart",
    kind: "bool",
    help: "leave a process that dies dead instead of restarting it (kill a NodeHost to watch the drummers rebuild its replicas elsewhere)",
    schema: BOOL,
    default: false,
  },
  {
    key: "deadTimeout",
    flag: "dead-timeout",
    kind: "text",
    valueName: "duration",
    help: "the drummers' dead timeout: a NodeHost silent this long has its replicas rebuilt on the others (e.g. 10s, 1m)",
    schema: duration,
    default: "10s",
  },
  {
    key: "verbose",
    flag: "verbose",
    kind: "bool",
    help: "show every log line of the processes, each after its name (by default only warnings and errors; all are in <data-dir>/<name>.log)",
    schema: BOOL,
    default: false,
  },
];

/** Merges and validates dev options; throws ConfigError. */
export function resolveDevConfig(input: ConfigInput): DevConfig {
  const { values, labels } = mergeFields(DEV_FIELDS, input);
  const { deadTimeout, ...rest } = values as unknown as Omit<DevConfig, "deadTimeoutMs"> & {
    deadTimeout: number;
  };
  if (deadTimeout < DEV_DEAD_TIMEOUT_MS_MIN) {
    throw new ConfigError(
      `${labels.get("deadTimeout")} must be at least ${DEV_DEAD_TIMEOUT_MS_MIN / 1000}s (NodeHosts report every tenth of it, and a busy machine delays reports), got ${deadTimeout} ms`,
    );
  }
  return { ...rest, deadTimeoutMs: deadTimeout };
}
