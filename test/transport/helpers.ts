import { readFileSync, writeFileSync } from "node:fs";
import { crc32 } from "node:zlib";
import { type Message, MessageType, makeEntry, makeMessage } from "../../src/raft/types.ts";
import type { TransportFaults } from "../../src/transport/snapshot.ts";
import type { Transport, TransportHandler, TransportStats } from "../../src/transport/types.ts";
import { REAL_WAIT_MS } from "../support/limits.ts";
import { freePort } from "../support/ports.ts";
import { currentTest, parkIfEnded, track } from "../support/resources.ts";

/** A transport as the conformance suite drives it: the contract plus counters and fault hooks. */
export interface TestTransport extends Transport {
  stats(): TransportStats;
  readonly faults: TransportFaults;
}

/** Records every handler callback. */
export class Recorder implements TransportHandler {
  readonly messages: { message: Message; source: string }[] = [];
  readonly unreachable: [number, number][] = [];
  readonly statuses: { shardId: number; replicaId: number; failed: boolean }[] = [];
  readonly snapshots: Message[] = [];

  onMessages(messages: Message[], sourceAddress: string): void {
    for (const message of messages) this.messages.push({ message, source: sourceAddress });
  }
  onUnreachable(shardId: number, replicaId: number): void {
    this.unreachable.push([shardId, replicaId]);
  }
  onSnapshotStatus(shardId: number, replicaId: number, failed: boolean): void {
    this.statuses.push({ shardId, replicaId, failed });
  }
  onSnapshotReceived(message: Message): void {
    this.snapshots.push(message);
  }
}

/** A Replicate message from replica 1 to `to` of shard 1, tagged by hint. */
export function replicate(to: number, hint: number, entryCount = 1, cmdBytes = 16): Message {
  const entries = [];
  for (let i = 0; i < entryCount; i++) {
    entries.push(
      makeEntry({
        term: 3,
        index: hint * 1000 + i + 1,
        key: 7,
        proposerId: 2,
        proposerEpoch: 2 ** 53 - 1 - i,
        cmd: new Uint8Array(cmdBytes).fill(i & 0xff),
      }),
    );
  }
  return makeMessage({
    type: MessageType.Replicate,
    shardId: 1,
    from: 1,
    to,
    term: 3,
    logTerm: 2,
    logIndex: 9,
    commit: 8,
    hint,
    entries,
  });
}

/** Writes sizeBytes of deterministic pseudo-random bytes to path; returns their CRC-32. */
export function writeSnapshotFile(path: string, sizeBytes: number, seed = 1): number {
  const data = new Uint8Array(sizeBytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < sizeBytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
    data[i + 1] = (x >>> 8) & 0xff;
    data[i + 2] = (x >>> 16) & 0xff;
    data[i + 3] = (x >>> 24) & 0xff;
  }
  writeFileSync(path, data);
  return crc32(data) >>> 0;
}

export function fileCrc(path: string): number {
  return crc32(readFileSync(path)) >>> 0;
}

/** An InstallSnapshot message for replica `to` of shard 1 naming the file at path. */
export function installSnapshot(to: number, path: string, sizeBytes: number): Message {
  return makeMessage({
    type: MessageType.InstallSnapshot,
    shardId: 1,
    from: 1,
    to,
    term: 5,
    snapshot: {
      shardId: 1,
      replicaId: to,
      index: 100,
      term: 4,
      membership: {
        configChangeId: 90,
        addresses: [{ replicaId: 1, address: "a:1" }],
        nonVotings: [],
        witnesses: [],
        removed: [9],
      },
      filePath: path,
      fileSizeBytes: sizeBytes,
      witness: false,
      dummy: false,
      onDiskIndex: 0,
      app: "kv",
      checksum: 0,
    },
  });
}

/**
 * Polls cond every 2 ms until it holds; throws after timeoutMs (real time, sized for a loaded
 * machine). Never returns once the test that called it has ended (resources.ts).
 */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = REAL_WAIT_MS): Promise<void> {
  const token = currentTest();
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
    await parkIfEnded(token);
  }
}

/** A listen address on 127.0.0.1 with a port from the test allocator (below the ephemeral range). */
export function localAddress(): string {
  return `127.0.0.1:${freePort()}`;
}

/** Registers a transport with the test resource registry: stopped when its test ends. */
export function tracked<T extends { stop(): Promise<void>; readonly address: string }>(t: T): T {
  track(`transport ${t.address}`, () => t.stop());
  return t;
}
