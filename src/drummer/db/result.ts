/** What applying one DrummerDB update gave: a code (the SMResult value) and a message (its data). */

/** Result codes of an update (the SMResult value); the message is the SMResult data. */
export const DbCode = {
  Ok: 0,
  /** The update itself is malformed: retrying it never helps. */
  Invalid: 1,
  /** The update is well formed but the state refuses it (already bootstrapped, stale term…). */
  Precondition: 2,
  /** The shard id is in use. */
  Exists: 3,
} as const;
export type DbCode = (typeof DbCode)[keyof typeof DbCode];

export interface DbResult {
  code: DbCode;
  message: string;
}

export const ok = (message = ""): DbResult => ({ code: DbCode.Ok, message });
export const invalid = (message: string): DbResult => ({ code: DbCode.Invalid, message });
export const precondition = (message: string): DbResult => ({ code: DbCode.Precondition, message });
