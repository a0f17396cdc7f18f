import { ERROR_CODES, type ErrorCode, LongboatError } from "../engine/errors.ts";

/** The Connect protocol's error codes (https://connectrpc.com/docs/protocol#error-codes). */
export const CONNECT_HTTP_STATUS = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
} as const;

export type ConnectCode = keyof typeof CONNECT_HTTP_STATUS;

export function isConnectCode(value: unknown): value is ConnectCode {
  return typeof value === "string" && Object.hasOwn(CONNECT_HTTP_STATUS, value);
}

/**
 * An error the API answers with: a Connect code, a message for the caller, and optionally an
 * HTTP status other than the code's usual one (404 for an unknown method, 405, 415).
 */
export class ConnectError extends Error {
  override readonly name = "ConnectError";
  constructor(
    readonly code: ConnectCode,
    message: string,
    readonly httpStatus: number = CONNECT_HTTP_STATUS[code],
  ) {
    super(message);
  }
}

/**
 * What a caller may do after an error, by Connect code (nodehost.proto states the contract):
 * - `unavailable`: NOT applied (no leader yet, shard not ready, busy, host closing, the leader's
 *   host could not be reached): retry, later or on another NodeHost.
 * - `deadline_exceeded`, `unknown`: the outcome is unknown (timed out, or the replica stopped
 *   after proposing): the write may have been applied. Retry a write only with a client
 *   session (exactly once then); reads may always be retried.
 * - every other code: the request was not applied and retrying it unchanged will not help.
 */
export const NOT_APPLIED_CODES: ReadonlySet<string> = new Set(["unavailable"]);
export const OUTCOME_UNKNOWN_CODES: ReadonlySet<string> = new Set(["deadline_exceeded", "unknown"]);

/** Socket errors (Bun's fetch `code`) raised before a request could leave: it was not delivered. */
const NOT_SENT_ERRORS: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ConnectionRefused",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "FailedToOpenSocket",
]);

/**
 * True when a failed fetch certainly never delivered its request (no connection was made). A
 * reset or a close after connecting may come after the server got the request.
 */
export function neverSent(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && NOT_SENT_ERRORS.has(code);
}

/**
 * The engine's error codes as Connect codes. payloadTooBig is invalid_argument: the engine's
 * limit is a property of the request (retrying the same payload never helps), while the API's
 * own body limit answers resource_exhausted. timeout and shardClosed leave the outcome
 * unknown; every other temporary code means not applied (unavailable).
 */
const LONGBOAT_TO_CONNECT: Record<ErrorCode, ConnectCode> = {
  shardNotFound: "not_found",
  invalidSession: "invalid_argument",
  payloadTooBig: "invalid_argument",
  timeoutTooSmall: "invalid_argument",
  invalidDeadline: "invalid_argument",
  invalidAddress: "invalid_argument",
  invalidTarget: "invalid_argument",
  invalidOperation: "invalid_argument",
  invalidCommand: "invalid_argument",
  invalidOption: "invalid_argument",
  systemBusy: "unavailable",
  shardNotReady: "unavailable",
  closed: "unavailable",
  shardClosed: "unknown",
  timeout: "deadline_exceeded",
  rejected: "failed_precondition",
  shardNotStopped: "failed_precondition",
  outOfRange: "out_of_range",
  aborted: "aborted",
  replicaRemoved: "internal",
  shardAlreadyExist: "internal",
  invalidShardSettings: "internal",
  shardNotBootstrapped: "internal",
  dirNotExist: "internal",
};

/** The engine error code of error, when it is a LongboatError (also one from another copy of the module). */
export function longboatCode(error: unknown): ErrorCode | undefined {
  if (error instanceof LongboatError) return error.code;
  if (error instanceof Error && error.name === "LongboatError") {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && Object.hasOwn(ERROR_CODES, code)) return code as ErrorCode;
  }
  return undefined;
}

/**
 * Maps anything thrown by a handler to the ConnectError the caller sees. Unexpected errors
 * become internal with a generic message (never a stack); `logUnexpected` logs them and may
 * return a correlation id, which the caller's message then carries so the log line can be found.
 */
export function toConnectError(
  error: unknown,
  logUnexpected: (error: unknown) => string | undefined,
): ConnectError {
  if (error instanceof ConnectError) return error;
  const code = longboatCode(error);
  if (code !== undefined) {
    const connectCode = LONGBOAT_TO_CONNECT[code];
    const message = (error as Error).message;
    if (connectCode !== "internal") return new ConnectError(connectCode, message);
    const id = logUnexpected(error);
    return new ConnectError(connectCode, id ? `${message} (error id ${id} in the server's log)` : message);
  }
  const id = logUnexpected(error);
  return new ConnectError(
    "internal",
    id
      ? `internal error ${id}: the server's log has its details (level error, errorId ${id})`
      : "internal error (see the server's log)",
  );
}

/** The JSON body of a Connect error response. */
export function connectErrorBody(error: ConnectError): string {
  return JSON.stringify({ code: error.code, message: error.message });
}
