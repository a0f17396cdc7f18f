// Fuzzes the HTTP/2 receiver with ≥ 100,000 random and mutated frames on raw HTTP/2 streams.
// Set LONGBOAT_FUZZ_FRAMES to run a longer soak (default 100,000).
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualEnv, realEnv } from "../../src/env.ts";
import { LOCAL_MESSAGE_TYPES, type Message, MessageType, makeMessage } from "../../src/raft/types.ts";
import { encodeBatch, invalidMessageReason } from "../../src/transport/codec.ts";
import { encodeFrame } from "../../src/transport/frame.ts";
import { Http2Transport, MESSAGES_PATH } from "../../src/transport/http2.ts";
import { MapRegistry } from "../../src/transport/registry.ts";
import { installSnapshot, localAddress, Recorder, replicate, tracked, waitFor } from "./helpers.ts";
import { PROCESS_TEST_WALL_MS } from "../support/limits.ts";

setDefaultTimeout(PROCESS_TEST_WALL_MS);
const FRAMES = Number(process.env.LONGBOAT_FUZZ_FRAMES ?? 100_000);
/** Frames written per stream before a stream-killing frame may end it. */
const FRAMES_PER_STREAM = 5_000;
const dir = mkdtempSync(join(tmpdir(), "longboat-fuzz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A checking handler: every delivered message must pass validation and be a wire type. */
class CheckingRecorder extends Recorder {
  bad = 0;
  override onMessages(messages: Message[], source: string): void {
    for (const m of messages) {
      if (invalidMessageReason(m) !== null || LOCAL_MESSAGE_TYPES.has(m.type) || m.snapshot === undefined)
        this.bad++;
      if (!Array.isArray(m.entries)) this.bad++;
    }
    super.onMessages(messages, source);
  }
}

function seedPayloads(): Uint8Array[] {
  const header = { deploymentId: 1, sourceAddress: "127.0.0.1:1" };
  const out: Uint8Array[] = [];
  for (let i = 1; i <= 50; i++) {
    out.push(encodeBatch(header, [replicate(2, i, i % 5, i * 3)]));
    out.push(
      encodeBatch(header, [
        makeMessage({ type: MessageType.Heartbeat, shardId: 1, from: 1, to: 2, term: i }),
      ]),
    );
    out.push(encodeBatch(header, [installSnapshot(2, "/x", 10), replicate(2, i)]));
  }
  return out;
}

function mutate(env: ManualEnv, seed: Uint8Array): Uint8Array {
  const p = new Uint8Array(seed);
  switch (env.nextInt(4)) {
    case 0: {
      const flips = 1 + env.nextInt(4);
      for (let i = 0; i < flips && p.length > 0; i++) p[env.nextInt(p.length)] = env.nextInt(256);
      return p;
    }
    case 1:
      return p.subarray(0, env.nextInt(p.length + 1));
    case 2: {
      const r = new Uint8Array(env.nextInt(300));
      for (let i = 0; i < r.length; i++) r[i] = env.nextInt(256);
      return r;
    }
    default: {
      const at = env.nextInt(p.length + 1);
      const ins = new Uint8Array(1 + env.nextInt(8)).map(() => env.nextInt(256));
      const out = new Uint8Array(p.length + ins.length);
      out.set(p.subarray(0, at));
      out.set(ins, at);
      out.set(p.subarray(at), at + ins.length);
      return out;
    }
  }
}

/** A frame that must close the stream: bad checksum or a length over maxFrameBytes. */
function killerFrame(env: ManualEnv, seed: Uint8Array): Uint8Array {
  const f = encodeFrame(seed);
  const view = new DataView(f.buffer);
  if (env.nextInt(2) === 0) view.setUint32(4, view.getUint32(4) ^ 1);
  else view.setUint32(0, 0xfffffff0);
  return f;
}

async function writeStream(session: http2.ClientHttp2Session, frames: Uint8Array[]): Promise<void> {
  const stream = session.request({ ":method": "POST", ":path": MESSAGES_PATH }, { endStream: false });
  stream.on("error", () => {});
  const closed = new Promise<void>((r) => stream.on("close", r));
  const total = frames.reduce((n, f) => n + f.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const f of frames) {
    all.set(f, at);
    at += f.length;
  }
  stream.end(all);
  await closed;
}

test("fuzzed frames never reach the handler malformed and the receiver keeps serving good peers", async () => {
  const env = new ManualEnv(20260101);
  const registry = new MapRegistry();
  const rec = new CheckingRecorder();
  const server = tracked(
    new Http2Transport({
      address: localAddress(),
      deploymentId: 1,
      registry,
      env: realEnv(),
      snapshotDir: join(dir, "s"),
      maxFrameBytes: 1024 * 1024,
    }),
  );
  await server.start(rec);
  const seeds = seedPayloads();
  const session = http2.connect(`http://${server.address}`);
  session.on("error", () => {});
  let sent = 0;
  let killed = 0;
  while (sent < FRAMES) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < FRAMES_PER_STREAM && sent < FRAMES; i++, sent++) {
      const seed = seeds[env.nextInt(seeds.length)]!;
      frames.push(encodeFrame(env.nextInt(10) === 0 ? seed : mutate(env, seed)));
    }
    if (env.nextInt(2) === 0) {
      frames.push(killerFrame(env, seeds[0]!));
      sent++;
      killed++;
    }
    await writeStream(session, frames);
  }
  session.close();
  await waitFor(() => server.stats().framesRefused === killed, `${killed} killer frames refused`);
  const s = server.stats();
  expect(rec.bad).toBe(0);
  expect(rec.messages.length).toBeGreaterThan(0);
  expect(s.batchesMalformed + s.messagesInvalid + s.batchesDroppedDeployment).toBeGreaterThan(0);

  const client = tracked(
    new Http2Transport({
      address: localAddress(),
      deploymentId: 1,
      registry,
      env: realEnv(),
      snapshotDir: join(dir, "c"),
    }),
  );
  await client.start(new Recorder());
  registry.add(1, 2, server.address);
  const before = rec.messages.length;
  client.send(replicate(2, 77));
  await waitFor(() => rec.messages.length > before, "a good peer's message delivered after the fuzzing");
  expect(rec.messages.at(-1)!.message.hint).toBe(77);
  await client.stop();
  await server.stop();
});
