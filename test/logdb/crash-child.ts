/**
 * Child of crash.test.ts: opens the log database in argv[2], continues the deterministic
 * workload from the last committed batch, and prints `ack <g>` once batch g is durable. It
 * runs until killed or after argv[3] batches. argv[4] "async": batches go through
 * saveUpdatesAsync with up to ASYNC_AHEAD queued (the engine's double buffering), acked from
 * their done; otherwise through saveUpdates, acked when it returned.
 */
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { LOGDB_FORMAT_VERSION } from "../../src/logdb/types.ts";
import { modelAfter, nextBatch } from "./crash-model.ts";

const dir = process.argv[2] as string;
const maxBatches = Number(process.argv[3] ?? 1_000_000);
const mode = process.argv[4] ?? "sync";
/** Batches queued at once in async mode. */
const ASYNC_AHEAD = 2; // crash.test.ts allows this many batches beyond the last ack
/**
 * The journal is moved into the per-replica tables every few batches, so kills land in those
 * moves too. Moves of some replicas of a row only (the policy's moveEntries) are not used here:
 * each costs a move, an fsync, after nearly every batch, which makes the kills run past their
 * limits on a loaded machine; journal-crash.test.ts tries every commit of such moves instead.
 */
const CHECKPOINT_RECORDS = 5;
const db = openSqliteLogDB({
  dir,
  identity: { raftAddress: "crash:1", deploymentId: 1, formatVersion: LOGDB_FORMAT_VERSION },
  checkpoint: { records: CHECKPOINT_RECORDS },
});
let g = db.readLogState({ shardId: 1, replicaId: 1 }).state.commit;
const model = modelAfter(g);
process.stdout.write(`start ${g}\n`);
if (mode === "async") {
  let queued = 0;
  let n = 0;
  const pump = () => {
    while (queued < ASYNC_AHEAD && n < maxBatches) {
      g++;
      n++;
      queued++;
      const mine = g;
      db.saveUpdatesAsync(nextBatch(model, g), (error) => {
        if (error !== null) {
          console.error(`batch ${mine} failed: ${error.message}`);
          process.exit(1);
        }
        queued--;
        process.stdout.write(`ack ${mine}\n`);
        if (n >= maxBatches && queued === 0) db.close();
        else pump();
      });
    }
  };
  pump();
} else {
  for (let n = 0; n < maxBatches; n++) {
    g++;
    db.saveUpdates(nextBatch(model, g));
    process.stdout.write(`ack ${g}\n`);
  }
  db.close();
}
