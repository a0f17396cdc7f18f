import { existsSync, statSync } from "node:fs";
import { createNodeHostApi } from "../../api/app.ts";
import { NodeHostMetrics } from "../../api/nodehost-metrics.ts";
import { serveApi } from "../../api/server.ts";
import { MasterClient } from "../../master/client.ts";
import { nodeHostSamples } from "../../master/host-figures.ts";
import { NodeHost } from "../../nodehost.ts";
import { builtinApps, loadPlugin, PluginError, UnknownAppError } from "../../statemachine/registry.ts";
import { parseAddress } from "../address.ts";
import { type ApiServerConfig, ConfigError, isLoopback, type NodeHostConfig } from "../config.ts";
import { checkDataDir } from "../datadir.ts";
import { HOOK_KILL_GRACE_MS, startHooks } from "../hooks.ts";
import { jsonLogger } from "../log.ts";
import { apiServerTls, masterSecurity } from "../tls.ts";

/**
 * Starts the configured replicas together, so the new ones' bootstrap records share one log
 * write and one fsync (LogDB.saveBootstrapAsync) instead of one each. Every start is settled
 * before returning; the first failure in configuration order is thrown.
 */
export async function startConfiguredReplicas(
  nh: Pick<NodeHost, "startReplica">,
  shards: NodeHostConfig["shards"],
  apps: ReturnType<typeof builtinApps>,
): Promise<void> {
  const results = await Promise.allSettled(
    shards.map((s) => {
      const members: Record<number, string> = {};
      for (const m of s.members) members[m.replicaId] = m.address;
      return nh.startReplica(
        s.join ? {} : members,
        s.join ?? false,
        apps.get(s.app),
        {
          shardId: s.shardId,
          replicaId: s.replicaId,
          ...(s.snapshotEntries === undefined ? {} : { snapshotEntries: s.snapshotEntries }),
          ...(s.compactionOverhead === undefined ? {} : { compactionOverhead: s.compactionOverhead }),
          ...(s.autoCompact === undefined ? {} : { disableAutoCompactions: !s.autoCompact }),
        },
        { app: s.app },
      );
    }),
  );
  for (const r of results) if (r.status === "rejected") throw r.reason;
}

/** How long SIGTERM waits for leadership to move before stopping anyway. */
const TRANSFER_WAIT_MS = 5000;

/**
 * Runs `longboat nodehost`: a NodeHost with the static shards of its configuration and the
 * NodeHost API; SIGTERM/SIGINT hand leadership to a peer, then stop cleanly. Returns the exit code.
 */
