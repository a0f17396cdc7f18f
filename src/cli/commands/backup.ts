import { resolve } from "node:path";
import { publishFile } from "../../fs/durable.ts";
import type { FileHandle } from "../../fs/filesystem.ts";
import { nodeFileSystem } from "../../fs/node.ts";
import { ApiError, type BackupInfo, type ClientTls, NodeHostClient } from "../../api/client.ts";
import { verifySnapshotFile } from "../../logdb/snapshotfile.ts";
import type { longboat } from "../../pb/longboat.js";
import type { BackupConfig } from "../config.ts";
import { progressLine } from "../progress.ts";
import { apiClientTls } from "../tls.ts";

const ROLE_LEADER = 4;

/**
 * Runs `longboat backup`: finds the NodeHost whose replica leads the shard, has it take a
 * snapshot holding every acknowledged write, streams the file here in chunks into
 * `<out>.tmp`, verifies its CRC-32 against what the NodeHost announced, makes it durable and
 * renames it to `<out>`. Returns the exit code (0 done, 1 failed).
 */
export async function run(config: BackupConfig): Promise<number> {
  const fs = nodeFileSystem;
  const out = resolve(config.out);
  const tmp = `${out}.tmp`;
  let file: FileHandle | null = null;
  try {
    if (fs.stat(out) !== null) throw new Error(`${out} exists; choose another --out or remove it`);
    const deadlineMs = Date.now() + config.timeoutMs;
    let info: BackupInfo;
    let handle: FileHandle;
    for (;;) {
      const source = await findSource(config, deadlineMs);
      const client = new NodeHostClient({
        addresses: [source],
        token: config.apiToken,
        timeoutMs: Math.max(1, deadlineMs - Date.now()),
        ...clientTls(config),
      });
      const progress = progressLine(process.stderr, `backup of shard ${config.shard}`);
      handle = fs.open(tmp, "create");
      file = handle;
      try {
        const into = handle;
        info = await client.backup(config.shard, (chunk) => into.write(chunk), {
          unconfirmed: config.withoutQuorum,
          onProgress: (done, i) => progress.update(done, i.sizeBytes),
        });
        break;
      } catch (error) {
        // A backup is a read: one cut by a leader change or a slow machine is safely started
        // again from the start, on the leader of the moment, while --timeout-ms lasts.
        if (
          !(error instanceof ApiError && RETRIED.has(error.code)) ||
          Date.now() + RETRY_PAUSE_MS > deadlineMs
        )
          throw error;
        handle.close();
        file = null;
        fs.remove(tmp);
        process.stderr.write(`longboat backup: ${error.message}; starting again\n`);
        await Bun.sleep(RETRY_PAUSE_MS);
      } finally {
        progress.end();
      }
    }
    check(tmp, info, config.shard);
    if (fs.stat(out) !== null)
      throw new Error(`${out} appeared while the backup ran; the backup is left in ${tmp}`);
    // Durable under its name: the file's fsync, the rename, the directory's fsync.
    publishFile(fs, tmp, out, handle);
    file = null;
    report(config, out, info);
    return 0;
  } catch (error) {
    file?.close();
    if (!(error instanceof Error && error.message.includes("left in"))) fs.remove(tmp);
    const message = error instanceof Error ? error.message : String(error);
    if (config.json) process.stdout.write(`${JSON.stringify({ ok: false, error: message })}\n`);
    else process.stderr.write(`longboat backup: ${message}\n`);
    return 1;
  }
}

/** Answers after which a backup starts again (nothing was or will be written by it). */
const RETRIED: ReadonlySet<string> = new Set(["unavailable", "deadline_exceeded", "unknown", "aborted"]);
const RETRY_PAUSE_MS = 200;

/** How often findSource asks again while the shard has no leader (an election under way). */
const LEADER_POLL_MS = 200;

/**
 * The API address to back up from: the leader's, or with --without-quorum the first holding
 * the shard. While the shard's leader is unknown or among these NodeHosts without having said
 * so yet (an election, a leader change), asks again until deadlineMs (--timeout-ms from the start).
 */
async function findSource(config: BackupConfig, deadlineMs: number): Promise<string> {
  for (;;) {
    const seen: string[] = [];
    const replicas = new Set<number>();
    const leaders = new Set<number>();
    for (const address of config.nodehost) {
      const client = new NodeHostClient({
        addresses: [address],
        token: config.apiToken,
        timeoutMs: 5000,
        ...clientTls(config),
      });
      let shard: longboat.nodehost.v1.IShardStatus | undefined;
      try {
        shard = (await client.status()).shards.find((s) => Number(s.shardId) === config.shard);
      } catch (error) {
        seen.push(`${address}: ${error instanceof ApiError ? error.code : String(error)}`);
        continue;
      }
      if (shard === undefined) {
        seen.push(`${address}: no replica of shard ${config.shard}`);
        continue;
      }
      if (config.withoutQuorum || Number(shard.role) === ROLE_LEADER) return address;
      const leader = Number(shard.leaderId ?? 0);
      replicas.add(Number(shard.replicaId));
      if (leader > 0) leaders.add(leader);
      seen.push(`${address}: ${leader > 0 ? `replica ${leader} leads` : "no leader known"}`);
    }
    // Waiting helps only while the leader may be one of these: unknown yet, or one of their replicas.
    const worthWaiting = replicas.size > 0 && [...leaders].every((id) => replicas.has(id));
    if (!worthWaiting || Date.now() + LEADER_POLL_MS > deadlineMs) {
      const hint = config.withoutQuorum
        ? ""
        : " (name the leader's NodeHost in --nodehost; for a shard that lost quorum see --without-quorum)";
      throw new Error(`no NodeHost to back up shard ${config.shard} from: ${seen.join("; ")}${hint}`);
    }
    await Bun.sleep(LEADER_POLL_MS);
  }
}

/** The file received is the snapshot the NodeHost announced: its own checksums, size, shard, CRC. */
function check(path: string, info: BackupInfo, shardId: number): void {
  const { meta, checksum } = verifySnapshotFile(nodeFileSystem, path);
  if (checksum !== info.checksum) {
    throw new Error(
      `the file received has CRC-32 0x${checksum.toString(16)}, the NodeHost announced 0x${info.checksum.toString(16)}`,
    );
  }
  if (meta.shardId !== shardId || meta.index !== info.index) {
    throw new Error(
      `the file received is of shard ${meta.shardId} at ${meta.index}, not shard ${shardId} at ${info.index}`,
    );
  }
}

function report(config: BackupConfig, out: string, info: BackupInfo): void {
  const crc = `0x${info.checksum.toString(16).padStart(8, "0")}`;
  const json = {
    ok: true,
    file: out,
    shard: info.shardId,
    replica: info.replicaId,
    from: info.address,
    index: info.index,
    term: info.term,
    sizeBytes: info.sizeBytes,
    checksum: crc,
    deploymentId: info.deploymentId,
    app: info.app,
  };
  const human = `backup of shard ${info.shardId} (replica ${info.replicaId} at ${info.address}, deployment ${info.deploymentId}) at index ${info.index}, term ${info.term}: ${info.sizeBytes} bytes, CRC-32 ${crc}, written to ${out}`;
  process.stdout.write(config.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

function clientTls(config: BackupConfig): { tls?: ClientTls } {
  const tls = apiClientTls(config);
  return tls ? { tls } : {};
}
