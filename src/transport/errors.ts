/** Why a frame stream was refused; the stream that carried it is closed. */
export type FrameErrorKind = "oversize" | "checksum";

/** A frame on a stream was malformed: the receiver closes that stream and keeps serving others. */
export class FrameError extends Error {
  override readonly name = "FrameError";
  constructor(
    readonly kind: FrameErrorKind,
    detail: string,
  ) {
    super(`refused frame (${kind}): ${detail}`);
  }
}

/** A snapshot chunk stream broke a rule; the partial snapshot is discarded. */
export class SnapshotChunkError extends Error {
  override readonly name = "SnapshotChunkError";
}

/** Transport options broke a rule; one message per rule broken. */
export class TransportConfigError extends Error {
  override readonly name = "TransportConfigError";
}
