/**
 * What the dashboard shows, as typed views built from the Connect JSON answers of the NodeHost
 * API (Status) and the Drummer API (GetDeployment, ListDrummers, ListNodeHosts, ListShards,
 * ListDecisions) — the same answers `longboat cmd` reads. The server renders the first page from
 * these views and the browser script re-renders from them on every refresh, so both build them
 * with the functions here. Runs in the browser too: imports nothing.
 *
 * ```ts
 * const view = await loadNodeHost(connectJsonCaller("/", token));
 * const deployment = await loadDeployment(call);
 * ```
 */

/** Calls one method of one service with a JSON body; resolves to the Connect JSON answer. */
export type ConnectCall = (service: string, method: string, request: object) => Promise<unknown>;

export const NODEHOST_SERVICE = "longboat.nodehost.v1.NodeHostService";
export const DRUMMER_SERVICE = "longboat.drummer.v1.DrummerService";

/** An answer the API refused (HTTP status and Connect code), e.g. "unauthenticated". */
export class ApiCallError extends Error {
  override readonly name = "ApiCallError";
  constructor(
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export interface MemberView {
  replicaId: number;
  address: string;
  /** "voter", "non-voting" or "witness". */
  kind: string;
}

/** One replica a NodeHost runs, from its Status. */
export interface ReplicaView {
  shardId: number;
  replicaId: number;
  app: string;
  /** "leader", "follower", "candidate", "pre-vote-candidate", "non-voting", "witness", "unspecified". */
  role: string;
  term: number;
  /** 0: no known leader. */
  leaderId: number;
  commitIndex: number;
  appliedIndex: number;
  configChangeId: number;
  members: MemberView[];
  quiesced: boolean;
}

export interface NodeHostView {
  kind: "nodehost";
  raftAddress: string;
  apiAddress: string;
  region: string;
  deploymentId: string;
  replicas: ReplicaView[];
}

export interface DrummerView {
  drummerId: number;
  raftAddress: string;
  apiAddress: string;
  isLeader: boolean;
}

export interface HostReplicaView {
  shardId: number;
  replicaId: number;
  app: string;
  isLeader: boolean;
  leaderReplicaId: number;
  appliedIndex: number;
  pending: boolean;
  /** Raft term and commit index as the host last reported them (0: not reported). */
  term: number;
  commitIndex: number;
}

/** A NodeHost's live figures over the interval before its last report (HostFigures). */
export interface HostFiguresView {
  /** Numbers the figures of one NodeHost process: a new number is a new point. */
  sample: number;
  intervalMs: number;
  proposalsPerSecond: number;
  /** Undefined when no proposal was answered in the interval. */
  p99Ms: number | undefined;
  fsyncsPerSecond: number;
}

export interface HostView {
  raftAddress: string;
  apiAddress: string;
  region: string;
  /** "alive", "dead", "unknown". */
  state: string;
  lastReportAgeMs: number;
  reported: boolean;
  replicas: HostReplicaView[];
  /** From its last report; undefined when it sent none (its first report, an older NodeHost). */
  figures: HostFiguresView | undefined;
}

export interface ShardMemberView {
  replicaId: number;
  raftAddress: string;
  apiAddress: string;
  /** "ok", "starting", "stopped", "dead", "lost", "unknown". */
  state: string;
  isLeader: boolean;
  /** From its NodeHost's last report; undefined when none reported it. */
  appliedIndex: number | undefined;
  /** The leader's applied index minus this member's (0 for the leader); undefined when unknown. */
  lag: number | undefined;
}

export const SHARD_HEALTHS = [
  "ok",
  "under-replicated",
  "repairing",
  "no-quorum",
  "unplaced",
  "placing",
  "unknown",
] as const;

export interface ShardView {
  shardId: number;
  app: string;
  replicaCount: number;
  configChangeId: number;
  leaderReplicaId: number;
  /** One of SHARD_HEALTHS. */
  health: string;
  reason: string;
  /** The leader replica's term and commit index, as its NodeHost last reported them (0: unknown). */
  term: number;
  commitIndex: number;
  members: ShardMemberView[];
}

export interface DecisionView {
  decisionId: number;
  /** "create", "add", "join", "remove", "restore", "kill". */
  kind: string;
  shardId: number;
  replicaId: number;
  replicaAddress: string;
  executorAddress: string;
  reason: string;
  repair: boolean;
  createdMs: number;
  endedMs: number;
  /** "in-flight", "done", "failed". */
  state: string;
  outcome: string;
}

/** At most this many finished decisions are shown (the newest). */
export const DECISIONS_SHOWN = 50;

export interface DeploymentView {
  kind: "deployment";
  deploymentId: string;
  bootstrapped: boolean;
  leaderDrummerId: number;
  /** Whether the drummer that answered holds the leader's (current) view. */
  fromLeader: boolean;
  drummers: DrummerView[];
  nodehosts: HostView[];
  shards: ShardView[];
  /** Shards per health, every health present. */
  healthCounts: Record<string, number>;
  inFlight: DecisionView[];
  /** The newest DECISIONS_SHOWN finished decisions, newest first. */
  finished: DecisionView[];
  repairsStarted: number;
  repairsDone: number;
  repairsFailed: number;
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {};
const list = (v: unknown): Json[] => (Array.isArray(v) ? v.map(obj) : []);
const str = (v: unknown): string =>
  typeof v === "string" ? v : v === undefined || v === null ? "" : String(v);
const bool = (v: unknown): boolean => v === true;
/** A uint64 in the JSON mapping (a decimal string) or a number; anything else is 0. */
function num(v: unknown): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : 0;
  return Number.isFinite(n) ? n : 0;
}

/** "ROLE_PRE_VOTE_CANDIDATE" → "pre-vote-candidate" (prefix "ROLE_"); numbers through `names`. */
export function enumName(v: unknown, prefix: string, names: readonly string[]): string {
  if (typeof v === "number") return names[v] ?? "unknown";
  const s = str(v);
  const bare = s.startsWith(prefix) ? s.slice(prefix.length) : s;
  return bare === "" ? "unspecified" : bare.toLowerCase().replaceAll("_", "-");
}

const ROLES = [
  "unspecified",
  "follower",
  "candidate",
  "pre-vote-candidate",
  "leader",
  "non-voting",
  "witness",
];
const HOST_STATES = ["unspecified", "alive", "dead", "unknown"];
const HEALTHS = ["unspecified", ...SHARD_HEALTHS];
const MEMBER_STATES = ["unspecified", "ok", "starting", "stopped", "dead", "lost", "unknown"];
const DECISION_KINDS = ["unspecified", "create", "add", "join", "remove", "restore", "kill"];
const DECISION_STATES = ["unspecified", "in-flight", "done", "failed"];

/** The view of a NodeHost's Status answer (Connect JSON). */
export function nodeHostView(status: unknown): NodeHostView {
  const s = obj(status);
  const replicas = list(s.shards).map((r): ReplicaView => {
    const m = obj(r.membership);
    const members = [
      ...list(m.addresses).map((a) => ({
        replicaId: num(a.replicaId),
        address: str(a.address),
        kind: "voter",
      })),
      ...list(m.nonVotings).map((a) => ({
        replicaId: num(a.replicaId),
        address: str(a.address),
        kind: "non-voting",
      })),
      ...list(m.witnesses).map((a) => ({
        replicaId: num(a.replicaId),
        address: str(a.address),
        kind: "witness",
      })),
    ].sort((a, b) => a.replicaId - b.replicaId);
    return {
      shardId: num(r.shardId),
      replicaId: num(r.replicaId),
      app: str(r.app),
      role: enumName(r.role, "ROLE_", ROLES),
      term: num(r.term),
      leaderId: num(r.leaderId),
      commitIndex: num(r.commitIndex),
      appliedIndex: num(r.appliedIndex),
      configChangeId: num(m.configChangeId),
      members,
      quiesced: bool(r.quiesced),
    };
  });
  replicas.sort((a, b) => a.shardId - b.shardId || a.replicaId - b.replicaId);
  return {
    kind: "nodehost",
    raftAddress: str(s.raftAddress),
    apiAddress: str(s.apiAddress),
    region: str(s.region),
    deploymentId: str(s.deploymentId),
    replicas,
  };
}

export async function loadNodeHost(call: ConnectCall): Promise<NodeHostView> {
  return nodeHostView(await call(NODEHOST_SERVICE, "Status", {}));
}

function decisionView(d: Json): DecisionView {
  return {
    decisionId: num(d.decisionId),
    kind: enumName(d.kind, "DECISION_KIND_", DECISION_KINDS),
    shardId: num(d.shardId),
    replicaId: num(d.replicaId),
    replicaAddress: str(d.replicaAddress),
    executorAddress: str(d.executorAddress),
    reason: str(d.reason),
    repair: bool(d.repair),
    createdMs: num(d.createdMs),
    endedMs: num(d.endedMs),
    state: enumName(d.state, "DECISION_STATE_", DECISION_STATES),
    outcome: str(d.outcome),
  };
}

/** A number from the JSON mapping of a double (a number, or a string such as "1.5"); else 0. */
function dbl(v: unknown): number {
  const n = typeof v === "number" ? v : typeof v === "string" ? Number(v) : 0;
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

function figuresView(v: unknown): HostFiguresView | undefined {
  if (v === null || typeof v !== "object") return undefined;
  const f = obj(v);
  const proposals = dbl(f.proposalsPerSecond);
  return {
    sample: num(f.sample),
    intervalMs: num(f.intervalMs),
    proposalsPerSecond: proposals,
    p99Ms: proposals > 0 ? dbl(f.proposalP99Ms) : undefined,
    fsyncsPerSecond: dbl(f.fsyncsPerSecond),
  };
}

/** The answers a deployment view is built from, each as the Drummer API's Connect JSON. */
export interface DeploymentAnswers {
  deployment: unknown;
  drummers: unknown;
  nodehosts: unknown;
  shards: unknown;
  decisions: unknown;
}

/** The view of one drummer's answers. */
export function deploymentView(a: DeploymentAnswers): DeploymentView {
  const dep = obj(a.deployment);
  const drummersAnswer = obj(a.drummers);
  const hostsAnswer = obj(a.nodehosts);
  const shardsAnswer = obj(a.shards);
  const decisionsAnswer = obj(a.decisions);
  const leaderDrummerId = num(dep.leaderDrummerId) || num(drummersAnswer.leaderDrummerId);
  const drummers = list(drummersAnswer.drummers)
    .map((d) => ({
      drummerId: num(d.drummerId),
      raftAddress: str(d.raftAddress),
      apiAddress: str(d.apiAddress),
      isLeader: bool(d.isLeader) || (leaderDrummerId > 0 && num(d.drummerId) === leaderDrummerId),
    }))
    .sort((x, y) => x.drummerId - y.drummerId);
  const nodehosts = list(hostsAnswer.nodehosts)
    .map(
      (h): HostView => ({
        raftAddress: str(h.raftAddress),
        apiAddress: str(h.apiAddress),
        region: str(h.region),
        state: enumName(h.state, "HOST_STATE_", HOST_STATES),
        lastReportAgeMs: num(h.lastReportAgeMs),
        reported: bool(h.reported),
        replicas: list(h.replicas)
          .map((r) => ({
            shardId: num(r.shardId),
            replicaId: num(r.replicaId),
            app: str(r.app),
            isLeader: bool(r.isLeader),
            leaderReplicaId: num(r.leaderReplicaId),
            appliedIndex: num(r.appliedIndex),
            pending: bool(r.pending),
            term: num(r.term),
            commitIndex: num(r.commitIndex),
          }))
          .sort((x, y) => x.shardId - y.shardId || x.replicaId - y.replicaId),
        figures: figuresView(h.figures),
      }),
    )
    .sort((x, y) => x.region.localeCompare(y.region) || x.raftAddress.localeCompare(y.raftAddress));
  // Applied index of each (shard, replica) as its live NodeHost last reported it.
  const applied = new Map<string, number>();
  for (const h of nodehosts) {
    if (h.state === "dead") continue;
    for (const r of h.replicas) applied.set(`${r.shardId}/${r.replicaId}`, r.appliedIndex);
  }
  const shards = list(shardsAnswer.shards)
    .map((s): ShardView => {
      const def = obj(s.definition);
      const shardId = num(def.shardId);
      const leaderReplicaId = num(s.leaderReplicaId);
      const leaderApplied = applied.get(`${shardId}/${leaderReplicaId}`);
      const members = list(s.members)
        .map((m): ShardMemberView => {
          const replicaId = num(m.replicaId);
          const appliedIndex = applied.get(`${shardId}/${replicaId}`);
          const lag =
            appliedIndex === undefined || leaderApplied === undefined
              ? undefined
              : Math.max(0, leaderApplied - appliedIndex);
          return {
            replicaId,
            raftAddress: str(m.raftAddress),
            apiAddress: str(m.apiAddress),
            state: enumName(m.state, "MEMBER_STATE_", MEMBER_STATES),
            isLeader: bool(m.isLeader) || (leaderReplicaId > 0 && replicaId === leaderReplicaId),
            appliedIndex,
            lag,
          };
        })
        .sort((x, y) => x.replicaId - y.replicaId);
      return {
        shardId,
        app: str(def.app),
        replicaCount: num(def.replicaCount),
        configChangeId: num(s.configChangeId),
        leaderReplicaId,
        health: enumName(s.health, "SHARD_HEALTH_", HEALTHS),
        reason: str(s.reason),
        term: num(s.term),
        commitIndex: num(s.commitIndex),
        members,
      };
    })
    .sort((x, y) => x.shardId - y.shardId);
  const healthCounts: Record<string, number> = Object.fromEntries(SHARD_HEALTHS.map((h) => [h, 0]));
  for (const s of shards) healthCounts[s.health] = (healthCounts[s.health] ?? 0) + 1;
  const finished = list(decisionsAnswer.finished)
    .map(decisionView)
    .sort((x, y) => y.endedMs - x.endedMs || y.decisionId - x.decisionId)
    .slice(0, DECISIONS_SHOWN);
  return {
    kind: "deployment",
    deploymentId: str(dep.deploymentId),
    bootstrapped: bool(dep.bootstrapped),
    leaderDrummerId,
    fromLeader: bool(shardsAnswer.fromLeader) && bool(hostsAnswer.fromLeader),
    drummers,
    nodehosts,
    shards,
    healthCounts,
    inFlight: list(decisionsAnswer.inFlight)
      .map(decisionView)
      .sort((x, y) => x.decisionId - y.decisionId),
    finished,
    repairsStarted: num(decisionsAnswer.repairsStarted),
    repairsDone: num(decisionsAnswer.repairsDone),
    repairsFailed: num(decisionsAnswer.repairsFailed),
  };
}

/** Reads a deployment from one drummer (it forwards to the leader drummer where it must). */
export async function loadDeployment(call: ConnectCall): Promise<DeploymentView> {
  const [deployment, drummers, nodehosts, shards, decisions] = await Promise.all([
    call(DRUMMER_SERVICE, "GetDeployment", {}),
    call(DRUMMER_SERVICE, "ListDrummers", {}),
    call(DRUMMER_SERVICE, "ListNodeHosts", {}),
    call(DRUMMER_SERVICE, "ListShards", {}),
    call(DRUMMER_SERVICE, "ListDecisions", { includeFinished: true }),
  ]);
  return deploymentView({ deployment, drummers, nodehosts, shards, decisions });
}

/**
 * A ConnectCall over fetch (Connect protocol, JSON), relative to `base` ("" for the page's own
 * origin), with the bearer token when one is given.
 */
export function connectJsonCaller(
  fetchFn: (url: string, init: RequestInit) => Promise<Response>,
  base: string,
  token: string | undefined,
): ConnectCall {
  return async (service, method, request) => {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "connect-protocol-version": "1",
    };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetchFn(`${base}/${service}/${method}`, {
      method: "POST",
      headers,
      body: JSON.stringify(request),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApiCallError("unavailable", `${method}: HTTP ${res.status}, not JSON`);
    }
    if (res.status !== 200) {
      const e = obj(body);
      throw new ApiCallError(str(e.code) || "unknown", str(e.message) || `${method}: HTTP ${res.status}`);
    }
    return body;
  };
}
