/**
 * Bugs the simulator found in other layers, one test per bug, named after the seed that
 * found it. A skipped test is a bug still open: its comment says what was violated and how
 * to replay it; the owner fixes the bug and removes the `.skip`. The seeds run without the
 * faults added later (`laterFaults: false`: leader churn, slow apply; some of these seeds
 * are leader-churn seeds now). Other changes since (pauses stall the engine, half the
 * session-protected writes are increments) changed their schedules anyway: they stay as
 * regression runs of those seeds, and each comment says what the original run hit.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { MemoryLogDB } from "../../src/logdb/memory.ts";
import { longboat } from "../../src/pb/longboat.js";
import { type Entry, makeEntry } from "../../src/raft/types.ts";

import { SIM_TEST_WALL_MS } from "../support/limits.ts";

const pb = longboat.raft.v1;
// Simulated time: each seed is bounded in simulated ms; the wall clock is only a backstop.
setDefaultTimeout(SIM_TEST_WALL_MS);

/*
 * Seed 1 (found 2026-11-24): followers crash-loop with
 *   StateMachineManagerError: shard 1 replica 1: entry 4 has type undefined, not supported here
 * and the committed oracle saw the same entry as `3/undefined/undefined/…` on a follower and
 * `3/0/0/…` on the leader. The transport hands the engine decoded protobuf entries whose
 * zero-valued fields (type 0, clientId 0, seriesId 0, key 0…) live on the prototype
 * (src/transport/codec.ts normaliseMessage); MemoryLogDB copies entries with `{ ...e }`
 * (saveUpdates and entries(), src/logdb/memory.ts), which keeps own properties only, so an
 * Application entry received over the wire comes back with `type: undefined` and the rsm
 * refuses it after a restart. Fix: copy entries field by field in MemoryLogDB (makeEntry(e)),
 * or have normaliseMessage build plain entries. Fixed in 52e9370 (MemoryLogDB) and de87c1d
 * (transport); this test feeds MemoryLogDB a raw protobufjs entry.
 */
test("seed 1: an entry received over the wire keeps its zero-valued fields through MemoryLogDB", () => {
  const sent = makeEntry({ term: 3, index: 1, cmd: new Uint8Array([1]) });
  // What protobufjs decodes: zero-valued fields live on the prototype, not on the object.
  const decoded = pb.Entry.decode(pb.Entry.encode(sent).finish()) as unknown as Entry;
  expect(Object.hasOwn(decoded, "type")).toBe(false);
  const db = new MemoryLogDB();
  db.saveUpdates([{ shardId: 1, replicaId: 2, entries: [decoded], state: null, snapshot: null }]);
  const [back] = db.entries({ shardId: 1, replicaId: 2 }, 1, 2, 1 << 20);
  expect(back?.type).toBe(0);
  expect(back?.clientId).toBe(0);
  expect(back?.seriesId).toBe(0);
});

/*
 * Seeds 2 and 11 (liveness, found 2026-11-24): after healing, a follower stays one or two
 * entries behind forever and the shard never converges, e.g. seed 2: leader of shard 1 has
 * last=42 commit=41, remote 3 `match=40 next=43 state=Replicate inflight=2`, follower 3 has
 * last=40. The Replicate messages carrying 41..42 were lost; with no new proposals the leader
 * never resends: src/raft/raft.ts handleHeartbeatResp calls
 * `this.sendReplicate(m.from, r, false)` when r.match < lastIndex, but r.next is already past
 * lastIndex, so there are no entries and allowEmpty=false sends nothing. etcd sends an empty
 * append at next-1 there; the follower rejects it and the leader falls back to probing.
 * Fix: allowEmpty=true on that path (or becomeRetry with next = match + 1 when nothing new);
 * fixed in 9d17e30.
 * Seed 1 is the same bug for a replica added by a membership change: its remote starts at
 * `match=0 next=last+1` in Retry, and the joiner never receives a single entry.
 *   LONGBOAT_SIM_SEED=2 npx bun test test/sim/sim.test.ts
 */
for (const seed of [1, 2, 11]) {
  test(`seed ${seed}: a follower whose last Replicate messages were lost catches up after healing`, async () => {
    const { runSeed } = await import("./run.ts");
    const r = await runSeed({ seed, laterFaults: false });
    expect(r.violation?.message ?? null).toBeNull();
  });
}

/*
 * Seeds 387, 712 and 742 (liveness, found by the 10,000-seed soak): after healing a follower
 * stays behind for ever; the leader's remote for it is `state=Snapshot match=0 next=1`. The
 * leader's InstallSnapshot was refused at once by the transport (the follower's host was down,
 * or the outbound snapshot streams were full): Engine.send only reported the follower
 * unreachable, which the core ignores in Snapshot state, and no snapshot status ever came.
 * Fixed in src/engine/engine.ts send(): a refused snapshot is reported as failed.
 *   LONGBOAT_SIM_SEED=712 npx bun test test/sim/sim.test.ts
 */
for (const seed of [387, 712, 742]) {
  test(`seed ${seed}: a snapshot the transport refuses at once does not leave the follower behind for ever`, async () => {
    const { runSeed } = await import("./run.ts");
    const r = await runSeed({ seed, laterFaults: false });
    expect(r.violation?.message ?? null).toBeNull();
  });
}

/*
 * Seed 182 (linearizability, found when every other seed began replicating in small
 * messages): a follower forwarded a no-op-session put to the leader, the network delivered
 * the Propose twice, and the leader appended it twice (indexes 124 and 126), so a later write
 * by the same client was overwritten by the old value. Fixed in src/raft/raft.ts: a leader
 * drops forwarded entries whose request key it appended recently.
 *   LONGBOAT_SIM_SEED=182 npx bun test test/sim/sim.test.ts
 */
test("seed 182: a forwarded proposal duplicated by the network is applied once", async () => {
  const { runSeed } = await import("./run.ts");
  const r = await runSeed({ seed: 182, laterFaults: false });
  expect(r.violation?.message ?? null).toBeNull();
});
