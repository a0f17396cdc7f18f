/**
 * Bearer tokens: which paths need which token, a constant-time comparison, and a record of
 * every refusal (a metric, and a log line with the peer's address at most once per
 * LOG_INTERVAL_MS, counting the ones it left out).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Env } from "../../env.ts";
import { ConnectError } from "../errors.ts";

export interface AuthOptions {
  /** The token every path needs except openPaths (and pathTokens' paths, which take either). */
  token?: string;
  /** Paths served to anyone. Default ["/healthz", "/readyz"]. */
  openPaths?: readonly string[];
  /** Paths with a token of their own, e.g. { "/metrics": metricsToken }; the main token works there too. */
  pathTokens?: Readonly<Record<string, string>>;
}

export type AuthFailure = "missing" | "malformed" | "wrong";

/** At most one log line about refused tokens per this many milliseconds. */
export const LOG_INTERVAL_MS = 10_000;

const digest = (s: string) => createHash("sha256").update(s).digest();

export class Authenticator {
  private readonly token: Buffer | undefined;
  private readonly openPaths: ReadonlySet<string>;
  private readonly pathTokens: ReadonlyMap<string, Buffer>;
  private lastLogMs = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    opts: AuthOptions,
    private readonly deps: {
      env: Pick<Env, "nowMs">;
      log: (event: Record<string, unknown>) => void;
      onFailure: (reason: AuthFailure) => void;
    },
  ) {
    if (opts.token === "") throw new Error("the API token must not be empty when given");
    this.token = opts.token === undefined ? undefined : digest(opts.token);
    this.openPaths = new Set(opts.openPaths ?? ["/healthz", "/readyz"]);
    const tokens = new Map<string, Buffer>();
    for (const [path, token] of Object.entries(opts.pathTokens ?? {})) {
      if (token === "") throw new Error(`the token of ${path} must not be empty when given`);
      tokens.set(path, digest(token));
    }
    this.pathTokens = tokens;
  }

  /** Whether any path needs a token. */
  get enabled(): boolean {
    return this.token !== undefined || this.pathTokens.size > 0;
  }

  /** Undefined when the request may go on; otherwise the unauthenticated error to answer. */
  check(path: string, authorization: string | null, peer: string): ConnectError | undefined {
    if (this.openPaths.has(path)) return undefined;
    const accepted = [this.pathTokens.get(path), this.token].filter((t): t is Buffer => t !== undefined);
    if (accepted.length === 0) return undefined;
    const failure = this.problem(authorization, accepted);
    if (failure === undefined) return undefined;
    this.record(failure, path, peer);
    const message = {
      missing: "missing bearer token: send the header Authorization: Bearer <api token>",
      malformed: "Authorization header must be Bearer <api token>",
      wrong: "wrong bearer token",
    }[failure];
    return new ConnectError("unauthenticated", message);
  }

  private problem(header: string | null, accepted: Buffer[]): AuthFailure | undefined {
    if (!header) return "missing";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) return "malformed";
    // Equal-length digests compared in constant time: the time taken says nothing about the token.
    const given = digest(match[1]!.trim());
    let ok = false;
    for (const t of accepted) ok = timingSafeEqual(given, t) || ok;
    return ok ? undefined : "wrong";
  }

  private record(failure: AuthFailure, path: string, peer: string): void {
    this.deps.onFailure(failure);
    const nowMs = this.deps.env.nowMs();
    if (nowMs - this.lastLogMs < LOG_INTERVAL_MS) {
      this.suppressed += 1;
      return;
    }
    this.deps.log({
      level: "warn",
      event: "api.auth_failed",
      reason: failure,
      peer: peer || "unknown",
      path,
      suppressedSinceLast: this.suppressed,
    });
    this.lastLogMs = nowMs;
    this.suppressed = 0;
  }
}
