import { LogDBIdentityError } from "./errors.ts";
import type { NodeHostIdentity } from "./types.ts";

export type StoredIdentity = NodeHostIdentity;

/**
 * Refuses a data directory created for another raft address or deployment, or by another
 * format, with a message that says which and how to proceed.
 */
export function checkIdentity(dir: string, stored: StoredIdentity, wanted: NodeHostIdentity): void {
  if (stored.formatVersion > wanted.formatVersion) {
    throw new LogDBIdentityError(
      "formatVersion",
      `data directory ${dir} was written by a newer Longboat (format ${stored.formatVersion}, this build reads ${wanted.formatVersion}) (upgrade Longboat, or use a new --data-dir)`,
    );
  }
  if (stored.formatVersion < wanted.formatVersion) {
    throw new LogDBIdentityError(
      "formatVersion",
      `data directory ${dir} uses format ${stored.formatVersion}, this build needs ${wanted.formatVersion} and has no migration for it (use the Longboat that wrote it, or a new --data-dir)`,
    );
  }
  if (stored.raftAddress !== wanted.raftAddress) {
    throw new LogDBIdentityError(
      "raftAddress",
      `data directory ${dir} belongs to raft address ${stored.raftAddress}, not ${wanted.raftAddress} (use the original --raft-address or a new --data-dir)`,
    );
  }
  if (stored.deploymentId !== wanted.deploymentId) {
    throw new LogDBIdentityError(
      "deploymentId",
      `data directory ${dir} belongs to deployment ${stored.deploymentId}, not ${wanted.deploymentId} (use the original --deployment-id or a new --data-dir)`,
    );
  }
}
