import { serveApi } from "../../api/server.ts";
import { Drummer } from "../../drummer/drummer.ts";
import { parseAddress } from "../address.ts";
import type { DrummerConfig } from "../config.ts";
import { checkDataDir } from "../datadir.ts";
import { jsonLogger } from "../log.ts";
import { apiServerTls } from "../tls.ts";
import { apiWarnings } from "./nodehost.ts";

/** How long SIGTERM waits for DrummerDB leadership to move before stopping anyway. */
const TRANSFER_WAIT_MS = 5000;

/**
 * Runs `longboat drummer`: a replica of the DrummerDB shard, the leader loop and the Drummer
 * API. SIGTERM/SIGINT hand DrummerDB leadership to a peer, then stop. Exit 1 when the drummer
 * cannot serve (its data belongs to another deployment).
 */
export async function run(config: DrummerConfig): Promise<number> {
  checkDataDir(config.dataDir, "the drummer's data");
  const log = jsonLogger(config.logLevel, undefined, { host: config.raftAddress });
  const tls =
    config.tlsCa && config.tlsCert && config.tlsKey
      ? { caFile: config.tlsCa, certFile: config.tlsCert, keyFile: config.tlsKey }
      : undefined;
  // The API's PEM files are read (and refused with the flag named) before anything starts.
  const apiTls = apiServerTls(config);
  const drummer = new Drummer({
    drummerId: config.id,
    raftAddress: config.raftAddress,
    apiAddress: config.apiAddress,
    peers: config.peers,
    join: config.join,
    dataDir: config.dataDir,
    deploymentId: config.deploymentId,
    rttMs: config.rttMs,
    deadTimeoutMs: config.deadTimeoutMs,
    reportIntervalMs: config.reportIntervalMs,
    maxRepairs: config.maxRepairs,
    tls,
    apiSecurity: {
      ...(config.apiToken === undefined ? {} : { token: config.apiToken }),
      ...(config.metricsToken === undefined ? {} : { metricsToken: config.metricsToken }),
      ...(apiTls ? { tls: apiTls.forward } : {}),
    },
    log,
  });
  let fatal: (message: string) => void = () => {};
  const failed = new Promise<string>((resolve) => {
    fatal = resolve;
  });
  drummer.onFatal = (message) => fatal(message);
  await drummer.start();
  const api = parseAddress(config.apiAddress);
  const server = await serveApi(drummer.api({ dashboardRefreshSeconds: config.refresh }), {
    hostname: api.host,
    port: api.port,
    log,
    ...(apiTls ? { tls: apiTls.serve } : {}),
  });
  for (const warning of apiWarnings(config)) log({ level: "warn", ...warning });
  log({
    level: "info",
    event: "drummer-serving",
    drummer: config.id,
    raftAddress: config.raftAddress,
    apiAddress: config.apiAddress,
  });
  const signal = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const outcome = await Promise.race([
    signal.then((s) => ({ signal: s })),
    failed.then((error) => ({ error })),
  ]);
  if ("error" in outcome) {
    process.stderr.write(`longboat drummer: ${outcome.error}\n`);
    await server.stop();
    await drummer.stop();
    return 1;
  }
  log({ level: "info", event: "stopping", signal: outcome.signal });
  const handedOver = await drummer.handOverLeadership(TRANSFER_WAIT_MS);
  log({ level: "info", event: "leadership-handed-over", done: handedOver });
  await server.stop();
  await drummer.stop();
  log({ level: "info", event: "stopped" });
  return 0;
}
