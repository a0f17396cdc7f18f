/**
 * DrummerDB's bytes: the canonical encoding of its state (snapshot payload and hash input) and
 * the updates proposed to it. Decoded protobuf objects are normalised into plain records with
 * every field present (protobufjs leaves zero-valued fields on the prototype).
 */
import { longboat } from "../../pb/longboat.js";
import type {
  Decision,
  DecisionKind,
  DecisionState,
  DrummerRecord,
  HostRecord,
  RegionCount,
  ShardDefinition,
  ShardMember,
  ShardView,
} from "../types.ts";
import { addInFlight, type DbState, emptyState } from "./state.ts";

const pb = longboat.drummer.v1;

type Obj = Record<string, unknown> | null | undefined;

const num = (v: unknown): number => (typeof v === "number" ? v : 0);
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const bool = (v: unknown): boolean => v === true;
const list = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);
const nums = (v: unknown): number[] => list(v).map((x) => num(x));

export function toRegion(o: Obj): RegionCount {
  return { region: str(o?.region), count: num(o?.count) };
}

export function toMember(o: Obj): ShardMember {
  return { replicaId: num(o?.replicaId), raftAddress: str(o?.raftAddress) };
}

export function toDefinition(o: Obj): ShardDefinition {
  return {
    shardId: num(o?.shardId),
    app: str(o?.app),
    replicaCount: num(o?.replicaCount),
    regions: list(o?.regions).map(toRegion),
  };
}

export function toView(o: Obj): ShardView {
  return {
    shardId: num(o?.shardId),
    configChangeId: num(o?.configChangeId),
    members: list(o?.members).map(toMember),
    initialMembers: list(o?.initialMembers).map(toMember),
    removedReplicaIds: nums(o?.removedReplicaIds),
    nextReplicaId: num(o?.nextReplicaId),
    unstartedReplicaIds: nums(o?.unstartedReplicaIds),
    wantedRegion: str(o?.wantedRegion),
  };
}

export function toHost(o: Obj): HostRecord {
  return { raftAddress: str(o?.raftAddress), apiAddress: str(o?.apiAddress), region: str(o?.region) };
}

export function toDrummer(o: Obj): DrummerRecord {
  return { drummerId: num(o?.drummerId), apiAddress: str(o?.apiAddress) };
}

export function toDecision(o: Obj): Decision {
  return {
    decisionId: num(o?.decisionId),
    kind: num(o?.kind) as DecisionKind,
    shardId: num(o?.shardId),
    replicaId: num(o?.replicaId),
    replicaAddress: str(o?.replicaAddress),
    executorAddress: str(o?.executorAddress),
    app: str(o?.app),
    initialMembers: list(o?.initialMembers).map(toMember),
    configChangeId: num(o?.configChangeId),
    reason: str(o?.reason),
    repair: bool(o?.repair),
    createdMs: num(o?.createdMs),
    endedMs: num(o?.endedMs),
    state: num(o?.state) as DecisionState,
    outcome: str(o?.outcome),
    leaderTerm: num(o?.leaderTerm),
    currentMembers: list(o?.currentMembers).map(toMember),
  };
}

const byNumber =
  <T>(key: (x: T) => number) =>
  (a: T, b: T) =>
    key(a) - key(b);
