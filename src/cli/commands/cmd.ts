/**
 * `longboat cmd <op>`: one request to the NodeHost API. This file creates the client and
 * hands the op to its family: cmd-kv.ts (put, get, delete, cas, add), cmd-admin.ts
 * (membership, leadership, snapshots, the log, data removal), cmd-status.ts, watch.ts; with
 * --drummer, status and the drummer ops go to cmd-drummer.ts.
 */
import { ApiError, NodeHostClient } from "../../api/client.ts";
import type { CmdConfig } from "../config.ts";
import { printErrorLine, printLine } from "../output.ts";
import { apiClientTls } from "../tls.ts";

/** Runs `longboat cmd <op>` against the NodeHost API; returns the exit code (0 done, 1 failed). */
export async function run(config: CmdConfig): Promise<number> {
  // status --drummer and the drummer ops (resolveCmdConfig keeps --nodehost out of them).
  if (config.drummer.length > 0 && config.nodehost.length === 0) {
    return (await import("./cmd-drummer.ts")).runDrummerCmd(config);
  }
  if (config.nodehost.length === 0) {
    printErrorLine(`longboat cmd ${config.request.op}: --nodehost is required`);
    return 2;
  }
  const tls = apiClientTls(config);
  if (config.insecureSkipVerify) {
    printErrorLine(
      "longboat cmd: --insecure-skip-verify: the server's certificate is not checked (development only)",
    );
  }
  const client = new NodeHostClient({
    addresses: config.nodehost,
    token: config.apiToken,
    timeoutMs: config.timeoutMs,
    ...(tls ? { tls } : {}),
  });
  try {
    return await execute(client, config);
  } catch (error) {
    const message =
      error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);
    if (config.json) printLine(JSON.stringify({ ok: false, error: message }));
    else printErrorLine(`longboat cmd ${config.request.op}: ${message}`);
    return 1;
  }
}

/** Each family of ops is imported when one of its ops runs (start-up time: docs/performance.md). */
async function execute(client: NodeHostClient, config: CmdConfig): Promise<number> {
  const r = config.request;
  switch (r.op) {
    case "status":
      return (await import("./cmd-status.ts")).status(config);
    case "health":
      return (await import("./cmd-status.ts")).health(config);
    case "put":
    case "get":
    case "scan":
    case "delete":
    case "cas":
    case "add":
      return (await import("./cmd-kv.ts")).kv(client, config, r);
    case "members":
    case "add-replica":
    case "remove-replica":
    case "transfer-leader":
    case "snapshot":
      return (await import("./cmd-admin.ts")).admin(client, config, r);
    case "compact":
      return (await import("./cmd-admin.ts")).compact(client, config);
    case "log":
      return (await import("./cmd-admin.ts")).printLog(client, config);
    case "remove-data":
      return (await import("./cmd-admin.ts")).removeData(client, config, r.replicaId);
    case "watch":
      return (await import("./watch.ts")).watch(config);
    default:
      throw new Error(`cmd ${r.op} talks to the drummers: give --drummer instead of --nodehost`);
  }
}
