import { nodeFileSystem } from "../../src/fs/node.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnapshotDir } from "../../src/logdb/snapshotfile.ts";
import { StateMachineManager } from "../../src/rsm/manager.ts";
import type { IOnDiskStateMachine, SMEntry, SMResult } from "../../src/statemachine/types.ts";
import { EntryMaker } from "./helpers.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-ondisk-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;

/** What survives a restart: the synced values and the index they were synced at. */
interface Disk {
  synced: string[];
  syncedIndex: number;
}

/** An on-disk machine over a fake disk: updates are volatile until sync(). */
class DiskMachine implements IOnDiskStateMachine {
  readonly type = "on-disk" as const;
  values: string[] = [];
  applied = 0;
  updated: number[] = [];
  syncs = 0;

  constructor(private readonly disk: Disk) {}

  open(): number {
    this.values = [...this.disk.synced];
    this.applied = this.disk.syncedIndex;
    return this.disk.syncedIndex;
  }
  update(entries: SMEntry[]): SMResult[] {
    return entries.map((e) => {
      this.updated.push(e.index);
      this.values.push(new TextDecoder().decode(e.cmd));
      this.applied = e.index;
      return { value: this.values.length, data: new Uint8Array(0) };
    });
  }
  lookup(): Uint8Array {
    return new TextEncoder().encode(this.values.join(","));
  }
  sync(): void {
    this.syncs++;
    this.disk.synced = [...this.values];
    this.disk.syncedIndex = this.applied;
  }
  prepareSnapshot(): unknown {
    return { values: [...this.values], applied: this.applied };
  }
  saveSnapshot(ctx: unknown, sink: (c: Uint8Array) => void): void {
    sink(new TextEncoder().encode(JSON.stringify(ctx)));
  }
  recoverFromSnapshot(payload: Uint8Array): void {
    const s = JSON.parse(new TextDecoder().decode(payload));
    this.values = s.values;
    this.applied = s.applied;
  }
  hash(): string {
    return this.values.join("|");
  }
  close(): void {}
}

function start(disk: Disk, dir: SnapshotDir) {
  const sm = new DiskMachine(disk);
  const m = new StateMachineManager({ shardId: 1, replicaId: 1, app: "disk", sm, snapshotDir: dir });
  const opened = m.open();
  return { sm, m, opened };
}

function newDir(): SnapshotDir {
  return new SnapshotDir(join(root, String(dirCount++)), 1, 1, { fs: nodeFileSystem });
}

/** Applies bootstrap member 1 at index 1, then plain updates "v2".."v<n>". */
function history(n: number): EntryMaker & { all: ReturnType<EntryMaker["plain"]>[] } {
  const e = new EntryMaker() as EntryMaker & { all: ReturnType<EntryMaker["plain"]>[] };
  e.all = [e.configChange({ replicaId: 1, initialize: true })];
  for (let i = 2; i <= n; i++) e.all.push(e.plain(`v${i}`));
  return e;
}

describe("on-disk state machines", () => {
  test("open returns the synced index and entries at or below it are not applied again", () => {
    const disk: Disk = { synced: ["v2", "v3", "v4"], syncedIndex: 4 };
    const { sm, m, opened } = start(disk, newDir());
    expect(opened).toBe(4);
    const e = history(6);
    const out = m.apply(e.all);
    expect(sm.updated).toEqual([5, 6]);
    expect(out.map((o) => o.kind)).toEqual(["config-change", "noop", "noop", "noop", "update", "update"]);
    expect(sm.values).toEqual(["v2", "v3", "v4", "v5", "v6"]);
  });

  test("config changes at or below the synced index are still applied", () => {
    const { m } = start({ synced: [], syncedIndex: 4 }, newDir());
    m.apply(history(4).all);
    expect(m.membership().addresses).toEqual([{ replicaId: 1, address: "a1" }]);
  });

  test("a local snapshot syncs the machine and holds no machine data", () => {
    const disk: Disk = { synced: [], syncedIndex: 0 };
    const { sm, m } = start(disk, newDir());
    m.apply(history(5).all);
    const meta = m.saveSnapshot();
    expect(sm.syncs).toBe(1);
    expect(disk.syncedIndex).toBe(5);
    expect(meta).toMatchObject({ dummy: true, onDiskIndex: 5, index: 5 });
  });

  test("after a restart the dummy snapshot restores membership and the synced data is kept", () => {
    const disk: Disk = { synced: [], syncedIndex: 0 };
    const dir = newDir();
    const first = start(disk, dir);
    first.m.apply(history(5).all);
    const meta = first.m.saveSnapshot();
    const second = start(disk, dir);
    second.m.recoverFromSnapshot(meta);
    expect(second.m.lastApplied()).toBe(5);
    expect(second.m.membership()).toEqual(first.m.membership());
    expect(second.m.hash()).toBe(first.m.hash());
  });

  test("a dummy snapshot is refused when the machine synced less than it covers", () => {
    const dir = newDir();
    const first = start({ synced: [], syncedIndex: 0 }, dir);
    first.m.apply(history(5).all);
    const meta = first.m.saveSnapshot();
    const lost = start({ synced: [], syncedIndex: 2 }, dir);
    expect(() => lost.m.recoverFromSnapshot(meta)).toThrow(/synced only up to 2, below 5/);
  });

  test("a full snapshot carries the data into an empty machine, which is then synced", () => {
    const first = start({ synced: [], syncedIndex: 0 }, newDir());
    first.m.apply(history(5).all);
    const meta = first.m.saveSnapshot({ full: true });
    expect(meta.dummy).toBe(false);
    const disk: Disk = { synced: [], syncedIndex: 0 };
    const other = start(disk, newDir());
    other.m.recoverFromSnapshot(meta);
    expect(other.sm.values).toEqual(["v2", "v3", "v4", "v5"]);
    expect(disk.syncedIndex).toBe(5);
    expect(other.m.hash()).toBe(first.m.hash());
  });

  test("session entries on an on-disk machine are rejected, not applied", () => {
    const { sm, m } = start({ synced: [], syncedIndex: 0 }, newDir());
    const e = new EntryMaker();
    const out = m.apply([e.register(7), e.session(7, 1, 0, "x")]);
    expect(out.map((o) => o.kind)).toEqual(["session-rejected", "session-rejected"]);
    expect(sm.updated).toEqual([]);
  });

  test("a dummy snapshot cannot be recovered by an in-memory machine", () => {
    const first = start({ synced: [], syncedIndex: 0 }, newDir());
    first.m.apply(history(3).all);
    const meta = first.m.saveSnapshot();
    const mem = new StateMachineManager({
      shardId: 1,
      replicaId: 1,
      app: "disk",
      sm: {
        update: () => [],
        lookup: () => new Uint8Array(0),
        saveSnapshot: () => {},
        recoverFromSnapshot: () => {},
        hash: () => "",
        close: () => {},
      },
      snapshotDir: newDir(),
    });
    expect(() => mem.recoverFromSnapshot(meta)).toThrow(/holds no machine data/);
  });
});
