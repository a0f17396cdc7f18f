import { nodeFileSystem } from "../../src/fs/node.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnapshotCorruptError } from "../../src/logdb/errors.ts";
import { SnapshotDir, verifySnapshotFile } from "../../src/logdb/snapshotfile.ts";
import { ConfigChangeType, EntryType } from "../../src/raft/types.ts";
import { StateMachineShapeError } from "../../src/rsm/adapter.ts";
import { type ApplyOutcome, StateMachineManager, StateMachineManagerError } from "../../src/rsm/manager.ts";
import type { AnyStateMachine, IConcurrentStateMachine } from "../../src/statemachine/types.ts";
import { EntryMaker, LogMachine } from "./helpers.ts";

const root = mkdtempSync(join(tmpdir(), "longboat-rsm-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;

function manager(
  sm: AnyStateMachine = new LogMachine(),
  opts: { app?: string; witness?: boolean; maxSessions?: number } = {},
) {
  const snapshotDir = opts.witness
    ? null
    : new SnapshotDir(join(root, String(dirCount++)), 1, 1, { fs: nodeFileSystem });
  const m = new StateMachineManager({
    shardId: 1,
    replicaId: 1,
    app: opts.app ?? "log",
    sm,
    snapshotDir,
    isWitness: opts.witness ?? false,
    maxSessions: opts.maxSessions ?? 16,
  });
  m.open();
  return m;
}

/** A manager with members 1..3 bootstrapped at indexes 1..3. */
function bootstrapped(sm = new LogMachine()) {
  const m = manager(sm);
  const e = new EntryMaker();
  m.apply([1, 2, 3].map((id) => e.configChange({ replicaId: id, initialize: true })));
  return { m, e, sm };
}

const kinds = (os: ApplyOutcome[]) => os.map((o) => o.kind);

describe("manager apply", () => {
  test("the leader's empty entry is a noop and advances lastApplied", () => {
    const m = manager();
    const e = new EntryMaker();
    expect(m.apply([e.leaderNoop()])).toEqual([{ kind: "noop", index: 1 }]);
    expect(m.lastApplied()).toBe(1);
  });

  test("metadata entries are noops", () => {
    const m = manager();
    expect(kinds(m.apply([new EntryMaker().metadata()]))).toEqual(["noop"]);
  });

  test("consecutive plain updates go to the machine in one update call", () => {
    const sm = new LogMachine();
    const m = manager(sm);
    const e = new EntryMaker();
    const out = m.apply([e.plain("a"), e.plain("b"), e.plain("c")]);
    expect(sm.calls).toEqual([[1, 2, 3]]);
    expect(out.map((o) => (o.kind === "update" ? o.result.value : -1))).toEqual([1, 2, 3]);
  });

  test("outcomes keep entry order around a config change that splits the batch", () => {
    const { m, e, sm } = bootstrapped();
    const out = m.apply([e.plain("a"), e.configChange({ replicaId: 4, configChangeId: 3 }), e.plain("b")]);
    expect(out.map((o) => o.index)).toEqual([4, 5, 6]);
    expect(kinds(out)).toEqual(["update", "config-change", "update"]);
    expect(sm.calls).toEqual([[4], [6]]);
  });

  test("update outcomes carry the entry key", () => {
    const m = manager();
    const entry = new EntryMaker().plain("a");
    const [o] = m.apply([entry]);
    expect(o).toMatchObject({ kind: "update", tag: entry, duplicate: false });
  });

  test("an index gap is a caller bug and throws", () => {
    const m = manager();
    const e = new EntryMaker(2);
    expect(() => m.apply([e.plain("a")])).toThrow(/entry 2 applied after 0/);
  });

  test("a term below the last applied term throws", () => {
    const m = manager();
    m.apply([new EntryMaker(1, 5).plain("a")]);
    expect(() => m.apply([new EntryMaker(2, 4).plain("b")])).toThrow(/term 4 below the last applied term 5/);
  });

  test("an update returning the wrong number of results throws", () => {
    const sm = new LogMachine();
    sm.update = () => [];
    expect(() => manager(sm).apply([new EntryMaker().plain("a")])).toThrow(/returned 0 results/);
  });

  test("encoded entries are refused", () => {
    const m = manager();
    expect(() =>
      m.apply([new EntryMaker().raw({ type: EntryType.Encoded, cmd: new Uint8Array([1]) })]),
    ).toThrow(StateMachineManagerError);
  });

  test("use after close throws", () => {
    const sm = new LogMachine();
    const m = manager(sm);
    m.close();
    m.close();
    expect(sm.closed).toBe(1);
    expect(() => m.apply([])).toThrow(/after close/);
  });
});

describe("manager sessions", () => {
  test("register then update applies once and a retry returns the cached result as duplicate", () => {
    const sm = new LogMachine();
    const m = manager(sm);
    const e = new EntryMaker();
    const out = m.apply([e.register(7), e.session(7, 1, 0, "x"), e.session(7, 1, 0, "x")]);
    expect(out[0]).toMatchObject({ kind: "session-registered", clientId: 7 });
    expect(out[1]).toMatchObject({ kind: "update", duplicate: false });
    expect(out[2]).toMatchObject({ kind: "update", duplicate: true });
    const [, first, retry] = out;
    if (first?.kind === "update" && retry?.kind === "update") expect(retry.result).toEqual(first.result);
    expect(sm.log).toEqual(["x"]);
  });

  test("an update from an unregistered client is rejected and not applied", () => {
    const sm = new LogMachine();
    const out = manager(sm).apply([new EntryMaker().session(9, 1, 0, "x")]);
    expect(out[0]).toMatchObject({ kind: "session-rejected" });
    expect(sm.log).toEqual([]);
  });

  test("a retry of an acknowledged proposal is rejected", () => {
    const m = manager();
    const e = new EntryMaker();
    const out = m.apply([
      e.register(7),
      e.session(7, 1, 0, "x"),
      e.session(7, 2, 1, "y"),
      e.session(7, 1, 1, "x"),
    ]);
    expect(kinds(out)).toEqual(["session-registered", "update", "update", "session-rejected"]);
  });

  test("registering twice is rejected; unregister then update is rejected", () => {
    const m = manager();
    const e = new EntryMaker();
    const out = m.apply([
      e.register(7),
      e.register(7),
      e.unregister(7),
      e.unregister(7),
      e.session(7, 1, 0, "x"),
    ]);
    expect(kinds(out)).toEqual([
      "session-registered",
      "session-rejected",
      "session-unregistered",
      "session-rejected",
      "session-rejected",
    ]);
  });

  test("a register on client id 0 is rejected", () => {
    const out = manager().apply([new EntryMaker().register(0)]);
    expect(out[0]).toMatchObject({ kind: "session-rejected" });
  });

  test("series 0 of a registered client is the no-op session: applied every time, never cached", () => {
    const sm = new LogMachine();
    const m = manager(sm);
    const e = new EntryMaker();
    const out = m.apply([e.register(7), e.session(7, 0, 0, "x"), e.session(7, 0, 0, "x")]);
    expect(kinds(out)).toEqual(["session-registered", "update", "update"]);
    expect(sm.log).toEqual(["x", "x"]);
  });

  test("a session update splits a batch of plain updates", () => {
    const sm = new LogMachine();
    const m = manager(sm);
    const e = new EntryMaker();
    m.apply([e.register(7), e.plain("a"), e.session(7, 1, 0, "s"), e.plain("b"), e.plain("c")]);
    expect(sm.calls).toEqual([[2], [3], [4, 5]]);
  });
});

describe("manager membership", () => {
  test("an accepted config change updates the membership with configChangeId = its index", () => {
    const { m, e } = bootstrapped();
    const [o] = m.apply([e.configChange({ replicaId: 4, configChangeId: 3 })]);
    expect(o).toMatchObject({ kind: "config-change", accepted: true, reason: "" });
    expect(m.membership().configChangeId).toBe(4);
    expect(m.membership().addresses.map((x) => x.replicaId)).toEqual([1, 2, 3, 4]);
  });

  test("a rejected config change reports why and changes nothing", () => {
    const { m, e } = bootstrapped();
    const [o] = m.apply([e.configChange({ replicaId: 4, configChangeId: 1 })]);
    expect(o).toMatchObject({ kind: "config-change", accepted: false });
    expect(o?.kind === "config-change" && o.reason).toContain("stale");
    expect(m.membership().configChangeId).toBe(3);
  });

  test("an undecodable config change entry is rejected, not thrown", () => {
    const m = manager();
    const bad = new EntryMaker().raw({ type: EntryType.ConfigChange, cmd: new Uint8Array([0xff, 0xff]) });
    const [o] = m.apply([bad]);
    expect(o).toMatchObject({ kind: "config-change", accepted: false });
    expect(o?.kind === "config-change" && o.reason).toContain("does not decode");
  });

  test("a remove carries the change so the engine can act on self removal", () => {
    const { m, e } = bootstrapped();
    const [o] = m.apply([
      e.configChange({ replicaId: 1, configChangeId: 3, type: ConfigChangeType.RemoveNode }),
    ]);
    expect(o).toMatchObject({
      kind: "config-change",
      accepted: true,
      cc: { type: ConfigChangeType.RemoveNode, replicaId: 1 },
    });
  });
});

describe("manager snapshots", () => {
  function busy() {
    const { m, e, sm } = bootstrapped();
    m.apply([e.register(7), e.session(7, 1, 0, "x"), e.plain("p"), e.register(8), e.session(8, 1, 0, "y")]);
    return { m, e, sm };
  }

  test("save then recover into a fresh manager gives an equal hash, membership and index", () => {
    const { m } = busy();
    const meta = m.saveSnapshot();
    expect(meta.index).toBe(8);
    expect(meta.app).toBe("log");
    expect(meta.dummy).toBe(false);
    const fresh = manager();
    fresh.recoverFromSnapshot(meta);
    expect(fresh.hash()).toBe(m.hash());
    expect(fresh.membership()).toEqual(m.membership());
    expect(fresh.lastApplied()).toBe(8);
    expect(fresh.sessionCount()).toBe(2);
  });

  test("the snapshot file's header names the deployment that wrote it", () => {
    const sm = new LogMachine();
    const m = new StateMachineManager({
      shardId: 1,
      replicaId: 1,
      app: "log",
      sm,
      snapshotDir: new SnapshotDir(join(root, String(dirCount++)), 1, 1, { fs: nodeFileSystem }),
      deploymentId: 42,
    });
    m.open();
    m.apply([new EntryMaker().configChange({ replicaId: 1, initialize: true })]);
    const meta = m.saveSnapshot();
    expect(meta.deploymentId).toBe(42);
    expect(verifySnapshotFile(nodeFileSystem, meta.filePath).meta.deploymentId).toBe(42);
    expect(
      verifySnapshotFile(nodeFileSystem, busy().m.saveSnapshot().filePath).meta.deploymentId,
    ).toBeUndefined();
  });

  test("a recovered manager continues at the next index and still dedups a retry from before", () => {
    const { m } = busy();
    const meta = m.saveSnapshot();
    const sm = new LogMachine();
    const fresh = manager(sm);
    fresh.recoverFromSnapshot(meta);
    const e = new EntryMaker(9);
    const out = fresh.apply([e.session(7, 1, 0, "x"), e.plain("q")]);
    expect(out[0]).toMatchObject({ kind: "update", duplicate: true });
    expect(sm.log).toEqual(["x", "p", "y", "q"]);
  });

  test("hashes differ when sessions differ", () => {
    const a = manager();
    const b = manager();
    a.apply([new EntryMaker().register(1)]);
    b.apply([new EntryMaker().register(2)]);
    expect(a.hash()).not.toBe(b.hash());
  });

  test("a snapshot of another app is refused", () => {
    const { m } = busy();
    const meta = m.saveSnapshot();
    expect(() => manager(new LogMachine(), { app: "other" }).recoverFromSnapshot(meta)).toThrow(
      /is of app "log", this replica runs "other"/,
    );
  });

  test("a corrupt snapshot file throws SnapshotCorruptError", () => {
    const { m } = busy();
    const meta = m.saveSnapshot();
    const data = new Uint8Array(readFileSync(meta.filePath));
    data[data.byteLength - 20]! ^= 0xff;
    writeFileSync(meta.filePath, data);
    expect(() => manager().recoverFromSnapshot(meta)).toThrow(SnapshotCorruptError);
  });

  test("recovering a snapshot older than the applied index throws", () => {
    const { m, e } = busy();
    const meta = m.saveSnapshot();
    m.apply([e.plain("later")]);
    expect(() => m.recoverFromSnapshot(meta)).toThrow(/older than the applied index 9/);
  });

  test("saving with nothing applied throws", () => {
    expect(() => manager().saveSnapshot()).toThrow(/nothing applied/);
  });

  test("a concurrent machine is snapshotted through prepareSnapshot", () => {
    let prepared = 0;
    let state = 0;
    const sm: IConcurrentStateMachine = {
      type: "concurrent",
      update: (es) => es.map(() => ({ value: ++state, data: new Uint8Array(0) })),
      lookup: () => new Uint8Array([state]),
      prepareSnapshot: () => {
        prepared++;
        return state;
      },
      saveSnapshot: (ctx, sink) => sink(new Uint8Array([ctx as number])),
      recoverFromSnapshot: (p) => {
        state = p[0]!;
      },
      hash: () => String(state),
      close: () => {},
    };
    const m = manager(sm);
    const e = new EntryMaker();
    m.apply([e.plain("a"), e.plain("b")]);
    const meta = m.saveSnapshot();
    expect(prepared).toBe(1);
    state = 0;
    m.recoverFromSnapshot(meta);
    expect(state).toBe(2);
  });
});

describe("manager witness and shapes", () => {
  test("a witness treats application entries as noops and applies config changes", () => {
    const sm = new LogMachine();
    const m = manager(sm, { witness: true });
    const e = new EntryMaker();
    const out = m.apply([e.configChange({ replicaId: 1, initialize: true }), e.plain("a"), e.register(3)]);
    expect(kinds(out)).toEqual(["config-change", "noop", "noop"]);
    expect(sm.calls).toEqual([]);
    expect(() => m.saveSnapshot()).toThrow(/witness saves no snapshots/);
    expect(() => m.lookup(new Uint8Array(0))).toThrow(/witness/);
  });

  test("a witness recovers index and membership from snapshot metadata alone", () => {
    const { m: full } = bootstrapped();
    const meta = { ...full.saveSnapshot(), witness: true, filePath: "" };
    const w = manager(new LogMachine(), { witness: true });
    w.recoverFromSnapshot(meta);
    expect(w.lastApplied()).toBe(3);
    expect(w.membership()).toEqual(full.membership());
  });

  test("a machine missing methods is refused naming the app and the methods", () => {
    const bad = { update: () => [] } as unknown as AnyStateMachine;
    expect(() => manager(bad)).toThrow(StateMachineShapeError);
    expect(() => manager(bad)).toThrow(
      /app "log" of shard 1 replica 1: regular state machine lacks method\(s\) lookup/,
    );
  });

  test("an unknown machine type is refused", () => {
    const bad = { ...new LogMachine(), type: "weird" } as unknown as AnyStateMachine;
    expect(() => manager(bad)).toThrow(/unknown state machine type "weird"/);
  });
});
