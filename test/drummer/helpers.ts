/** Builders for DrummerDB updates and scheduler steps in tests. */
import { type DbUpdate, encodeUpdate, type SchedulerStep } from "../../src/drummer/db/codec.ts";
import { DrummerDB } from "../../src/drummer/db/statemachine.ts";
import { type Decision, DecisionKind, type ShardMember } from "../../src/drummer/types.ts";

const text = new TextDecoder();

export function step(fields: Partial<SchedulerStep> = {}): SchedulerStep {
  return {
    leaderTerm: 1,
    nowMs: 1000,
    maxRepairs: 4,
    hosts: [],
    views: [],
    decisions: [],
    ends: [],
    repairsDoneShardIds: [],
    repairsStoppedShardIds: [],
    ...fields,
  };
}

export function decision(fields: Partial<Decision> & Pick<Decision, "kind" | "shardId">): Decision {
  return {
    decisionId: 0,
    replicaId: 0,
    replicaAddress: "h1:7001",
    executorAddress: "h1:7001",
    app: "",
    initialMembers: [],
    configChangeId: 0,
    reason: "test",
    repair: false,
    createdMs: 0,
    endedMs: 0,
    state: 1,
    outcome: "",
    leaderTerm: 0,
    currentMembers: [],
    ...fields,
  };
}

export const members = (...addresses: string[]): ShardMember[] =>
  addresses.map((raftAddress, i) => ({ replicaId: i + 1, raftAddress }));

/** The creates of a launch of shardId over the given addresses (replica i+1 at addresses[i]). */
export function launch(shardId: number, ...addresses: string[]): Decision[] {
  const initialMembers = members(...addresses);
  return initialMembers.map((m) =>
    decision({
      kind: DecisionKind.Create,
      shardId,
      replicaId: m.replicaId,
      replicaAddress: m.raftAddress,
      executorAddress: m.raftAddress,
      initialMembers,
    }),
  );
}

/** A DrummerDB with an apply helper that numbers entries and decodes the result. */
export class TestDB {
  readonly db = new DrummerDB();
  private index = 0;

  apply(u: DbUpdate | Uint8Array): { code: number; message: string } {
    const cmd = u instanceof Uint8Array ? u : encodeUpdate(u);
    const [r] = this.db.update([{ index: ++this.index, cmd }]);
    return { code: r!.value, message: text.decode(r!.data) };
  }

  get state() {
    return this.db.state;
  }

  /** A bootstrapped DB with leader term 1 and the given shards of 3 kv replicas defined. */
  static ready(...shardIds: number[]): TestDB {
    const t = new TestDB();
    t.apply({ kind: "setDeployment", deploymentId: 7 });
    for (const shardId of shardIds) {
      t.apply({ kind: "createShard", shard: { shardId, app: "kv", replicaCount: 3, regions: [] } });
    }
    t.apply({ kind: "bootstrap" });
    t.apply({ kind: "leaderStarted", leaderTerm: 1, drummerId: 1 });
    return t;
  }

  step(fields: Partial<SchedulerStep>) {
    return this.apply({ kind: "schedulerStep", step: step(fields) });
  }
}
