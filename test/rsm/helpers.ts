import { longboat } from "../../src/pb/longboat.js";
import {
  type ConfigChange,
  ConfigChangeType,
  type Entry,
  EntryType,
  makeEntry,
} from "../../src/raft/types.ts";
import { SERIES_ID_REGISTER, SERIES_ID_UNREGISTER } from "../../src/rsm/session.ts";
import type { IStateMachine, SMEntry, SMResult } from "../../src/statemachine/types.ts";

const enc = new TextEncoder();

/** Builds entries with consecutive indexes from `first`. */
export class EntryMaker {
  constructor(
    public next = 1,
    public term = 1,
  ) {}

  private make(fields: Partial<Entry>): Entry {
    return makeEntry({ term: this.term, index: this.next++, key: this.next * 10, ...fields });
  }

  plain(text: string): Entry {
    return this.make({ cmd: enc.encode(text) });
  }
  leaderNoop(): Entry {
    return this.make({});
  }
  metadata(): Entry {
    return this.make({ type: EntryType.Metadata });
  }
  register(clientId: number): Entry {
    return this.make({ clientId, seriesId: SERIES_ID_REGISTER });
  }
  unregister(clientId: number): Entry {
    return this.make({ clientId, seriesId: SERIES_ID_UNREGISTER });
  }
  session(clientId: number, seriesId: number, respondedTo: number, text: string): Entry {
    return this.make({ clientId, seriesId, respondedTo, cmd: enc.encode(text) });
  }
  configChange(cc: Partial<ConfigChange> & { replicaId: number }): Entry {
    const full = {
      configChangeId: 0,
      type: ConfigChangeType.AddNode,
      address: `a${cc.replicaId}`,
      initialize: false,
      ...cc,
    };
    return this.make({
      type: EntryType.ConfigChange,
      cmd: longboat.raft.v1.ConfigChange.encode(full).finish(),
    });
  }
  raw(fields: Partial<Entry>): Entry {
    return this.make(fields);
  }
}

/**
 * A regular state machine that appends each command's text to a log; result value = log length.
 * Records every update call so tests can see batching.
 */
export class LogMachine implements IStateMachine {
  log: string[] = [];
  calls: number[][] = [];
  closed = 0;

  update(entries: SMEntry[]): SMResult[] {
    this.calls.push(entries.map((e) => e.index));
    return entries.map((e) => {
      this.log.push(new TextDecoder().decode(e.cmd));
      return { value: this.log.length, data: enc.encode(`r${e.index}`) };
    });
  }
  lookup(): Uint8Array {
    return enc.encode(this.log.join(","));
  }
  saveSnapshot(sink: (c: Uint8Array) => void): void {
    sink(enc.encode(JSON.stringify(this.log)));
  }
  recoverFromSnapshot(payload: Uint8Array): void {
    this.log = JSON.parse(new TextDecoder().decode(payload));
  }
  hash(): string {
    return this.log.join("|");
  }
  close(): void {
    this.closed++;
  }
}
