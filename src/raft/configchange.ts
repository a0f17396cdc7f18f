import { longboat } from "../pb/longboat.js";
import { type ConfigChange, type ConfigChangeType, ConfigChangeType as CCT } from "./types.ts";

/** Thrown when a ConfigChange entry's payload does not decode. */
export class ConfigChangeDecodeError extends Error {
  override readonly name = "ConfigChangeDecodeError";
}

/** Encodes a ConfigChange as the payload of a ConfigChange entry (longboat.raft.v1.ConfigChange). */
export function encodeConfigChange(cc: ConfigChange): Uint8Array {
  return longboat.raft.v1.ConfigChange.encode(cc).finish();
}

/** Decodes the payload of a ConfigChange entry; throws ConfigChangeDecodeError on bad bytes. */
export function decodeConfigChange(bytes: Uint8Array): ConfigChange {
  let d: longboat.raft.v1.ConfigChange;
  try {
    d = longboat.raft.v1.ConfigChange.decode(bytes);
  } catch (e) {
    throw new ConfigChangeDecodeError(
      `config change payload of ${bytes.byteLength} bytes does not decode: ${e}`,
    );
  }
  const type = Number(d.type) as ConfigChangeType;
  if (
    type !== CCT.AddNode &&
    type !== CCT.RemoveNode &&
    type !== CCT.AddNonVoting &&
    type !== CCT.AddWitness
  ) {
    throw new ConfigChangeDecodeError(`config change has unknown type ${type}`);
  }
  return {
    configChangeId: Number(d.configChangeId),
    type,
    replicaId: Number(d.replicaId),
    address: d.address,
    initialize: d.initialize,
  };
}