export async function run(config: NodeHostConfig): Promise<number> {
  const log = jsonLogger(config.logLevel, undefined, { host: config.raftAddress });
  const apps = builtinApps();
  // A plugin that cannot be loaded and an unknown app are usage errors (exit 2), found
  // before anything starts.
  try {
    for (const path of config.plugin) {
      if (!existsSync(path)) {
        throw new ConfigError(
          `--plugin ${path}: no such file (give the path of a .ts or .js module whose default export is { name, create } or an array of them)`,
        );
      }
      const names = await loadPlugin(path, apps);
      log({ level: "info", event: "plugin-loaded", path, apps: names });
    }
    for (const s of config.shards) apps.get(s.app);
  } catch (e) {
    if (e instanceof PluginError) throw new ConfigError(`--plugin ${e.message}`);
    if (e instanceof UnknownAppError) throw new ConfigError(`--shard: ${e.message}`);
    throw e;
  }
  checkDataDir(config.dataDir, "the NodeHost's data");
  const tls =
    config.tlsCa && config.tlsCert && config.tlsKey
      ? { caFile: config.tlsCa, certFile: config.tlsCert, keyFile: config.tlsKey }
      : undefined;
  // Files and directories the API needs are checked before the NodeHost opens its data.
  const apiTls = apiServerTls(config);
  const drummers = masterSecurity(config);
  checkExportDir(config.snapshotExportDir);
  const metrics = new NodeHostMetrics();
  const nh = new NodeHost({
    nodeHostDir: config.dataDir,
    raftAddress: config.raftAddress,
    rttMs: config.rttMs,
    deploymentId: config.deploymentId,
    tls,
    log,
    onSave: (durationMs, entryCount) => metrics.observeSave(durationMs, entryCount),
    onSnapshot: (durationMs) => metrics.observeSnapshot(durationMs),
  });
  // Before any replica starts, so the hooks see every leadership change from the first.
  const hooks = startHooks(nh, config, log);
  await nh.ready;
  await startConfiguredReplicas(nh, config.shards, apps);
  const api = parseAddress(config.apiAddress);
  const app = createNodeHostApi({
    nodehost: nh,
    apiToken: config.apiToken,
    apiAddress: config.apiAddress,
    region: config.region,
    log,
    metrics,
    ...(config.metricsToken === undefined ? {} : { metricsToken: config.metricsToken }),
    dashboardRefreshSeconds: config.refresh,
    ...(config.snapshotExportDir === undefined ? {} : { snapshotExportDir: config.snapshotExportDir }),
    ...(apiTls ? { forwardTls: apiTls.forward } : {}),
  });
  metrics.watchNodeHost(nh);
  const server = await serveApi(app, {
    hostname: api.host,
    port: api.port,
    log,
    ...(apiTls ? { tls: apiTls.serve } : {}),
  });
  for (const warning of apiWarnings(config)) log({ level: "warn", ...warning });
  // Master mode: the drummers decide which replicas run here (--shard is refused with --master).
  const master =
    config.master.length > 0
      ? new MasterClient({
          nodehost: nh,
          masters: config.master,
          apps,
          apiAddress: config.apiAddress,
          region: config.region,
          security: drummers,
          log,
          liveSamples: nodeHostSamples(metrics, nh),
        })
      : null;
  master?.start();
  log({
    level: "info",
    event: "nodehost-started",
    raftAddress: config.raftAddress,
    apiAddress: config.apiAddress,
    shards: config.shards.map((s) => s.shardId),
    master: config.master,
  });
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log({ level: "info", event: "stopping", signal });
  master?.stop();
  await handOverLeadership(nh, log);
  await server.stop();
  await nh.stop();
  // Stopping told every hook "none" for the shards here: let those notifications run.
  if (hooks && !(await hooks.drain(config.hookTimeoutMs + HOOK_KILL_GRACE_MS + 1000))) {
    log({ level: "warn", event: "hooks-unfinished", detail: "hooks still running at exit are stopped" });
    await hooks.close();
  }
  log({ level: "info", event: "stopped" });
  return 0;
}

/** Asks every shard this host leads to move leadership to another full member, and waits a bounded time. */
async function handOverLeadership(nh: NodeHost, log: (e: Record<string, unknown>) => void): Promise<void> {
  const led = nh.getNodeHostInfo({ skipLogInfo: true }).shards.filter((s) => s.isLeader);
  for (const s of led) {
    const target = s.membership.addresses.find((m) => m.replicaId !== s.replicaId);
    if (!target) continue;
    try {
      nh.requestLeaderTransfer(s.shardId, target.replicaId);
    } catch (error) {
      log({ level: "warn", event: "leader-transfer-failed", shard: s.shardId, error: String(error) });
    }
  }
  const deadline = Date.now() + TRANSFER_WAIT_MS;
  while (Date.now() < deadline) {
    const still = nh
      .getNodeHostInfo({ skipLogInfo: true })
      .shards.filter((s) => s.isLeader && s.membership.addresses.length > 1);
    if (still.length === 0) break;
    await Bun.sleep(20);
  }
  const remaining = nh
    .getNodeHostInfo({ skipLogInfo: true })
    .shards.filter((s) => s.isLeader)
    .map((s) => s.shardId);
  log({
    level: "info",
    event: "leadership-handed-over",
    shards: led.map((s) => s.shardId),
    stillLeading: remaining,
  });
}

/** --snapshot-export-dir must be an existing directory (refused at start, not at the first export). */
function checkExportDir(dir: string | undefined): void {
  if (dir === undefined) return;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ConfigError(`--snapshot-export-dir ${dir} is not an existing directory (create it first)`);
  }
}

/** What an operator should hear at every start about how open the API is. */
export function apiWarnings(
  config: ApiServerConfig & { apiAddress: string; apiToken?: string },
): { event: string; detail: string }[] {
  const host = parseAddress(config.apiAddress).host;
  if (isLoopback(host)) return [];
  const warnings: { event: string; detail: string }[] = [];
  if (config.apiToken === undefined && config.apiTlsCa === undefined) {
    warnings.push({
      event: "api-insecure",
      detail: `the API at ${config.apiAddress} needs no token and no client certificate (--api-insecure): anyone who reaches it can read and write every shard`,
    });
  }
  if (config.apiToken !== undefined && config.apiTlsCert === undefined) {
    warnings.push({
      event: "api-token-in-clear",
      detail: `the API at ${config.apiAddress} is cleartext: --api-token travels unencrypted; serve it with --api-tls-cert and --api-tls-key`,
    });
  }
  return warnings;
}
