/**
 * Typed errors of the log database and snapshot files. Callers distinguish them with
 * `instanceof`: an identity mismatch stops a NodeHost with advice, a corrupt file is
 * never read as data, an injected I/O fault (simulator) is retried or crashes the host.
 */

/** The data directory belongs to another NodeHost (raft address, deployment) or format. */
export class LogDBIdentityError extends Error {
  override readonly name = "LogDBIdentityError";
  constructor(
    readonly kind: "raftAddress" | "deploymentId" | "formatVersion",
    message: string,
  ) {
    super(message);
  }
}

/** One entry is larger than maxEntryBytes (counted with entrySizeBytes). */
export class EntryTooLargeError extends Error {
  override readonly name = "EntryTooLargeError";
  constructor(
    readonly shardId: number,
    readonly replicaId: number,
    readonly index: number,
    readonly sizeBytes: number,
    readonly maxEntryBytes: number,
  ) {
    super(
      `entry ${index} of shard ${shardId} replica ${replicaId} is ${sizeBytes} bytes, above maxEntryBytes ${maxEntryBytes}`,
    );
  }
}

/** One saveUpdates call carries more than maxBatchBytes of entries. */
export class BatchTooLargeError extends Error {
  override readonly name = "BatchTooLargeError";
  constructor(
    readonly sizeBytes: number,
    readonly maxBatchBytes: number,
  ) {
    super(
      `saveUpdates batch is ${sizeBytes} bytes of entries, above maxBatchBytes ${maxBatchBytes} (split it)`,
    );
  }
}

/** The database file is damaged: refuse it rather than return wrong data. */
export class LogDBCorruptError extends Error {
  override readonly name = "LogDBCorruptError";
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(
      `log database ${path} is corrupt: ${detail} (restore the data directory from a backup, or remove it and rejoin the shards from their peers)`,
    );
  }
}

/** Another process holds the data directory's log database (a running NodeHost, a restore). */
export class LogDBLockedError extends Error {
  override readonly name = "LogDBLockedError";
  constructor(readonly dir: string) {
    super(`data directory ${dir} is in use by another process (stop it, or use another --data-dir)`);
  }
}

/** A call after close(). */
export class LogDBClosedError extends Error {
  override readonly name = "LogDBClosedError";
  constructor(readonly operation: string) {
    super(`log database is closed (called ${operation} after close())`);
  }
}

/** An I/O fault injected by the in-memory database (simulator); nothing of the call was applied. */
export class LogDBIOError extends Error {
  override readonly name = "LogDBIOError";
  constructor(readonly operation: string) {
    super(`injected I/O fault in ${operation}: nothing was applied`);
  }
}

/** A call that breaks the log's rules (a gap, unordered entries, compacting past the snapshot). */
export class LogDBArgumentError extends Error {
  override readonly name = "LogDBArgumentError";
}

/** A snapshot file failed verification; names the file and what is wrong. */
export class SnapshotCorruptError extends Error {
  override readonly name = "SnapshotCorruptError";
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(
      `snapshot file ${path} is corrupt: ${detail} (it was not used; the replica needs another snapshot)`,
    );
  }
}
