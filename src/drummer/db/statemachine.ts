import { createHash } from "node:crypto";
import type { IStateMachine, SMEntry, SMResult, SnapshotSink } from "../../statemachine/types.ts";
import { applyUpdate } from "./apply.ts";
import { decodeState, decodeUpdate, encodeState } from "./codec.ts";
import type { DbResult } from "./result.ts";
import { DB_VERSION, type DbState, emptyState } from "./state.ts";

const utf8 = new TextEncoder();

/**
 * DrummerDB: the drummers' replicated state machine (shard definitions, the committed view
 * of every placed shard, NodeHost and drummer records, decisions in flight). Deterministic:
 * it reads no clock and draws no random number; time comes in the leader's steps. Its
 * snapshot is the canonical encoding of its state and its hash is the SHA-256 of those bytes,
 * so replicas that applied the same log agree byte for byte.
 *
 * ```ts
 * const db = new DrummerDB();
 * const [r] = db.update([{ index: 1, cmd: encodeUpdate({ kind: "bootstrap" }) }]);
 * r.value; // DbCode.Ok
 * ```
 */
export class DrummerDB implements IStateMachine {
  private s: DbState = emptyState();
  /** Called after each applied entry (the drummer wakes its leader loop with it). */
  onApplied: ((index: number, result: DbResult) => void) | null = null;

  /** The current state, read-only for the drummer in the same process (never mutate it). */
  get state(): Readonly<DbState> {
    return this.s;
  }

  update(entries: SMEntry[]): SMResult[] {
    return entries.map((e) => {
      const result = applyUpdate(this.s, decodeUpdate(e.cmd));
      this.onApplied?.(e.index, result);
      return { value: result.code, data: utf8.encode(result.message) };
    });
  }

  /** The query must be empty: the answer is the encoded state (what a snapshot holds). */
  lookup(query: Uint8Array): Uint8Array {
    if (query.byteLength !== 0) {
      throw new Error("DrummerDB answers only the empty query (with its encoded state)");
    }
    return encodeState(this.s);
  }

  saveSnapshot(sink: SnapshotSink): void {
    sink(encodeState(this.s));
  }

  recoverFromSnapshot(payload: Uint8Array): void {
    const s = decodeState(payload);
    if (s.version !== DB_VERSION) {
      throw new Error(`DrummerDB snapshot has schema version ${s.version}; this build reads ${DB_VERSION}`);
    }
    this.s = s;
  }

  hash(): string {
    return createHash("sha256").update(encodeState(this.s)).digest("hex").slice(0, 32);
  }

  close(): void {}
}
