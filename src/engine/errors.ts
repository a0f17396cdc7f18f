/**
 * Every error the NodeHost API returns is a LongboatError with a code from this table
 * (Dragonboat's error values, engine.md §6.1). `temporary` says whether retrying later,
 * possibly on another NodeHost, may succeed.
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
  invalidAddress: { temporary: false, text: "invalid address" },
  invalidSession: { temporary: false, text: "invalid session" },
  timeoutTooSmall: { temporary: false, text: "timeout is shorter than one RTT tick" },
  payloadTooBig: { temporary: false, text: "payload too big" },
  systemBusy: { temporary: true, text: "system busy" },
  shardClosed: { temporary: true, text: "shard closed" },
  shardNotReady: { temporary: true, text: "shard not ready (no leader, or the request was dropped)" },
  timeout: { temporary: true, text: "timed out" },
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
  constructor(
    readonly code: ErrorCode,
    detail?: string,
  ) {
    super(detail ? `${ERROR_CODES[code].text}: ${detail}` : ERROR_CODES[code].text);
    this.temporary = ERROR_CODES[code].temporary;
  }
}

export function isTemporary(error: unknown): boolean {
  return error instanceof LongboatError && error.temporary;
}
