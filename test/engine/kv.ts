// kv commands, queries and answers as the engine and tools tests write and read them.
import { longboat } from "../../src/pb/longboat.js";

const kv = longboat.nodehost.v1;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export const put = (key: string, value: string): Uint8Array =>
  kv.KvCommand.encode({ put: { key, value: utf8.encode(value) } }).finish();

export const get = (key: string): Uint8Array => kv.KvQuery.encode({ get: { key } }).finish();

/** The value a get answered, or null when the key is absent. */
export const readValue = (bytes: Uint8Array): string | null => {
  const r = kv.KvQueryResult.decode(bytes);
  return r.found ? fromUtf8.decode(r.value) : null;
};
