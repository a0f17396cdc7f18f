import type { Message } from "../raft/types.ts";

/** Format version of MessageBatch and SnapshotChunk this build speaks. */
export const WIRE_FORMAT_VERSION = 1;

/** Maps replicas to the raft address of the NodeHost hosting them; the engine keeps it current. */
export interface Registry {
  add(shardId: number, replicaId: number, address: string): void;
  remove(shardId: number, replicaId: number): void;
  removeShard(shardId: number): void;
  resolve(shardId: number, replicaId: number): string | undefined;
}

/** What a transport tells its NodeHost. Handlers never throw back into the transport. */
export interface TransportHandler {
  /** Messages received in one batch from sourceAddress, already validated. */
  onMessages(messages: Message[], sourceAddress: string): void;
  /** A message to this replica was dropped (queue full, connection down): Raft should probe again. */
  onUnreachable(shardId: number, replicaId: number): void;
  /** Outcome of sending a snapshot to (shardId, replicaId). */
  onSnapshotStatus(shardId: number, replicaId: number, failed: boolean): void;
  /**
   * A whole snapshot arrived and was verified. `message` is the InstallSnapshot message whose
   * `snapshot.filePath` names a local file that now belongs to the handler.
   */
  onSnapshotReceived(message: Message): void;
}

/**
 * Carries Raft messages and snapshots between NodeHosts.
 * Implementations: HTTP/2 (src/transport/http2.ts) and simulated (src/transport/sim.ts),
 * both run by one conformance suite (test/transport/transport.case.ts).
 */
export interface Transport {
  /** This NodeHost's raft address (host:port). */
  readonly address: string;
  start(handler: TransportHandler): Promise<void>;
  /** Queues a message; false when it was dropped (unknown target or full queue). */
  send(message: Message): boolean;
  /** Sends everything queued since the last flush, one batch per target NodeHost. */
  flush(): void;
  /**
   * Streams the snapshot file named by message.snapshot.filePath to message.to;
   * the outcome arrives through onSnapshotStatus. False when refused at once.
   */
  sendSnapshot(message: Message): boolean;
  stop(): Promise<void>;
}

/** Counters every transport keeps; drops and refusals are counted here and logged once per source. */
export interface TransportStats {
  messagesSent: number;
  batchesSent: number;
  bytesSent: number;
  /** Bytes of message batches received (as bytesSent: the batch payloads, before decoding). */
  bytesReceived: number;
  /** Bytes of snapshot streams received (chunks as framed), refused streams included. */
  snapshotBytesReceived: number;
  messagesReceived: number;
  batchesReceived: number;
  /** Batches from another deployment id, dropped whole. */
  batchesDroppedDeployment: number;
  /** Batches of a wire format version this build does not speak, dropped whole. */
  batchesDroppedFormat: number;
  /** Payloads that were not a decodable MessageBatch. */
  batchesMalformed: number;
  /** Messages that failed validation and were left out of their batch. */
  messagesInvalid: number;
  /** Frames refused for an over-size length or a bad checksum (their stream is closed). */
  framesRefused: number;
  /** Messages dropped at send because the target's queue was full (messages or bytes). */
  messagesDroppedQueueFull: number;
  /** Messages dropped at send because they exceed maxMessageBytes. */
  messagesDroppedTooLarge: number;
  /** Messages dropped because the target was unreachable (connect failure, backoff, down). */
  messagesDroppedUnreachable: number;
  snapshotsSent: number;
  snapshotsSendFailed: number;
  snapshotsReceived: number;
  /** Incoming snapshot streams refused (bad chunk, limits, deployment). */
  snapshotsRefused: number;
  connectFailures: number;
}

export function emptyStats(): TransportStats {
  return {
    messagesSent: 0,
    batchesSent: 0,
    bytesSent: 0,
    bytesReceived: 0,
    snapshotBytesReceived: 0,
    messagesReceived: 0,
    batchesReceived: 0,
    batchesDroppedDeployment: 0,
    batchesDroppedFormat: 0,
    batchesMalformed: 0,
    messagesInvalid: 0,
    framesRefused: 0,
    messagesDroppedQueueFull: 0,
    messagesDroppedTooLarge: 0,
    messagesDroppedUnreachable: 0,
    snapshotsSent: 0,
    snapshotsSendFailed: 0,
    snapshotsReceived: 0,
    snapshotsRefused: 0,
    connectFailures: 0,
  };
}
