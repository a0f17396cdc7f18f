// Snapshot stall benchmark (#16 item 4): how long saving and recovering a snapshot blocks the
// NodeHost's event loop, i.e. how long every other shard on the host goes without heartbeats.
//
//   npm run bench -- snapshot-stall [--mib 8,32] [--value-bytes 1024]
//
// For each size: one NodeHost (SQLite log, fsync on) with one single-replica kv shard holding
// about that many MiB (puts of --value-bytes values) and 8 other single-replica shards; a 2 ms
// interval timer records the loop's longest gap while `syncRequestSnapshot` saves a snapshot,
// then the host stops and a fresh NodeHost starts the 8 other shards, waits for them to be led,
// and starts the shard from its snapshot (recoverGapMs: the longest gap while startReplica
// recovers it; in steps between engine iterations since the recovery landing, inline before;
// recoverIterations: engine iterations meanwhile). Reports the longest gap (ms), ms per MiB, how many
// heartbeat ticks (rttMs 10) the other shards missed, and idleGapMs: the longest gap over as
// long a time right after, with no snapshot (the machine's own noise floor). Prints a table; writes
// bench-results/snapshot-stall-<date>.json.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeHost } from "../../src/nodehost.ts";
import { longboat } from "../../src/pb/longboat.js";
import { builtinApps } from "../../src/statemachine/registry.ts";
import { arg, loadAvg, writeResults } from "./api.ts";

const RTT_MS = 10;
const OTHER_SHARDS = 8;
const kv = builtinApps().get("kv");

/** Longest gap between the ticks of a 2 ms interval while fn runs (the loop blocked). */
async function longestGap<T>(fn: () => Promise<T>): Promise<{ value: T; gapMs: number; wallMs: number }> {
  let last = performance.now();
  let gapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gapMs = Math.max(gapMs, now - last);
    last = now;
  }, 2);
  const t0 = performance.now();
  try {
    const value = await fn();
    await new Promise((r) => setTimeout(r, 10));
    return { value, gapMs, wallMs: performance.now() - t0 };
  } finally {
    clearInterval(timer);
  }
}

async function startShard(nh: NodeHost, shardId: number, fresh: boolean, address: string): Promise<void> {
  const members: Record<number, string> = fresh ? { 1: address } : {};
  await nh.startReplica(
    members,
    false,
    kv,
    { shardId, replicaId: 1, electionRtt: 10, heartbeatRtt: 1 },
    { app: "kv" },
  );
}

/** A NodeHost with shards 2..9 started; shard 1 too unless `withoutShard1`. */
async function startHost(
  dir: string,
  port: number,
  fresh: boolean,
  withoutShard1 = false,
): Promise<NodeHost> {
  const address = `127.0.0.1:${port}`;
  const nh = new NodeHost({ nodeHostDir: dir, raftAddress: address, rttMs: RTT_MS });
  await nh.ready;
  for (let s = withoutShard1 ? 2 : 1; s <= OTHER_SHARDS + 1; s++) await startShard(nh, s, fresh, address);
  return nh;
}

async function led(nh: NodeHost): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (nh.getNodeHostInfo({ skipLogInfo: true }).shards.every((s) => s.isLeader)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("shards not led within 30 s");
}

async function point(mib: number, valueBytes: number) {
  const dir = mkdtempSync(join(tmpdir(), "longboat-bench-snapstall-"));
  const port = 20000 + Math.floor(Math.random() * 12000);
  try {
    let nh = await startHost(dir, port, true);
    await led(nh);
    const session = nh.getNoOpSession(1);
    const value = new Uint8Array(valueBytes).fill(7);
    const keys = Math.ceil((mib * 1024 * 1024) / valueBytes);
    const inflight = 64;
    for (let k = 0; k < keys; k += inflight) {
      const batch = [];
      for (let j = k; j < Math.min(keys, k + inflight); j++) {
        const cmd = longboat.nodehost.v1.KvCommand.encode({ put: { key: `key-${j}`, value } }).finish();
        batch.push(nh.syncPropose(session, cmd, { timeoutMs: 30_000 }));
      }
      await Promise.all(batch);
    }
    const save = await longestGap(() => nh.syncRequestSnapshot(1, { timeoutMs: 120_000 }));
    // The noise floor: the longest gap over as long a time with no snapshot (a loaded machine
    // deschedules the process too; a gap this long is not the snapshot's).
    const idle = await longestGap(() => new Promise((r) => setTimeout(r, Math.max(50, save.wallMs))));
    const info = nh.getNodeHostInfo({ skipLogInfo: true });
    await nh.stop();
    // The host restarts with the 8 other shards running and led; then shard 1 starts from its
    // snapshot (recovered in steps, or inline before) while they go on.
    nh = await startHost(dir, port, false, true);
    await led(nh);
    const otherIterations = nh.stats.iterations;
    const recover = await longestGap(() => startShard(nh, 1, false, `127.0.0.1:${port}`));
    const recoverIterations = nh.stats.iterations - otherIterations;
    await led(nh);
    await nh.stop();
    return {
      mib,
      keys,
      snapshotIndex: save.value,
      shards: info.shards.length,
      saveGapMs: Math.round(save.gapMs),
      saveWallMs: Math.round(save.wallMs),
      saveGapMsPerMiB: Number((save.gapMs / mib).toFixed(1)),
      idleGapMs: Math.round(idle.gapMs),
      recoverGapMs: Math.round(recover.gapMs),
      recoverWallMs: Math.round(recover.wallMs),
      recoverIterations,
      recoverGapMsPerMiB: Number((recover.gapMs / mib).toFixed(1)),
      heartbeatsMissedSave: Math.floor(save.gapMs / RTT_MS),
      heartbeatsMissedRecover: Math.floor(recover.gapMs / RTT_MS),
      loadAvg: loadAvg(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const sizes = arg("mib", "8,32").split(",").map(Number);
  const valueBytes = Number(arg("value-bytes", "1024"));
  process.stderr.write(`snapshot-stall: load ${loadAvg()}\n`);
  const points = [];
  for (const mib of sizes) {
    process.stderr.write(`  ${mib} MiB…\n`);
    points.push(await point(mib, valueBytes));
  }
  console.log(
    `\nsnapshot stall: the event loop's longest gap while a snapshot saves / recovers (rttMs ${RTT_MS})`,
  );
  console.table(points);
  console.log(`written ${writeResults("snapshot-stall", { rttMs: RTT_MS, valueBytes, points })}`);
  process.exit(0);
}
