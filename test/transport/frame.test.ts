import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { realEnv } from "../../src/env.ts";
import { MessageType, makeMessage } from "../../src/raft/types.ts";
import {
  decodeBatch,
  encodeBatch,
  invalidMessageReason,
  messageSizeBoundBytes,
} from "../../src/transport/codec.ts";
import { FrameError } from "../../src/transport/errors.ts";
import { encodeFrame, FrameDecoder } from "../../src/transport/frame.ts";
import { Http2Transport } from "../../src/transport/http2.ts";
import { MapRegistry } from "../../src/transport/registry.ts";
import { localAddress, Recorder, replicate, tracked, waitFor } from "./helpers.ts";

test("frames split at every byte boundary decode to the same payloads", () => {
  const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(20).fill(7)];
  const stream = new Uint8Array(payloads.reduce((n, p) => n + p.length + 8, 0));
  let at = 0;
  for (const p of payloads) {
    const f = encodeFrame(p);
    stream.set(f, at);
    at += f.length;
  }
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder(100);
    const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
    expect(got.map((g) => Array.from(g))).toEqual(payloads.map((p) => Array.from(p)));
  }
});

test("a frame at maxFrameBytes is accepted and one byte more is refused", () => {
  expect(new FrameDecoder(10).push(encodeFrame(new Uint8Array(10))).length).toBe(1);
  expect(() => new FrameDecoder(10).push(encodeFrame(new Uint8Array(11)))).toThrow(FrameError);
});

test("a bad checksum is refused with a FrameError of kind checksum", () => {
  const f = encodeFrame(new Uint8Array([1, 2, 3]));
  f[9] = f[9]! ^ 1;
  try {
    new FrameDecoder(10).push(f);
    throw new Error("not refused");
  } catch (e) {
    expect((e as FrameError).kind).toBe("checksum");
  }
});

test("validation refuses local types, zero ids, unsafe integers and missing snapshot metadata", () => {
  const ok = replicate(2, 1);
  expect(invalidMessageReason(ok)).toBeNull();
  expect(invalidMessageReason({ ...ok, type: MessageType.LocalTick })).toContain("local");
  expect(invalidMessageReason({ ...ok, type: 99 })).toContain("unknown message type");
  expect(invalidMessageReason({ ...ok, to: 0 })).toContain("to 0");
  expect(invalidMessageReason({ ...ok, term: 2 ** 60 })).toContain("term");
  expect(
    invalidMessageReason(makeMessage({ type: MessageType.InstallSnapshot, shardId: 1, to: 2, from: 1 })),
  ).toContain("without snapshot");
});

test("a batch from another format version is dropped whole", () => {
  const payload = encodeBatch({ deploymentId: 1, sourceAddress: "x:1" }, [replicate(2, 1)]);
  expect(decodeBatch(payload, 1).kind).toBe("ok");
  expect(decodeBatch(payload, 2).kind).toBe("deployment");
});

test("the message size bound is never below the encoded size", () => {
  for (const m of [replicate(2, 1, 0), replicate(2, 2 ** 50, 10, 1), replicate(2, 3, 100, 300)]) {
    const alone = encodeBatch({ deploymentId: 1, sourceAddress: "" }, [m]).length;
    expect(messageSizeBoundBytes(m)).toBeGreaterThanOrEqual(alone);
  }
});

test("a target that keeps failing is marked down, and sends to it fail fast", async () => {
  const registry = new MapRegistry();
  const rec = new Recorder();
  const t = tracked(
    new Http2Transport({
      address: localAddress(),
      deploymentId: 1,
      registry,
      env: realEnv(),
      snapshotDir: mkdtempSync(join(tmpdir(), "longboat-down-")),
      backoffInitialMs: 1,
      backoffMaxMs: 2,
      downAfterFailures: 3,
    }),
  );
  await t.start(rec);
  registry.add(1, 2, "127.0.0.1:1"); // nothing listens on port 1
  await waitFor(() => {
    t.send(replicate(2, 1));
    return t.isDown("127.0.0.1:1");
  }, "target marked down");
  expect(t.stats().connectFailures).toBeGreaterThanOrEqual(3);
  expect(rec.unreachable.length).toBeGreaterThan(0);
  await t.stop();
});
