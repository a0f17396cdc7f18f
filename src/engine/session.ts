import { LongboatError } from "./errors.ts";

/** Series ids with a meaning of their own (src/rsm/session.ts defines the same values). */
export const SERIES_ID_NOOP = 0;
export const SERIES_ID_FIRST_PROPOSAL = 1;
export const SERIES_ID_REGISTER = Number.MAX_SAFE_INTEGER - 1;
export const SERIES_ID_UNREGISTER = Number.MAX_SAFE_INTEGER;

/**
 * A client session gives at-most-once proposals: a proposal retried with the same series id
 * after a timeout is applied once, and the retry returns the first result.
 *
 * ```ts
 * const session = await nh.getNewSession(1, { timeoutMs: 2000 });
 * await nh.syncPropose(session, cmd, { timeoutMs: 2000 }); // retry with the same session on timeout
 * session.proposalCompleted();                             // then move on to the next proposal
 * ```
 */
export class Session {
  constructor(
    readonly shardId: number,
    readonly clientId: number,
    public seriesId: number,
    public respondedTo: number,
  ) {}

  /** The no-op session: no deduplication, a retried proposal may apply twice. */
  static noop(shardId: number): Session {
    return new Session(shardId, 0, SERIES_ID_NOOP, 0);
  }

  get isNoOp(): boolean {
    return this.clientId === 0;
  }

  /** Call after a proposal completed; the next proposal gets the next series id. */
  proposalCompleted(): void {
    if (this.isNoOp) return;
    this.respondedTo = this.seriesId;
    this.seriesId += 1;
  }

  /** Checks that the session may carry an ordinary proposal for shardId. */
  validateForProposal(shardId: number): void {
    if (this.shardId !== shardId) {
      throw new LongboatError("invalidSession", `session of shard ${this.shardId} used for shard ${shardId}`);
    }
    if (this.isNoOp) return;
    if (this.seriesId === SERIES_ID_REGISTER || this.seriesId === SERIES_ID_UNREGISTER) {
      throw new LongboatError("invalidSession", `session ${this.clientId} is not registered`);
    }
    if (this.respondedTo >= this.seriesId) {
      throw new LongboatError(
        "invalidSession",
        `respondedTo ${this.respondedTo} must be below seriesId ${this.seriesId}`,
      );
    }
  }
}
