/** `longboat cmd` ops on the kv app: put, get, scan, delete, cas, add. */
import type { NodeHostClient, WriteOptions } from "../../api/client.ts";
import type { CmdConfig, CmdRequest } from "../config.ts";
import { printErrorLine } from "../output.ts";
import { print, shardOf } from "./cmd-output.ts";

const text = new TextDecoder();

type KvRequest = Extract<CmdRequest, { op: "put" | "get" | "scan" | "delete" | "cas" | "add" }>;

/** Runs one kv op; returns the exit code. */
export async function kv(client: NodeHostClient, config: CmdConfig, r: KvRequest): Promise<number> {
  switch (r.op) {
    case "put": {
      const value = await putValue(config, r.value);
      const { index } = await write(client, config, (opts) =>
        client.put(shardOf(config), r.key, value, opts),
      );
      print(config, `ok, committed at index ${index}`, { ok: true, index });
      return 0;
    }
    case "scan":
      return scan(client, config);
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

/**
 * The value of `cmd put`: the <value> argument, stdin when it is "-", or --file's bytes
 * (values are bytes: a file or stdin is stored as it is, not decoded).
 */
async function putValue(config: CmdConfig, value: string | undefined): Promise<string | Uint8Array> {
  if (config.file !== undefined) {
    const file = Bun.file(config.file);
    if (!(await file.exists())) throw new Error(`--file ${config.file}: no such file`);
    return new Uint8Array(await file.arrayBuffer());
  }
  if (value === "-") return new Uint8Array(await Bun.stdin.arrayBuffer());
  return value ?? "";
}

/** Keys fetched per read of a scan (the kv app's maximum page). */
const SCAN_PAGE = 1000;

/**
 * `cmd scan [--prefix p] [--limit n]`: the keys in byte order with their values, read page by
 * page (each page a linearizable read), one "key<TAB>value" line each; --json prints one
 * object with every pair. Exit 0 also when no key matches (the scan itself succeeded).
 */
async function scan(client: NodeHostClient, config: CmdConfig): Promise<number> {
  const shard = shardOf(config);
  const prefix = config.prefix;
  const end = prefixEnd(prefix);
  const limit = config.limit ?? Number.POSITIVE_INFINITY;
  const pairs: { key: string; value: Uint8Array }[] = [];
  let start = prefix;
  let more = false;
  for (;;) {
    const page = await client.scan(shard, { start, end, limit: Math.min(SCAN_PAGE, limit - pairs.length) });
    pairs.push(...page.pairs);
    more = page.more;
    if (!page.more || page.pairs.length === 0) break;
    if (pairs.length >= limit) break;
    start = `${page.pairs.at(-1)!.key}\u0000`; // the next key after the last one
  }
  if (config.json) {
    const json = pairs.map((p) => ({ key: p.key, value: text.decode(p.value) }));
    print(config, "", { ok: true, pairs: json, more });
  } else if (pairs.length === 0) {
    printErrorLine(`no keys${prefix === "" ? "" : ` with prefix "${prefix}"`} in shard ${shard}`);
  } else {
    const lines = pairs.map((p) => `${p.key}\t${text.decode(p.value)}`);
    if (more) lines.push(`(stopped at --limit ${config.limit}; more keys follow)`);
    print(config, lines.join("\n"), null);
  }
  return 0;
}

/**
 * The first key after every key that starts with prefix ("" for none: no bound): prefix with
 * its last code point incremented. UTF-8 byte order is code point order, so every key that
 * starts with prefix is below it, and every key from it on does not start with prefix.
 */
export function prefixEnd(prefix: string): string {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last === 0x10ffff) continue; // no code point after it: carry into the one before
    const next = last === 0xd7ff ? 0xe000 : last + 1; // skip the surrogates
    return points.join("") + String.fromCodePoint(next);
  }
  return "";
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
