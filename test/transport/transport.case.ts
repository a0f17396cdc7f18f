// The conformance suite every Transport implementation runs (imported by sim.test.ts and
// http2.test.ts). Each case names the behaviour it checks.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "../../src/raft/types.ts";
import { MapRegistry } from "../../src/transport/registry.ts";
import type { TransportOptions } from "../../src/transport/options.ts";
import {
  fileCrc,
  installSnapshot,
  Recorder,
  replicate,
  type TestTransport,
  writeSnapshotFile,
} from "./helpers.ts";

export type CreateOptions = Partial<Omit<TransportOptions, "registry" | "env">> & { registry: MapRegistry };

/** What an implementation supplies to run the suite. */
export interface Harness {
  /** A new, not yet started transport; address given when restarting one at the same address. */
  create(o: CreateOptions): TestTransport;
  /** Waits (advancing virtual time, or polling real time) until cond holds; fails naming `what`. */
  until(cond: () => boolean, what: string): Promise<void>;
  /** Lets queued work run for a while without a condition (to show something did NOT happen). */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export function transportConformance(name: string, makeHarness: () => Harness): void {
  describe(`${name} transport conformance`, () => {
    let h: Harness;
    let dir: string;
    const started: TestTransport[] = [];

    async function start(o: Partial<CreateOptions> & { registry: MapRegistry }, rec = new Recorder()) {
      const snapshotDir = o.snapshotDir ?? mkdtempSync(join(dir, "snap-"));
      const t = h.create({ ...o, snapshotDir });
      await t.start(rec);
      started.push(t);
      return { t, rec, snapshotDir };
    }

    async function pair(oa: Partial<CreateOptions> = {}, ob: Partial<CreateOptions> = {}) {
      const registry = new MapRegistry();
      const a = await start({ registry, ...oa });
      const b = await start({ registry, ...ob });
      registry.add(1, 2, b.t.address);
      registry.add(1, 1, a.t.address);
      return { registry, a, b };
    }

    function setup() {
      h = makeHarness();
      dir = mkdtempSync(join(tmpdir(), "longboat-transport-"));
    }

    afterEach(async () => {
      for (const t of started.splice(0)) await t.stop();
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test("delivers every message of one stream in send order", async () => {
      setup();
      const { a, b } = await pair();
      for (let i = 1; i <= 1000; i++) {
        expect(a.t.send(replicate(2, i))).toBe(true);
        if (i % 7 === 0) a.t.flush();
      }
      await h.until(() => b.rec.messages.length >= 1000, "1000 messages delivered");
      expect(b.rec.messages.map((x) => x.message.hint)).toEqual(
        Array.from({ length: 1000 }, (_, i) => i + 1),
      );
      expect(b.rec.messages[0]!.source).toBe(a.t.address);
    });

    test("a message arrives with every field and entry intact", async () => {
      setup();
      const { a, b } = await pair();
      const sent = replicate(2, 42, 3, 5);
      a.t.send(sent);
      await h.until(() => b.rec.messages.length === 1, "one message delivered");
      const got = b.rec.messages[0]!.message;
      expect({ ...got, entries: [] }).toEqual({ ...sent, entries: [] });
      expect(Object.keys(got.entries[0]!).sort()).toEqual(Object.keys(sent.entries[0]!).sort());
      const fields = (e: Entry) => [
        e.term,
        e.index,
        e.type,
        e.key,
        e.clientId,
        e.proposerId,
        e.proposerEpoch,
        Array.from(e.cmd),
      ];
      expect(got.entries.map(fields)).toEqual(sent.entries.map(fields));
    });

    test("a lone send without flush still goes out", async () => {
      setup();
      const { a, b } = await pair();
      a.t.send(replicate(2, 1));
      await h.until(() => b.rec.messages.length === 1, "message delivered without flush()");
    });

    test("send to a replica the registry cannot resolve returns false", async () => {
      setup();
      const { a } = await pair();
      expect(a.t.send(replicate(99, 1))).toBe(false);
    });

    test("reconnects after the remote NodeHost restarts", async () => {
      setup();
      const { registry, a, b } = await pair({ backoffInitialMs: 10, backoffMaxMs: 50 });
      a.t.send(replicate(2, 1));
      await h.until(() => b.rec.messages.length === 1, "first message delivered");
      const address = b.t.address;
      await b.t.stop();
      const b2 = await start({ registry, address });
      let hint = 2;
      await h.until(() => {
        a.t.send(replicate(2, hint++));
        return b2.rec.messages.length > 0;
      }, "a message delivered to the restarted NodeHost");
    });

    test("a full send queue drops the message and reports the target unreachable", async () => {
      setup();
      const { a } = await pair({ maxSendQueueMessages: 4 });
      for (let i = 1; i <= 4; i++) expect(a.t.send(replicate(2, i))).toBe(true);
      expect(a.t.send(replicate(2, 5))).toBe(false);
      expect(a.t.stats().messagesDroppedQueueFull).toBe(1);
      await h.until(
        () => a.rec.unreachable.some(([s, r]) => s === 1 && r === 2),
        "unreachable(1, 2) reported",
      );
    });

    test("the send queue byte bound drops at the bound", async () => {
      setup();
      const { a } = await pair({ maxSendQueueBytes: 4000 });
      expect(a.t.send(replicate(2, 1, 1, 3000))).toBe(true);
      expect(a.t.send(replicate(2, 2, 1, 3000))).toBe(false);
      expect(a.t.stats().messagesDroppedQueueFull).toBe(1);
    });

    test("a message larger than maxMessageBytes is refused at send", async () => {
      setup();
      const { a } = await pair({ maxMessageBytes: 2000 });
      expect(a.t.send(replicate(2, 1, 1, 5000))).toBe(false);
      expect(a.t.stats().messagesDroppedTooLarge).toBe(1);
    });

    test("batches from another deployment are dropped, counted and logged once", async () => {
      setup();
      const logs: Record<string, unknown>[] = [];
      const { registry, b } = await pair({}, { log: (e) => logs.push(e) });
      const c = await start({ registry, deploymentId: 2 });
      for (let i = 0; i < 3; i++) {
        c.t.send(replicate(2, i + 1));
        c.t.flush();
        await h.until(() => b.t.stats().batchesDroppedDeployment === i + 1, `foreign batch ${i + 1} counted`);
      }
      expect(b.rec.messages.length).toBe(0);
      expect(logs.filter((e) => e.event === "batch-dropped-deployment").length).toBe(1);
    });

    test("an oversized frame is refused and the receiver keeps serving others", async () => {
      setup();
      const { registry, a, b } = await pair({}, { maxFrameBytes: 64 * 1024 });
      a.t.send(replicate(2, 1, 1, 100 * 1024));
      await h.until(() => b.t.stats().framesRefused === 1, "oversized frame refused");
      expect(b.rec.messages.length).toBe(0);
      const d = await start({ registry });
      d.t.send(replicate(2, 2));
      await h.until(() => b.rec.messages.length === 1, "a good peer still delivers");
    });

    // No limit of its own: the file's (PROCESS_TEST_WALL_MS for real transports). Writing,
    // checksumming and fsyncing 50 MiB took 8–13 s at load average 40; a 30 s limit failed a
    // whole-suite run beside other fsyncing tests, with nothing hung.
    test("a 50 MiB snapshot arrives intact", async () => {
      setup();
      const { a, b } = await pair();
      const path = join(dir, "big.snap");
      const sizeBytes = 50 * 1024 * 1024;
      const crc = writeSnapshotFile(path, sizeBytes);
      expect(a.t.sendSnapshot(installSnapshot(2, path, sizeBytes))).toBe(true);
      await h.until(() => a.rec.statuses.length === 1, "snapshot status reported");
      expect(a.rec.statuses[0]).toEqual({ shardId: 1, replicaId: 2, failed: false });
      expect(b.rec.snapshots.length).toBe(1);
      const got = b.rec.snapshots[0]!;
      expect(got.snapshot!.filePath).not.toBe(path);
      expect(got.snapshot!.fileSizeBytes).toBe(sizeBytes);
      expect(fileCrc(got.snapshot!.filePath)).toBe(crc);
      expect(got.snapshot!.membership!.removed).toEqual([9]);
      expect([got.shardId, got.from, got.to, got.term, got.snapshot!.index]).toEqual([1, 1, 2, 5, 100]);
    });

    test("a snapshot with a corrupt chunk is refused and its partial file removed", async () => {
      setup();
      const { a, b } = await pair({ snapshotChunkBytes: 64 * 1024 });
      const path = join(dir, "small.snap");
      writeSnapshotFile(path, 200 * 1024);
      a.t.faults.corruptSnapshotChunkIndex = 1;
      expect(a.t.sendSnapshot(installSnapshot(2, path, 200 * 1024))).toBe(true);
      await h.until(() => a.rec.statuses.length === 1, "snapshot status reported");
      expect(a.rec.statuses[0]!.failed).toBe(true);
      expect(b.rec.snapshots.length).toBe(0);
      expect(b.t.stats().snapshotsRefused).toBe(1);
      await h.until(() => readdirSync(b.snapshotDir).length === 0, "partial snapshot file removed");
    });

    test("sendSnapshot refuses at once beyond maxSnapshotStreamsOut", async () => {
      setup();
      const { a } = await pair({ maxSnapshotStreamsOut: 1 });
      const path = join(dir, "s.snap");
      writeSnapshotFile(path, 1024);
      expect(a.t.sendSnapshot(installSnapshot(2, path, 1024))).toBe(true);
      expect(a.t.sendSnapshot(installSnapshot(2, path, 1024))).toBe(false);
      await h.until(() => a.rec.statuses.length === 1, "first snapshot finished");
      expect(a.t.sendSnapshot(installSnapshot(2, path, 1024))).toBe(true);
      await h.until(() => a.rec.statuses.length === 2, "third snapshot finished");
    });
  });
}
