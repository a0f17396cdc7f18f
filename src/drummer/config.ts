/** What one drummer is configured with (the library form of `longboat drummer`'s options). */
export interface DrummerSettings {
  drummerId: number;
  /** This drummer's API address (NodeHosts and other drummers reach it there). */
  apiAddress: string;
  /** Every NodeHost and drummer of the deployment shares it; reports of another are refused. */
  deploymentId: number;
  /** A NodeHost silent this long is dead. Default 60 s. */
  deadTimeoutMs: number;
  /** How often NodeHosts report (told to them in every reply). Default 5 s. */
  reportIntervalMs: number;
  /** Shards repaired at once, at most. Default 4. */
  maxRepairs: number;
  /** A decision with no visible effect after this long fails and is replanned. Default: the dead timeout. */
  decisionTimeoutMs: number;
  /** How often the leader runs the scheduler. Default 1 s (at most the report interval). */
  passIntervalMs: number;
  /** Timeout of one DrummerDB proposal or read, and of a call forwarded to the leader. Default 5 s. */
  requestTimeoutMs: number;
  /** Shards placed per scheduler pass, at most (a big launch spreads over passes). Default 256. */
  launchesPerPassMax: number;
}

export const DRUMMER_DEFAULTS = {
  deadTimeoutMs: 60_000,
  reportIntervalMs: 5_000,
  maxRepairs: 4,
  requestTimeoutMs: 5_000,
  launchesPerPassMax: 256,
} as const;

/** The DrummerDB shard's id on the drummers' own NodeHosts (managed shards live on other NodeHosts). */
export const DRUMMER_SHARD_ID = 1;

export type DrummerSettingsInput = Pick<DrummerSettings, "drummerId" | "apiAddress" | "deploymentId"> &
  Partial<DrummerSettings>;

/** Fills defaults and checks every rule; throws an Error naming the setting. */
export function resolveSettings(input: DrummerSettingsInput): DrummerSettings {
  const deadTimeoutMs = input.deadTimeoutMs ?? DRUMMER_DEFAULTS.deadTimeoutMs;
  const reportIntervalMs = input.reportIntervalMs ?? DRUMMER_DEFAULTS.reportIntervalMs;
  const s: DrummerSettings = {
    drummerId: input.drummerId,
    apiAddress: input.apiAddress,
    deploymentId: input.deploymentId,
    deadTimeoutMs,
    reportIntervalMs,
    maxRepairs: input.maxRepairs ?? DRUMMER_DEFAULTS.maxRepairs,
    decisionTimeoutMs: input.decisionTimeoutMs ?? deadTimeoutMs,
    passIntervalMs: input.passIntervalMs ?? Math.min(1000, reportIntervalMs),
    requestTimeoutMs: input.requestTimeoutMs ?? DRUMMER_DEFAULTS.requestTimeoutMs,
    launchesPerPassMax: input.launchesPerPassMax ?? DRUMMER_DEFAULTS.launchesPerPassMax,
  };
  for (const [k, v] of Object.entries(s)) {
    if (k === "apiAddress") continue;
    if (!Number.isSafeInteger(v) || (v as number) < 1)
      throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  if (s.reportIntervalMs * 2 > s.deadTimeoutMs) {
    throw new Error(
      `deadTimeoutMs (${s.deadTimeoutMs}) must be at least twice reportIntervalMs (${s.reportIntervalMs}), or a host that misses one report is dead`,
    );
  }
  return s;
}
