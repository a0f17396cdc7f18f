/**
 * The RPC server's request handling, independent of how requests arrive: the limits, the
 * token, the choice of protocol by content type (Connect, gRPC, gRPC-Web), the services and
 * gRPC server reflection; every other path goes to `routes` (a fetch handler, e.g. Hono).
 *
 * ```ts
 * const handler = new RpcHandler({ services: [nodehostService], routes: app.fetch, auth: { token } });
 * const server = await listen({ hostname: "0.0.0.0", port: 8001, handler });   // listen.ts
 * const res = await handler.request("/healthz");                               // in-process
 * ```
 */
import { type Env, realEnv } from "../../env.ts";
import { ConnectError, connectErrorBody } from "../errors.ts";
import { type AuthFailure, Authenticator, type AuthOptions } from "./auth.ts";
import type { Call, CallOutcome } from "./call.ts";
import { type ConnectMode, connectModeOf, serveConnect } from "./connect.ts";
import { type Exchange, fetchExchange } from "./exchange.ts";
import { type GrpcMode, grpcModeOf, serveGrpc } from "./grpc.ts";
import { ByteBudget, GuardedBody, type Limits, resolveLimits } from "./limits.ts";
import {
  builtInDescriptors,
  type DescriptorIndex,
  REFLECTION_V1,
  REFLECTION_V1ALPHA,
  reflectionService,
} from "./reflection.ts";
import type { Method, ServiceDef } from "./service.ts";

/** Why the server refused a request before any handler ran. */
export type Refusal = "concurrency" | "buffered_bytes" | "body_timeout" | "tls_handshake" | "headers";

/** Hooks for metrics; every one optional. */
export interface RpcObserver {
  /** A call ended: its method ("unknown" for a path that names none), outcome ("ok" or a Connect code), latency. */
  call?(labels: { service: string; method: string; code: CallOutcome }, latencyMs: number): void;
  authFailure?(reason: AuthFailure): void;
  refused?(reason: Refusal): void;
}

export interface RpcHandlerOptions {
  services: readonly ServiceDef[];
  /** Everything that is not an RPC path (health, metrics, a dashboard). Default: 404. */
  routes?: (request: Request) => Response | Promise<Response>;
  auth?: AuthOptions;
  limits?: Partial<Limits>;
  /** Serve gRPC server reflection for these services. Default true, from this build's proto/. */
  reflection?: boolean | DescriptorIndex;
  /** Clock and timers; `random` draws the correlation ids of internal errors (a counter without it). */
  env?: Pick<Env, "nowMs" | "setTimer"> & Partial<Pick<Env, "random">>;
  log?: (event: Record<string, unknown>) => void;
  observer?: RpcObserver;
}

interface Route {
  service: ServiceDef;
  name: string;
  method: Method;
}

type Mode = { kind: "connect"; mode: ConnectMode } | { kind: "grpc"; mode: GrpcMode };

const utf8 = new TextEncoder();

export class RpcHandler {
  readonly limits: Limits;
  private readonly routes = new Map<string, Route>();
  private readonly serviceNames: string[];
  private readonly budget: ByteBudget;
  private readonly auth: Authenticator;
  private readonly env: Pick<Env, "nowMs" | "setTimer"> & Partial<Pick<Env, "random">>;
  private readonly log: (event: Record<string, unknown>) => void;
  private active = 0;
  private internalErrors = 0;

  constructor(private readonly opts: RpcHandlerOptions) {
    this.limits = resolveLimits(opts.limits);
    this.budget = new ByteBudget(this.limits.maxBufferedBodyBytes, () => this.refused("buffered_bytes"));
    this.env = opts.env ?? realEnv();
    this.log = opts.log ?? (() => {});
    this.auth = new Authenticator(opts.auth ?? {}, {
      env: this.env,
      log: this.log,
      onFailure: (reason) => opts.observer?.authFailure?.(reason),
    });
    const services = [...opts.services];
    if (opts.reflection !== false) {
      const index =
        opts.reflection === true || opts.reflection === undefined ? builtInDescriptors() : opts.reflection;
      const listed = () => this.serviceNames.filter((n) => n !== REFLECTION_V1ALPHA);
      services.push(reflectionService(REFLECTION_V1, index, listed));
      services.push(reflectionService(REFLECTION_V1ALPHA, index, listed));
    }
    for (const service of services) {
      for (const [name, method] of Object.entries(service.methods)) {
        const path = `/${service.name}/${name}`;
        if (this.routes.has(path)) throw new Error(`${service.name}/${name} is registered twice`);
        this.routes.set(path, { service, name, method });
      }
    }
    this.serviceNames = [...new Set(services.map((s) => s.name))];
  }

  /** Calls in progress. */
  get inFlight(): number {
    return this.active;
  }

  /** Request body bytes held now. */
  get bufferedBytes(): number {
    return this.budget.used;
  }

