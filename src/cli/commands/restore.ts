import { RestoreError, type RestorePoint, restoreReplica } from "../../tools/restore.ts";
import type { RestoreConfig } from "../config.ts";

/**
 * Runs `longboat restore` (offline): rewrites one replica's state in a data directory from a
 * backup with a new membership, then says how to start it. Returns the exit code.
 */
export async function run(config: RestoreConfig): Promise<number> {
  try {
    const r = restoreReplica(
      {
        dataDir: config.dataDir,
        shardId: config.shard,
        replicaId: config.replica,
        members: config.members,
        from: config.from,
        deploymentId: config.deploymentId,
      },
      crashPointForTests(),
    );
    const self = config.members.find((m) => m.replicaId === config.replica)!;
    const members = config.members.map((m) => `${m.replicaId}@${m.address}`);
    const start = [
      "longboat nodehost",
      `--data-dir ${config.dataDir}`,
      `--raft-address ${self.address}`,
      "--api-address <host:port>",
      ...(config.deploymentId === 1 ? [] : [`--deployment-id ${config.deploymentId}`]),
      `--shard 'id=${config.shard},app=${r.app},replica=${config.replica},members=${members.join(";")}'`,
    ].join(" ");
    const json = {
      ok: true,
      dataDir: config.dataDir,
      shard: config.shard,
      replica: config.replica,
      index: r.index,
      term: r.term,
      app: r.app,
      members,
      removed: r.membership.removed,
      snapshot: r.snapshotPath,
      sizeBytes: r.sizeBytes,
    };
    const human = [
      `restored replica ${config.replica} of shard ${config.shard} in ${config.dataDir} from ${config.from}: index ${r.index}, term ${r.term}, app ${r.app}, ${r.sizeBytes} bytes`,
      `members: ${members.join(" ")}${r.membership.removed.length > 0 ? `; removed for good: ${r.membership.removed.join(" ")}` : ""}`,
      "restore every member the same way, then start each, e.g.:",
      `  ${start}`,
    ].join("\n");
    process.stdout.write(config.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof RestoreError)) throw error;
    if (config.json) process.stdout.write(`${JSON.stringify({ ok: false, error: error.message })}\n`);
    else process.stderr.write(`longboat restore: ${error.message}\n`);
    return 1;
  }
}

/**
 * Test-only: LONGBOAT_TEST_RESTORE_KILL_AT=<point> makes the process kill itself (SIGKILL, as
 * kill -9 would) when the restore reaches that point (test/process/restore-kill.test.ts). The
 * compiled binary never reads it: build.ts defines NODE_ENV as production.
 */
function crashPointForTests(): (point: RestorePoint) => void {
  if (process.env.NODE_ENV === "production") return () => {};
  const target = process.env.LONGBOAT_TEST_RESTORE_KILL_AT;
  if (target === undefined || target === "") return () => {};
  return (point) => {
    if (point === target) process.kill(process.pid, "SIGKILL");
  };
}
