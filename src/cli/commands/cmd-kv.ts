/** `longboat cmd` ops on the kv app: put, get, delete, cas, add. */
import type { NodeHostClient, WriteOptions } from "../../api/client.ts";
import type { CmdConfig, CmdRequest } from "../config.ts";
import { printErrorLine } from "../output.ts";
import { print, shardOf } from "./cmd-output.ts";

const text = new TextDecoder();

type KvRequest = Extract<CmdRequest, { op: "put" | "get" | "delete" | "cas" | "add" }>;

/** Runs one kv op; returns the exit code. */
export async function kv(client: NodeHostClient, config: CmdConfig, r: KvRequest): Promise<number> {
  switch (r.op) {
    case "put":
      await write(client, config, (opts) => client.put(shardOf(config), r.key, r.value, opts));
      print(config, "ok", { ok: true });
      return 0;
    case "get": {
      const value = await client.get(shardOf(config), r.key);
      if (value === null) {
        if (config.json) print(config, "", { ok: true, found: false });
        else printErrorLine(`key "${r.key}" not found in shard ${shardOf(config)}`);
        return 1;
      }
      print(config, text.decode(value), { ok: true, found: true, value: text.decode(value) });
      return 0;
    }
    case "delete": {
      const existed = await write(client, config, (opts) => client.delete(shardOf(config), r.key, opts));
      print(config, existed ? "deleted" : "not found", { ok: true, existed });
      return existed ? 0 : 1;
    }
    case "cas": {
      const swapped = await write(client, config, (opts) =>
        client.cas(shardOf(config), r.key, r.expected, r.value, opts),
      );
      print(config, swapped ? "swapped" : "not swapped: the current value differs", { ok: true, swapped });
      return swapped ? 0 : 1;
    }
    case "add": {
      const value = await write(client, config, (opts) => client.add(shardOf(config), r.key, r.delta, opts));
      print(config, String(value), { ok: true, value });
      return 0;
    }
  }
}

/** Time closing a write's session may take after the write is done (it is only tidying up). */
const SESSION_CLOSE_MS = 1000;

/**
 * Runs one kv write in a client session of its own (unless --no-session): the client may then
 * retry it after a timeout or a failover, and it still applies exactly once. The session is
 * closed afterwards at best effort: an unclosed one is evicted from the shard's table in time.
 */
async function write<T>(
  client: NodeHostClient,
  config: CmdConfig,
  fn: (opts: WriteOptions) => Promise<T>,
): Promise<T> {
  if (config.noSession) return fn({});
  const session = await client.openSession(shardOf(config));
  try {
    return await fn({ session });
  } finally {
    await client.closeSession(session, { timeoutMs: SESSION_CLOSE_MS }).catch(() => {});
  }
}
