// HTTP/2 transport benchmark: two processes on loopback.
//   npx bun scripts/bench/transport.ts            (runs both roles, prints a table, writes
//                                                   bench-results/transport-<date>.json)
// Options (env): BENCH_SECONDS (per throughput phase, default 3), BENCH_RTT_COUNT (default 2000).
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { realEnv } from "../../src/env.ts";
import { type Message, MessageType, makeEntry, makeMessage } from "../../src/raft/types.ts";
import { Http2Transport } from "../../src/transport/http2.ts";
import { MapRegistry } from "../../src/transport/registry.ts";
import type { TransportHandler } from "../../src/transport/types.ts";

const ENTRY_BYTES = 16;
const REPORT_HINT = 2 ** 40;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const RTT_COUNT = Number(process.env.BENCH_RTT_COUNT ?? 2000);
const BATCH_SHAPES = [64, 256, 1024]; // entries per message

function handler(over: Partial<TransportHandler>): TransportHandler {
  return { onMessages() {}, onUnreachable() {}, onSnapshotStatus() {}, onSnapshotReceived() {}, ...over };
}

function transport(registry: MapRegistry): Http2Transport {
  return new Http2Transport({
    address: "127.0.0.1:0",
    deploymentId: 1,
    registry,
    env: realEnv(),
    snapshotDir: mkdtempSync(join(tmpdir(), "longboat-bench-")),
  });
}

/** Receiver: counts entries; answers Heartbeat with HeartbeatResp (commit = entries so far). */
async function receiver(): Promise<void> {
  const registry = new MapRegistry();
  let entries = 0;
  const t: Http2Transport = transport(registry);
  await t.start(
    handler({
      onMessages(ms: Message[], source: string) {
        for (const m of ms) {
          if (m.type === MessageType.Replicate) entries += m.entries.length;
          else if (m.type === MessageType.Heartbeat) {
            registry.add(m.shardId, m.from, source);
            t.send(
              makeMessage({
                type: MessageType.HeartbeatResp,
                shardId: m.shardId,
                from: 2,
                to: m.from,
                hint: m.hint,
                commit: entries,
              }),
            );
            if (m.hint === REPORT_HINT) entries = 0;
          }
        }
        t.flush();
      },
    }),
  );
  console.log(JSON.stringify({ address: t.address }));
  process.on("SIGTERM", () => void t.stop().then(() => process.exit(0)));
}

const tick = () => new Promise<void>((r) => setImmediate(r));

interface Row {
  phase: string;
  entriesPerMessage: number;
  seconds: number;
  messagesPerSec: number;
  entriesPerSec: number;
  payloadMBPerSec: number;
  wireMBPerSec: number;
}

/** Sender: throughput phases, then ping-pong latency; prints one JSON result line. */
async function sender(target: string): Promise<void> {
  const registry = new MapRegistry();
  registry.add(1, 2, target);
  let reply: ((m: Message) => void) | null = null;
  const t = transport(registry);
  await t.start(
    handler({
      onMessages: (ms) => {
        for (const m of ms) reply?.(m);
      },
    }),
  );
  const ask = (hint: number): Promise<Message> =>
    new Promise((resolve) => {
      reply = (m) => {
        if (m.hint === hint) resolve(m);
      };
      t.send(makeMessage({ type: MessageType.Heartbeat, shardId: 1, from: 1, to: 2, hint }));
      t.flush();
    });
  await ask(1); // connect
  const rows: Row[] = [];
  for (const perMessage of BATCH_SHAPES) {
    const entries = Array.from({ length: perMessage }, (_, i) =>
      makeEntry({ term: 1, index: i + 1, cmd: new Uint8Array(ENTRY_BYTES).fill(i) }),
    );
    const m = makeMessage({ type: MessageType.Replicate, shardId: 1, from: 1, to: 2, term: 1, entries });
    const bytes0 = t.stats().bytesSent;
    const t0 = performance.now();
    const endMs = t0 + SECONDS * 1000;
    while (performance.now() < endMs) {
      for (let i = 0; i < 64; i++) if (!t.send(m)) break;
      t.flush();
      await tick();
    }
    const got = await ask(REPORT_HINT);
    const seconds = (performance.now() - t0) / 1000;
    const entriesPerSec = got.commit / seconds;
    rows.push({
      phase: "throughput",
      entriesPerMessage: perMessage,
      seconds,
      messagesPerSec: entriesPerSec / perMessage,
      entriesPerSec,
      payloadMBPerSec: (entriesPerSec * ENTRY_BYTES) / 1e6,
      wireMBPerSec: (t.stats().bytesSent - bytes0) / 1e6 / seconds,
    });
  }
  const rttMs: number[] = [];
  for (let i = 0; i < RTT_COUNT; i++) {
    const s = performance.now();
    await ask(10 + i);
    rttMs.push(performance.now() - s);
  }
  rttMs.sort((a, b) => a - b);
  const pct = (p: number) => rttMs[Math.min(rttMs.length - 1, Math.floor((p / 100) * rttMs.length))]!;
  console.log(
    JSON.stringify({ rows, rtt: { count: RTT_COUNT, p50Ms: pct(50), p99Ms: pct(99), maxMs: rttMs.at(-1) } }),
  );
  await t.stop();
  process.exit(0);
}

async function readLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
    if (text.includes("\n")) break;
  }
  reader.releaseLock();
  return text.split("\n")[0]!;
}

async function main(): Promise<void> {
  const self = import.meta.path;
  const recv = Bun.spawn([process.execPath, self, "receiver"], { stdout: "pipe", stderr: "inherit" });
  const { address } = JSON.parse(await readLine(recv.stdout));
  const send = Bun.spawn([process.execPath, self, "sender", address], { stdout: "pipe", stderr: "inherit" });
  const result = JSON.parse(await readLine(send.stdout));
  await send.exited;
  recv.kill("SIGTERM");
  await recv.exited;
  console.log(
    `HTTP/2 transport, two processes on loopback, ${ENTRY_BYTES}-byte entries, ${SECONDS} s per phase`,
  );
  console.log("entries/msg   messages/s    entries/s   payload MB/s   wire MB/s");
  for (const r of result.rows as Row[]) {
    console.log(
      `${String(r.entriesPerMessage).padStart(11)} ${r.messagesPerSec.toFixed(0).padStart(13)} ${r.entriesPerSec
        .toFixed(0)
        .padStart(
          12,
        )} ${r.payloadMBPerSec.toFixed(1).padStart(14)} ${r.wireMBPerSec.toFixed(1).padStart(11)}`,
    );
  }
  const rtt = result.rtt;
  console.log(
    `round trip (1 small message each way, ${rtt.count} samples): p50 ${rtt.p50Ms.toFixed(3)} ms, p99 ${rtt.p99Ms.toFixed(3)} ms`,
  );
  mkdirSync("bench-results", { recursive: true });
  const date = new Date().toISOString().replace(/[:.]/g, "-");
  const file = join("bench-results", `transport-${date}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      { bench: "transport", date, entryBytes: ENTRY_BYTES, seconds: SECONDS, ...result },
      null,
      2,
    ),
  );
  console.log(`wrote ${file}`);
}

const role = process.argv[2];
if (role === "receiver") await receiver();
else if (role === "sender") await sender(process.argv[3]!);
else await main();
