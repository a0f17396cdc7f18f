/**
 * Every error the NodeHost API returns is a LongboatError with a code from this table
 * (Dragonboat's error values, engine.md §6.1). `temporary` says whether retrying later,
 * possibly on another NodeHost, may succeed. `outcomeUnknown` says whether the request may
 * have taken effect although it failed: every other error means it was NOT applied, so a
 * temporary one is safe to retry as it is; a write whose outcome is unknown is retried only
 * with a client session, which applies it at most once.
 */
export const ERROR_CODES = {
  closed: { temporary: true, text: "the NodeHost is closed" },
  replicaRemoved: { temporary: false, text: "the replica was removed from its shard" },
  shardNotFound: { temporary: false, text: "shard not found on this NodeHost" },
  shardAlreadyExist: { temporary: false, text: "the shard already has a replica on this NodeHost" },
  invalidShardSettings: { temporary: false, text: "invalid shard settings" },
  shardNotBootstrapped: { temporary: false, text: "shard not bootstrapped" },
  invalidDeadline: { temporary: false, text: "invalid deadline" },
  dirNotExist: { temporary: false, text: "directory does not exist" },
  invalidOption: { temporary: false, text: "invalid option" },
  invalidOperation: { temporary: false, text: "invalid operation" },
  invalidCommand: { temporary: false, text: "command refused by the state machine before proposing" },
  invalidAddress: { temporary: false, text: "invalid address" },
  invalidSession: { temporary: false, text: "invalid session" },
  timeoutTooSmall: { temporary: false, text: "timeout is shorter than one RTT tick" },
  payloadTooBig: { temporary: false, text: "payload too big" },
  systemBusy: { temporary: true, text: "system busy" },
  shardClosed: {
    temporary: true,
    outcomeUnknown: true,
    text: "the replica stopped while the request was in flight (it may or may not have been applied)",
  },
  shardNotReady: {
    temporary: true,
    text: "shard not ready, the request was not applied (no leader yet, or it was dropped before it reached the log)",
  },
  timeout: {
    temporary: true,
    outcomeUnknown: true,
    text: "timed out (the request may or may not have been applied)",
  },
  rejected: { temporary: false, text: "rejected" },
  aborted: { temporary: true, text: "aborted" },
  invalidTarget: { temporary: false, text: "invalid target" },
  shardNotStopped: { temporary: false, text: "the replica still runs on this NodeHost" },
  outOfRange: { temporary: false, text: "out of range" },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class LongboatError extends Error {
  override readonly name = "LongboatError";
  readonly temporary: boolean;
  /** True when the request may have been applied although it failed (see ERROR_CODES). */
  readonly outcomeUnknown: boolean;
  constructor(
    readonly code: ErrorCode,
    detail?: string,
  ) {
    super(detail ? `${ERROR_CODES[code].text}: ${detail}` : ERROR_CODES[code].text);
    const entry: { temporary: boolean; outcomeUnknown?: boolean } = ERROR_CODES[code];
    this.temporary = entry.temporary;
    this.outcomeUnknown = entry.outcomeUnknown === true;
  }
}

export function isTemporary(error: unknown): boolean {
  return error instanceof LongboatError && error.temporary;
}

/**
 * True when retrying the request as it is cannot apply it twice: it failed temporarily and
 * was not applied (no leader, busy, closed…). A timed-out or interrupted write is not: retry
 * it only with a client session.
 */
export function isSafeToRetry(error: unknown): boolean {
  return error instanceof LongboatError && error.temporary && !error.outcomeUnknown;
}