const byText =
  <T>(key: (x: T) => string) =>
  (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

/** The canonical bytes of a state: every list sorted by its key, so equal states encode equally. */
export function encodeState(s: DbState): Uint8Array {
  return pb.DrummerState.encode({
    version: s.version,
    deploymentId: s.deploymentId,
    bootstrapped: s.bootstrapped,
    timeMs: s.timeMs,
    leaderTerm: s.leaderTerm,
    leaderDrummerId: s.leaderDrummerId,
    nextDecisionId: s.nextDecisionId,
    shards: [...s.shards.values()].sort(byNumber((d) => d.shardId)),
    views: [...s.views.values()].sort(byNumber((v) => v.shardId)),
    hosts: [...s.hosts.values()].sort(byText((h) => h.raftAddress)),
    drummers: [...s.drummers.values()].sort(byNumber((d) => d.drummerId)),
    inFlight: [...s.inFlight.values()].sort(byNumber((d) => d.decisionId)),
    finished: s.finished,
    repairingShardIds: [...s.repairing].sort((a, b) => a - b),
    counters: s.counters,
  }).finish();
}

/** Decodes a state written by encodeState; throws on bytes that are not one. */
export function decodeState(bytes: Uint8Array): DbState {
  const m = pb.DrummerState.toObject(pb.DrummerState.decode(bytes), { defaults: true }) as Obj;
  const s = emptyState();
  s.version = num(m?.version);
  s.deploymentId = num(m?.deploymentId);
  s.bootstrapped = bool(m?.bootstrapped);
  s.timeMs = num(m?.timeMs);
  s.leaderTerm = num(m?.leaderTerm);
  s.leaderDrummerId = num(m?.leaderDrummerId);
  s.nextDecisionId = num(m?.nextDecisionId);
  for (const d of list(m?.shards).map(toDefinition)) s.shards.set(d.shardId, d);
  for (const v of list(m?.views).map(toView)) s.views.set(v.shardId, v);
  for (const h of list(m?.hosts).map(toHost)) s.hosts.set(h.raftAddress, h);
  for (const d of list(m?.drummers).map(toDrummer)) s.drummers.set(d.drummerId, d);
  for (const d of list(m?.inFlight).map(toDecision)) addInFlight(s, d);
  s.finished = list(m?.finished).map(toDecision);
  s.repairing = new Set(nums(m?.repairingShardIds));
  const c = m?.counters as Obj;
  s.counters = {
    repairsStarted: num(c?.repairsStarted),
    repairsDone: num(c?.repairsDone),
    repairsFailed: num(c?.repairsFailed),
    decisionsDone: num(c?.decisionsDone),
    decisionsFailed: num(c?.decisionsFailed),
    itemsRejected: num(c?.itemsRejected),
    repairsStopped: num(c?.repairsStopped),
  };
  return s;
}

// ---- updates ----

export interface SchedulerStep {
  leaderTerm: number;
  nowMs: number;
  maxRepairs: number;
  hosts: HostRecord[];
  views: Pick<ShardView, "shardId" | "configChangeId" | "members">[];
  decisions: Decision[];
  ends: { decisionId: number; failed: boolean; outcome: string }[];
  repairsDoneShardIds: number[];
  /** Shards whose repair stops unfinished: its next step cannot be taken (the leader logs why). */
  repairsStoppedShardIds: number[];
}

export type DbUpdate =
  | { kind: "setDeployment"; deploymentId: number }
  | { kind: "createShard"; shard: ShardDefinition }
  | { kind: "setRegions"; shardId: number; regions: RegionCount[] }
  | { kind: "bootstrap" }
  | { kind: "registerDrummer"; drummer: DrummerRecord }
  | { kind: "leaderStarted"; leaderTerm: number; drummerId: number }
  | { kind: "schedulerStep"; step: SchedulerStep };

export function encodeUpdate(u: DbUpdate): Uint8Array {
  switch (u.kind) {
    case "setDeployment":
      return pb.DrummerUpdate.encode({ setDeployment: { deploymentId: u.deploymentId } }).finish();
    case "createShard":
      return pb.DrummerUpdate.encode({ createShard: { shard: u.shard } }).finish();
    case "setRegions":
      return pb.DrummerUpdate.encode({ setRegions: { shardId: u.shardId, regions: u.regions } }).finish();
    case "bootstrap":
      return pb.DrummerUpdate.encode({ bootstrap: {} }).finish();
    case "registerDrummer":
      return pb.DrummerUpdate.encode({ registerDrummer: { drummer: u.drummer } }).finish();
    case "leaderStarted":
      return pb.DrummerUpdate.encode({
        leaderStarted: { leaderTerm: u.leaderTerm, drummerId: u.drummerId },
      }).finish();
    case "schedulerStep":
      return pb.DrummerUpdate.encode({ schedulerStep: u.step }).finish();
  }
}

/** Decodes an update; null when the bytes are not a DrummerUpdate or carry none. */
export function decodeUpdate(bytes: Uint8Array): DbUpdate | null {
  let m: Obj;
  try {
    m = pb.DrummerUpdate.toObject(pb.DrummerUpdate.decode(bytes), { defaults: false, oneofs: true }) as Obj;
  } catch {
    return null;
  }
  const o = (k: string) => m?.[k] as Obj;
  switch (m?.update) {
    case "setDeployment":
      return { kind: "setDeployment", deploymentId: num(o("setDeployment")?.deploymentId) };
    case "createShard":
      return { kind: "createShard", shard: toDefinition(o("createShard")?.shard as Obj) };
    case "setRegions":
      return {
        kind: "setRegions",
        shardId: num(o("setRegions")?.shardId),
        regions: list(o("setRegions")?.regions).map(toRegion),
      };
    case "bootstrap":
      return { kind: "bootstrap" };
    case "registerDrummer":
      return { kind: "registerDrummer", drummer: toDrummer(o("registerDrummer")?.drummer as Obj) };
    case "leaderStarted":
      return {
        kind: "leaderStarted",
        leaderTerm: num(o("leaderStarted")?.leaderTerm),
        drummerId: num(o("leaderStarted")?.drummerId),
      };
    case "schedulerStep":
      return { kind: "schedulerStep", step: toStep(o("schedulerStep")) };
    default:
      return null;
  }
}

function toStep(o: Obj): SchedulerStep {
  return {
    leaderTerm: num(o?.leaderTerm),
    nowMs: num(o?.nowMs),
    maxRepairs: num(o?.maxRepairs),
    hosts: list(o?.hosts).map(toHost),
    views: list(o?.views).map((v) => {
      const view = toView(v);
      return { shardId: view.shardId, configChangeId: view.configChangeId, members: view.members };
    }),
    decisions: list(o?.decisions).map(toDecision),
    ends: list(o?.ends).map((e) => ({
      decisionId: num(e?.decisionId),
      failed: bool(e?.failed),
      outcome: str(e?.outcome),
    })),
    repairsDoneShardIds: nums(o?.repairsDoneShardIds),
    repairsStoppedShardIds: nums(o?.repairsStoppedShardIds),
  };
}
