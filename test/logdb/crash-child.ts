/**
 * Child of crash.test.ts: opens the log database in argv[2], continues the deterministic
 * workload from the last committed batch, and prints `ack <g>` after each saveUpdates
 * returned (the write is durable). It runs until killed or after argv[3] batches.
 */
import { openSqliteLogDB } from "../../src/logdb/sqlite.ts";
import { modelAfter, nextBatch } from "./crash-model.ts";

const dir = process.argv[2] as string;
const maxBatches = Number(process.argv[3] ?? 1_000_000);
const db = openSqliteLogDB({ dir, identity: { raftAddress: "crash:1", deploymentId: 1, formatVersion: 1 } });
let g = db.readLogState({ shardId: 1, replicaId: 1 }).state.commit;
const model = modelAfter(g);
process.stdout.write(`start ${g}\n`);
for (let n = 0; n < maxBatches; n++) {
  g++;
  db.saveUpdates(nextBatch(model, g));
  process.stdout.write(`ack ${g}\n`);
}
db.close();