  /** Records a refusal made by the listener (TLS handshake, header limits). */
  refused(reason: Refusal): void {
    this.opts.observer?.refused?.(reason);
  }

  /** A correlation id for one internal error: 8 hex digits, drawn from env.random when it has one. */
  private errorId(): string {
    this.internalErrors += 1;
    const n = this.env.random ? Math.floor(this.env.random() * 2 ** 32) : this.internalErrors;
    return n.toString(16).padStart(8, "0");
  }

  /** Answers one exchange; never throws. */
  async handle(ex: Exchange): Promise<void> {
    const startMs = this.env.nowMs();
    const route = this.routes.get(ex.path);
    const labels = { service: route?.service.name ?? "", method: route?.name ?? "unknown", code: "ok" };
    const mode = modeOf(ex.headers.get("content-type"));
    // A path of a service served here is an RPC even when its method is unknown (the client
    // hears "unimplemented" in its protocol); any other path goes to the routes.
    const isRpc =
      route !== undefined || (mode !== undefined && this.serviceNames.includes(serviceOf(ex.path)));
    if (!isRpc) return this.serveRoute(ex);
    let refusal: ConnectError | undefined;
    if (this.active >= this.limits.maxConcurrentRequests) {
      this.refused("concurrency");
      refusal = new ConnectError(
        "resource_exhausted",
        `the server is already handling ${this.active} calls, its limit; retry later`,
      );
    }
    this.active += 1;
    const body = new GuardedBody(ex.body, this.budget, {
      env: this.env,
      ...(route?.method.kind === "bidi_streaming" ? {} : { deadlineMs: this.limits.bodyTimeoutMs }),
    });
    try {
      labels.code = await this.dispatch(ex, route, mode, body, refusal);
    } catch (error) {
      // A transport failure while answering (the client went away): nothing more to send.
      labels.code = ex.signal.aborted ? "canceled" : "internal";
      if (!ex.signal.aborted)
        this.log({ level: "error", event: "api.write_failed", path: ex.path, error: String(error) });
    } finally {
      this.active -= 1;
      if (body.timedOut) this.refused("body_timeout");
      body.close();
      if (!body.complete) ex.closeUnread();
      this.opts.observer?.call?.(labels, this.env.nowMs() - startMs);
    }
  }

  /** Answers a fetch Request in process (Connect and gRPC-Web; gRPC needs HTTP/2 trailers). */
  fetch(request: Request): Promise<Response> {
    const { exchange, response } = fetchExchange(request);
    void this.handle(exchange);
    return response;
  }

  /** `fetch` with a path: `handler.request("/healthz")`, like Hono's app.request. */
  request(path: string, init?: RequestInit): Promise<Response> {
    return this.fetch(new Request(new URL(path, "http://localhost").toString(), init));
  }

  private async dispatch(
    ex: Exchange,
    route: Route | undefined,
    mode: Mode | undefined,
    body: GuardedBody,
    refusal: ConnectError | undefined,
  ): Promise<CallOutcome> {
    const fallback: Route = route ?? { service: { name: "", methods: {} }, name: "", method: UNKNOWN };
    const call: Call = {
      ex,
      service: fallback.service,
      methodName: fallback.name,
      method: fallback.method,
      body,
      limits: this.limits,
      unexpected: (error) => {
        const errorId = this.errorId();
        this.log({
          level: "error",
          event: "api.internal_error",
          errorId,
          service: fallback.service.name,
          method: fallback.name || ex.path,
          error: String(error),
          stack: (error as Error)?.stack,
        });
        return errorId;
      },
    };
    const problem =
      refusal ??
      (ex.method !== "POST"
        ? new ConnectError("unimplemented", `${ex.method} is not supported on ${ex.path}; use POST`, 405)
        : undefined) ??
      (route === undefined ? unknownMethod(ex.path) : undefined) ??
      (mode === undefined ? unsupportedContentType(ex.headers.get("content-type")) : undefined) ??
      (mode?.kind === "connect" ? streamingMismatch(fallback, mode.mode) : undefined) ??
      this.auth.check(ex.path, ex.headers.get("authorization"), ex.peer);
    if (
      problem !== undefined &&
      (mode === undefined || problem.httpStatus === 405 || problem.httpStatus === 415)
    ) {
      return await unaryError(ex, problem, problem.httpStatus === 405 ? { allow: "POST" } : {});
    }
    const answered: Call = problem === undefined ? call : { ...call, refusal: problem };
    if (mode!.kind === "grpc") return serveGrpc(answered, mode!.mode);
    return serveConnect(answered, mode!.mode);
  }

