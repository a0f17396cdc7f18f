/**
 * A recorder of client operations for the linearizability checker.
 *
 * The simulator calls `invoke` when a client sends a request and `complete` when the reply
 * arrives, both stamped with the virtual clock's tick, so the history has no clock skew.
 * An operation that is never completed (the client crashed, timed out, or the run ended
 * first) keeps `return = Infinity` and `output = undefined`: the checker treats it as
 * possibly applied at any point after its call, or never.
 *
 * @example
 *   const history = new HistoryRecorder<KvInput, KvOutput>();
 *   const id = history.invoke(1, { op: "put", key: "a", value: "1" }, env.nowTick);
 *   history.complete(id, { ok: true }, env.nowTick);
 *   checkOperations(kvModel, history.operations());
 */
import type { Operation } from "./linearizability.js";

/** Misuse of the recorder: an unknown id, a double completion, a tick out of order, a full history. */
export class HistoryError extends Error {
  override name = "HistoryError";
}

/** Default bound on recorded operations; a simulation run that needs more should say so. */
export const HISTORY_OPERATION_COUNT_MAX_DEFAULT = 1_000_000;

interface Recorded<I, O> {
  clientId: number;
  input: I;
  call: number;
  output: O | undefined;
  return: number;
}

export class HistoryRecorder<I, O> {
  readonly #operations: Recorded<I, O>[] = [];
  readonly #operationCountMax: number;

  constructor(options: { operationCountMax?: number } = {}) {
    const max = options.operationCountMax ?? HISTORY_OPERATION_COUNT_MAX_DEFAULT;
    if (!Number.isInteger(max) || max < 1) {
      throw new HistoryError(`HistoryRecorder: operationCountMax must be an integer >= 1, got ${max}`);
    }
    this.#operationCountMax = max;
  }

  /** Records the call of an operation at `nowTick`; returns its id for `complete`. */
  invoke(clientId: number, input: I, nowTick: number): number {
    if (!Number.isFinite(nowTick)) {
      throw new HistoryError(
        `HistoryRecorder.invoke: client ${clientId} call tick must be finite, got ${nowTick}`,
      );
    }
    if (this.#operations.length >= this.#operationCountMax) {
      throw new HistoryError(
        `HistoryRecorder.invoke: history is full (${this.#operationCountMax} operations); ` +
          "raise operationCountMax or run a shorter simulation",
      );
    }
    const id = this.#operations.length;
    this.#operations.push({ clientId, input, call: nowTick, output: undefined, return: Infinity });
    return id;
  }

  /** Records the return of operation `id` with its `output` at `nowTick` (>= its call tick). */
  complete(id: number, output: O, nowTick: number): void {
    const op = this.#operations[id];
    if (op === undefined) {
      throw new HistoryError(`HistoryRecorder.complete: unknown operation id ${id}`);
    }
    if (op.return !== Infinity) {
      throw new HistoryError(
        `HistoryRecorder.complete: operation ${id} (client ${op.clientId}) already completed at tick ${op.return}`,
      );
    }
    if (!Number.isFinite(nowTick) || nowTick < op.call) {
      throw new HistoryError(
        `HistoryRecorder.complete: operation ${id} (client ${op.clientId}) returns at tick ${nowTick}, ` +
          `before its call at tick ${op.call}`,
      );
    }
    if (output === undefined) {
      throw new HistoryError(
        `HistoryRecorder.complete: operation ${id} (client ${op.clientId}) needs an output; ` +
          "leave an operation with an unknown outcome uncompleted instead",
      );
    }
    op.output = output;
    op.return = nowTick;
  }

  /** Operations recorded so far (copies); uncompleted ones have `return = Infinity`. */
  operations(): Operation<I, O>[] {
    return this.#operations.map((op) => ({ ...op }));
  }

  /** Number of operations recorded, completed or not. */
  get operationCount(): number {
    return this.#operations.length;
  }
}
