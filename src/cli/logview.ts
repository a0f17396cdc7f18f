/**
 * Describes raft log entries for `longboat cmd log`: type, size and, where it can be read,
 * what the entry does (a kv command when the shard's app is kv, a config change, a session).
 */
import { longboat } from "../pb/longboat.js";
import { ConfigChangeDecodeError, decodeConfigChange } from "../raft/configchange.ts";
import { ConfigChangeType, ENTRY_HEADER_BYTES } from "../raft/types.ts";

/** Series ids that register and unregister a client session (src/engine/session.ts). */
const SERIES_ID_REGISTER = Number.MAX_SAFE_INTEGER - 1;
const SERIES_ID_UNREGISTER = Number.MAX_SAFE_INTEGER;
/** Longest value text shown before it is cut. */
const VALUE_TEXT_MAX = 40;

export interface EntryView {
  index: number;
  term: number;
  type: string;
  /** Payload + ENTRY_HEADER_BYTES, as the log counts it. */
  sizeBytes: number;
  command: string;
}

const CC_NAMES: Record<number, string> = {
  [ConfigChangeType.AddNode]: "add replica",
  [ConfigChangeType.RemoveNode]: "remove replica",
  [ConfigChangeType.AddNonVoting]: "add non-voting replica",
  [ConfigChangeType.AddWitness]: "add witness",
};

/** One entry as `cmd log` prints it; app is the shard's app name (kv commands are decoded). */
export function describeEntry(e: longboat.raft.v1.IEntry, app: string): EntryView {
  const cmd = e.cmd ?? new Uint8Array(0);
  const base = {
    index: Number(e.index ?? 0),
    term: Number(e.term ?? 0),
    sizeBytes: ENTRY_HEADER_BYTES + cmd.byteLength,
  };
  const type = Number(e.type ?? 0);
  if (type === longboat.raft.v1.EntryType.ENTRY_TYPE_CONFIG_CHANGE) {
    return { ...base, type: "config-change", command: configChangeText(cmd) };
  }
  if (type === longboat.raft.v1.EntryType.ENTRY_TYPE_METADATA)
    return { ...base, type: "metadata", command: "" };
  if (type === longboat.raft.v1.EntryType.ENTRY_TYPE_ENCODED)
    return { ...base, type: "encoded", command: "" };
  const series = Number(e.seriesId ?? 0);
  const client = Number(e.clientId ?? 0);
  if (series === SERIES_ID_REGISTER)
    return { ...base, type: "session", command: `register client ${client}` };
  if (series === SERIES_ID_UNREGISTER)
    return { ...base, type: "session", command: `unregister client ${client}` };
  if (cmd.byteLength === 0) return { ...base, type: "no-op", command: "" };
  const session = client === 0 ? "" : ` (client ${client} series ${series})`;
  const command = app === "kv" ? kvText(cmd) : `${cmd.byteLength} bytes`;
  return { ...base, type: "application", command: `${command}${session}` };
}

function configChangeText(cmd: Uint8Array): string {
  try {
    const cc = decodeConfigChange(cmd);
    const at = cc.type === ConfigChangeType.RemoveNode ? "" : ` at ${cc.address}`;
    const initial = cc.initialize ? " (initial member)" : ` (quoting config change ${cc.configChangeId})`;
    return `${CC_NAMES[cc.type]} ${cc.replicaId}${at}${initial}`;
  } catch (error) {
    if (error instanceof ConfigChangeDecodeError) return `undecodable: ${error.message}`;
    throw error;
  }
}

function kvText(cmd: Uint8Array): string {
  let c: longboat.nodehost.v1.KvCommand;
  try {
    c = longboat.nodehost.v1.KvCommand.decode(cmd);
  } catch {
    return `${cmd.byteLength} bytes (not a kv command)`;
  }
  if (c.put) return `put ${JSON.stringify(c.put.key)} = ${valueText(c.put.value)}`;
  if (c.delete) return `delete ${JSON.stringify(c.delete.key)}`;
  if (c.cas) {
    const expected = c.cas.expectedAbsent ? "absent" : valueText(c.cas.expected);
    return `cas ${JSON.stringify(c.cas.key)} from ${expected} to ${valueText(c.cas.value)}`;
  }
  if (c.add) return `add ${JSON.stringify(c.add.key)} ${Number(c.add.delta)}`;
  return `${cmd.byteLength} bytes (an empty kv command)`;
}

/** Printable UTF-8 shown quoted (cut at VALUE_TEXT_MAX characters), anything else as its size. */
function valueText(value: Uint8Array | null | undefined): string {
  const bytes = value ?? new Uint8Array(0);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return `<${bytes.byteLength} bytes>`;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(text)) return `<${bytes.byteLength} bytes>`;
  return text.length > VALUE_TEXT_MAX
    ? `${JSON.stringify(text.slice(0, VALUE_TEXT_MAX))}… (${bytes.byteLength} bytes)`
    : JSON.stringify(text);
}