  private async serveRoute(ex: Exchange): Promise<void> {
    const body = new GuardedBody(ex.body, this.budget, {
      env: this.env,
      deadlineMs: this.limits.bodyTimeoutMs,
    });
    try {
      const problem = this.auth.check(ex.path, ex.headers.get("authorization"), ex.peer);
      if (problem) {
        await unaryError(ex, problem);
        return;
      }
      const routes = this.opts.routes;
      if (!routes) {
        await unaryError(ex, new ConnectError("unimplemented", `no such path ${ex.method} ${ex.path}`, 404));
        return;
      }
      const request = await this.toRequest(ex, body);
      const response = await routes(request);
      const headers: Record<string, string> = {};
      response.headers.forEach((v, k) => {
        headers[k] = v;
      });
      ex.respond(response.status, headers, response.body ? {} : { endStream: true });
      if (response.body) for await (const chunk of response.body) await ex.write(chunk);
      ex.end();
    } catch (error) {
      let e: ConnectError;
      if (error instanceof ConnectError) e = error;
      else {
        const errorId = this.errorId();
        this.log({
          level: "error",
          event: "api.route_failed",
          errorId,
          path: ex.path,
          error: String(error),
          stack: (error as Error)?.stack,
        });
        e = new ConnectError("internal", `internal error ${errorId}: the server's log has its details`);
      }
      try {
        await unaryError(ex, e);
      } catch {
        // the response had started: the connection is cut below
      }
    } finally {
      body.close();
      if (!body.complete) ex.closeUnread();
    }
  }

  private async toRequest(ex: Exchange, body: GuardedBody): Promise<Request> {
    const headers = new Headers();
    for (const name of ["accept", "content-type", "authorization", "user-agent"]) {
      const v = ex.headers.get(name);
      if (v !== null) headers.set(name, v);
    }
    const url = `http://${ex.headers.get("host") ?? "localhost"}${ex.path}${ex.search}`;
    if (ex.method === "GET" || ex.method === "HEAD") {
      for await (const _ of body) {
        // a GET body is read and dropped
      }
      return new Request(url, { method: ex.method, headers });
    }
    const chunks: Uint8Array[] = [];
    let sizeBytes = 0;
    for await (const chunk of body) {
      sizeBytes += chunk.byteLength;
      if (sizeBytes > this.limits.maxBodyBytes) {
        throw new ConnectError(
          "resource_exhausted",
          `a body of more than ${this.limits.maxBodyBytes} bytes exceeds the limit`,
        );
      }
      chunks.push(chunk);
    }
    return new Request(url, { method: ex.method, headers, body: Buffer.concat(chunks) });
  }
}

function modeOf(contentType: string | null): Mode | undefined {
  const media = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  const grpc = grpcModeOf(media);
  if (grpc) return { kind: "grpc", mode: grpc };
  const connect = connectModeOf(media);
  return connect ? { kind: "connect", mode: connect } : undefined;
}

function serviceOf(path: string): string {
  return path.slice(1, Math.max(1, path.lastIndexOf("/")));
}

function unknownMethod(path: string): ConnectError {
  const slash = path.lastIndexOf("/");
  const service = path.slice(1, slash);
  return new ConnectError("unimplemented", `${path.slice(1)} is not a method of ${service}`, 404);
}

function unsupportedContentType(contentType: string | null): ConnectError {
  return new ConnectError(
    "invalid_argument",
    `content-type "${contentType ?? ""}" is not supported; use application/json or application/proto (Connect), application/grpc (gRPC) or application/grpc-web (gRPC-Web)`,
    415,
  );
}

function streamingMismatch(route: Route, mode: ConnectMode): ConnectError | undefined {
  const streaming = route.method.kind !== "unary";
  if (streaming === mode.streaming || route.name === "") return undefined;
  const want = streaming
    ? "application/connect+proto or application/connect+json"
    : "application/proto or application/json";
  return new ConnectError(
    "invalid_argument",
    `${route.service.name}/${route.name} is a ${streaming ? "streaming" : "unary"} method; send ${want}`,
    415,
  );
}

/** A Connect unary error: the code's HTTP status and a JSON body. */
async function unaryError(
  ex: Exchange,
  error: ConnectError,
  headers: Record<string, string> = {},
): Promise<CallOutcome> {
  ex.respond(error.httpStatus, { "content-type": "application/json", ...headers });
  await ex.write(utf8.encode(connectErrorBody(error)));
  ex.end();
  return error.code;
}

/** A stand-in for a path that names no method (its protocol still answers). */
const UNKNOWN: Method = {
  kind: "unary",
  input: {
    decode: () => ({}),
    encode: () => ({ finish: () => new Uint8Array(0) }),
    fromObject: (o) => o,
    toObject: (m) => m as Record<string, unknown>,
    getTypeUrl: () => "/unknown",
  },
  output: {
    decode: () => ({}),
    encode: () => ({ finish: () => new Uint8Array(0) }),
    fromObject: (o) => o,
    toObject: (m) => m as Record<string, unknown>,
    getTypeUrl: () => "/unknown",
  },
  handle: () => ({}),
};
