/**
 * NodeHostService/ExportSnapshot, a server stream: a snapshot of the shard that holds every
 * write completed before the call (NodeHost.syncExportSnapshot), sent as its info, then the
 * file in chunks. The file stays open for the stream's life and is closed however it ends
 * (done, an error, the client leaving). The transport's flow control paces the reads: a slow
 * client holds one chunk in memory, not the file.
 */
import { longboat } from "../pb/longboat.js";
import { ConnectError } from "./errors.ts";
import { type CallContext, type ServerStreamingMethod, serverStreaming } from "./rpc/service.ts";
import { describeIssues, ExportSnapshotSchema } from "./schemas.ts";
import type { NodeHostLike } from "./types.ts";

const pb = longboat.nodehost.v1;

/** Bytes of snapshot file per response message. */
export const EXPORT_CHUNK_BYTES = 1024 * 1024;
/** Exports running at once on one NodeHost; more are refused with resource_exhausted. */
export const MAX_EXPORTS = 8;

type ExportRequest = ReturnType<typeof ExportSnapshotSchema.parse>;

export function exportSnapshotMethod(
  nodehost: NodeHostLike,
  timeoutMs: (requested: number, call: CallContext) => number,
): ServerStreamingMethod<ExportRequest> {
  let running = 0;
  return serverStreaming<ExportRequest>(
    pb.ExportSnapshotRequest,
    pb.ExportSnapshotResponse,
    async function* (req, call) {
      if (running >= MAX_EXPORTS) {
        throw new ConnectError(
          "resource_exhausted",
          `${MAX_EXPORTS} snapshot exports are running on this NodeHost; try again when one is done`,
        );
      }
      running++;
      try {
        const opts = { timeoutMs: timeoutMs(req.timeoutMs, call), unconfirmed: req.unconfirmed };
        const e = await nodehost.syncExportSnapshot(req.shardId, opts);
        try {
          const { shardId, replicaId, index, term, sizeBytes, checksum, deploymentId, app } = e;
          yield { info: { shardId, replicaId, index, term, sizeBytes, checksum, deploymentId, app } };
          for (let offset = 0; offset < e.sizeBytes && !call.signal.aborted; ) {
            const data = e.read(offset, EXPORT_CHUNK_BYTES);
            offset += data.byteLength;
            yield { data };
          }
        } finally {
          e.close();
        }
      } finally {
        running--;
      }
    },
    (input, messageName) => {
      const parsed = ExportSnapshotSchema.safeParse(input);
      if (!parsed.success)
        throw new ConnectError("invalid_argument", describeIssues(messageName, parsed.error));
      return parsed.data;
    },
  );
}
