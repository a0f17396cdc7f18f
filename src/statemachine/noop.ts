import { ByteReader, ByteWriter } from "./bytes.ts";
import type { IStateMachine, SMEntry, SMResult, SnapshotSink } from "./types.ts";

/**
 * The built-in `noop` app: counts the entries applied to it. Each update's result value is the
 * count after it; lookup ignores the query and returns the count as UTF-8 decimal text.
 */
export class NoopStateMachine implements IStateMachine {
  private count = 0;

  update(entries: SMEntry[]): SMResult[] {
    return entries.map(() => {
      this.count++;
      return { value: this.count, data: new Uint8Array(0) };
    });
  }

  lookup(_query: Uint8Array): Uint8Array {
    return new TextEncoder().encode(String(this.count));
  }

  saveSnapshot(sink: SnapshotSink): void {
    const w = new ByteWriter(sink);
    w.u64(this.count);
    w.flush();
  }

  recoverFromSnapshot(payload: Uint8Array): void {
    const r = new ByteReader(payload, "noop snapshot");
    const count = r.u64("count");
    r.end();
    this.count = count;
  }

  hash(): string {
    return `noop:${this.count}`;
  }

  close(): void {}
}

/** Reads the count out of a noop lookup answer. */
export function decodeNoopCount(answer: Uint8Array): number {
  return Number(new TextDecoder().decode(answer));
}
