/**
 * `longboat cmd` as a client of the drummers: tries each --drummer address in turn and
 * follows the leader (its API address learned from ListDrummers is tried first), and reads
 * the whole deployment into one Snapshot for `status` and `wait`.
 *
 * Retrying is safe by construction: a call that certainly did not reach a drummer, or that a
 * drummer refused as not applied (`unavailable`), goes to the next one. A write whose outcome
 * is unknown (no answer in time) is retried once elsewhere, and an answer that says "done
 * already" is then checked against what was asked (CreateShard twice with the same definition
 * is the same shard; with another it is the user's conflict).
 */
import type { FetchLike } from "../../api/types.ts";
import type { DrummerMethod } from "../../drummer/api/schemas.ts";
import {
  type DrummerCall,
  DrummerCallError,
  type DrummerSecurity,
  drummerCaller,
} from "../../drummer/client.ts";
import { type Env, realEnv } from "../../env.ts";

// ---- the deployment as cmd shows it --------------------------------------------------------

export interface DrummerView {
  id: number;
  raftAddress: string;
  apiAddress: string;
  leader: boolean;
  /** It answered GetDeployment (which needs a working DrummerDB shard) within the timeout. */
  healthy: boolean;
  error?: string;
}

export type HostState = "alive" | "dead" | "unknown";

export interface NodeHostView {
  raftAddress: string;
  apiAddress: string;
  region: string;
  state: HostState;
  /** Milliseconds since the leader last heard it; null when never. */
  lastReportAgeMs: number | null;
  replicas: number;
}

export type ShardHealth =
  | "ok"
  | "under-replicated"
  | "repairing"
  | "no quorum"
  | "unplaced"
  | "placing"
  | "unknown";
export type MemberState = "ok" | "starting" | "stopped" | "dead" | "lost" | "unknown";

export interface MemberView {
  replicaId: number;
  raftAddress: string;
  state: MemberState;
  leader: boolean;
}

export interface ShardView {
  id: number;
  app: string;
  replicas: number;
  regions: { region: string; count: number }[];
  members: MemberView[];
  leaderReplicaId: number;
  health: ShardHealth;
  reason: string;
}

export interface DecisionView {
  id: number;
  kind: string;
  shardId: number;
  replicaId: number;
  replicaAddress: string;
  executorAddress: string;
  repair: boolean;
  reason: string;
}

/** Everything `status` shows, read from the drummers at one moment. */
export interface Snapshot {
  deployment: { id: number; bootstrapped: boolean; leaderDrummerId: number } | null;
  drummers: DrummerView[];
  nodehosts: NodeHostView[];
  shards: ShardView[];
  unknownShardIds: number[];
  inFlight: DecisionView[];
  repairs: { started: number; done: number; failed: number } | null;
  /** The shard and host views come from the leader's live view (not committed records only). */
  fromLeader: boolean;
  /** The leader has listened for less than a dead timeout: host and shard states are provisional. */
  listening: boolean;
  /** What could not be read, in words (a drummer down, no leader). */
  errors: string[];
}

const HOST_STATES: HostState[] = ["unknown", "alive", "dead", "unknown"];
const SHARD_HEALTHS: ShardHealth[] = [
  "unknown",
  "ok",
  "under-replicated",
  "repairing",
  "no quorum",
  "unplaced",
  "placing",
  "unknown",
];
const MEMBER_STATES: MemberState[] = ["unknown", "ok", "starting", "stopped", "dead", "lost", "unknown"];
const DECISION_KINDS = ["unspecified", "create", "add", "join", "remove", "restore", "kill"];

type Obj = Record<string, unknown>;
const n = (v: unknown): number => Number(v ?? 0);
const s = (v: unknown): string => (typeof v === "string" ? v : "");
const list = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);
const pick = <T>(names: T[], v: unknown): T => names[n(v)] ?? names[0]!;

export function drummersOf(r: Obj): DrummerView[] {
  return list(r.drummers).map((d) => ({
    id: n(d.drummerId),
    raftAddress: s(d.raftAddress),
    apiAddress: s(d.apiAddress),
    leader: d.isLeader === true,
    healthy: false,
  }));
}

export function nodeHostsOf(r: Obj): NodeHostView[] {
  return list(r.nodehosts).map((h) => ({
    raftAddress: s(h.raftAddress),
    apiAddress: s(h.apiAddress),
    region: s(h.region),
    state: pick(HOST_STATES, h.state),
    lastReportAgeMs: h.reported === true ? n(h.lastReportAgeMs) : null,
    replicas: list(h.replicas).length,
  }));
}

export function shardsOf(r: Obj): ShardView[] {
  return list(r.shards).map((x) => {
    const def = (x.definition ?? {}) as Obj;
    return {
      id: n(def.shardId),
      app: s(def.app),
      replicas: n(def.replicaCount),
      regions: list(def.regions).map((g) => ({ region: s(g.region), count: n(g.count) })),
      members: list(x.members).map((m) => ({
        replicaId: n(m.replicaId),
        raftAddress: s(m.raftAddress),
        state: pick(MEMBER_STATES, m.state),
        leader: m.isLeader === true,
      })),
      leaderReplicaId: n(x.leaderReplicaId),
      health: pick(SHARD_HEALTHS, x.health),
      reason: s(x.reason),
    };
  });
}

export function decisionsOf(r: Obj): DecisionView[] {
  return list(r.inFlight).map((d) => ({
    id: n(d.decisionId),
    kind: pick(DECISION_KINDS, d.kind),
    shardId: n(d.shardId),
    replicaId: n(d.replicaId),
    replicaAddress: s(d.replicaAddress),
    executorAddress: s(d.executorAddress),
    repair: d.repair === true,
    reason: s(d.reason),
  }));
}

// ---- calling the drummers ------------------------------------------------------------------

/** Methods that change DrummerDB (the others only read). */
const WRITES: ReadonlySet<DrummerMethod> = new Set([
  "CreateShard",
  "SetRegions",
  "Bootstrap",
  "AddDrummer",
  "RemoveDrummer",
]);

/** Codes that say the drummer did not do it and another one may: try the next address. */
const NOT_DONE = new Set(["unavailable", "unimplemented"]);
/**
 * Refusals of the request itself (the same from every drummer): they end the call. Any other
 * code is the drummer's trouble (internal, unknown, deadline_exceeded, …): a read goes to the
 * next drummer, a write too but as one whose outcome is unknown.
 */
const REFUSALS = new Set([
  "invalid_argument",
  "already_exists",
  "not_found",
  "failed_precondition",
  "out_of_range",
  "permission_denied",
  "unauthenticated",
  "resource_exhausted",
]);

/** How a call's transport ended, as the wrapped fetch saw it (calls are made one at a time). */
type Sent = "not-connected" | "unknown" | "answered";

/** Errors of a fetch that never reached a server (nothing was sent). */
const NOT_CONNECTED =
  /ConnectionRefused|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|FailedToOpenSocket|Unable to connect/i;

export interface DrummersOptions {
  addresses: string[];
  /** How long one request may take, retries included. */
  timeoutMs: number;
  fetch?: FetchLike;
  /** Clock and timers (a virtual clock in tests). Default realEnv(). */
  env?: Pick<Env, "setTimer" | "nowMs">;
  /** The drummers' API token and TLS (cmd's --api-token, --tls-*). */
  security?: DrummerSecurity;
}

/** Pause between rounds over the drummers (an election takes a few hundred milliseconds). */
export const RETRY_PAUSE_MS = 200;

/** One client of the drummer group, for one `cmd` run. */
export class Drummers {
  /** API address of the leader, when a ListDrummers answer named it. */
  leaderApi: string | null = null;
  /** Every drummer API address known: the given ones, then those ListDrummers named. */
  readonly addresses: string[];
  private readonly call: DrummerCall;
  private sent: Sent = "answered";
  private readonly timeoutMs: number;
  private readonly env: Pick<Env, "setTimer" | "nowMs">;

  constructor(opts: DrummersOptions) {
    this.addresses = [...new Set(opts.addresses)];
    this.timeoutMs = opts.timeoutMs;
    this.env = opts.env ?? realEnv();
    const base: FetchLike = opts.fetch ?? ((url, init) => fetch(url, init));
    const tracked: FetchLike = async (url, init) => {
      this.sent = "unknown";
      try {
        const res = await base(url, init);
        this.sent = "answered";
        return res;
      } catch (error) {
        const text = `${(error as { code?: string }).code ?? ""} ${String(error)}`;
        if (!init.signal?.aborted && NOT_CONNECTED.test(text)) this.sent = "not-connected";
        throw error;
      }
    };
    this.call = drummerCaller(tracked, this.env, opts.security ?? {});
  }

  /** Calls one drummer, no failover. */
  async one(address: string, method: DrummerMethod, req: Obj, timeoutMs = this.timeoutMs): Promise<Obj> {
    try {
      return await this.call(address, method, req, { timeoutMs });
    } catch (error) {
      throw explain(error, address);
    }
  }

  /**
   * Calls the method on the leader when known, else on each address in turn until one
   * answers, in rounds until the timeout (an election passes); a refusal that is the user's
   * (invalid_argument, already_exists, …) ends it at once.
   */
  async request(method: DrummerMethod, req: Obj): Promise<Obj> {
    const deadline = this.env.nowMs() + this.timeoutMs;
    const tried = new Map<string, string>();
    let unknownOutcome = false;
    for (;;) {
      const answer = await this.round(method, req, deadline, tried, unknownOutcome);
      if (answer.done) return answer.done;
      unknownOutcome = answer.unknownOutcome;
      // Only addresses that are not drummers at all: waiting will not change that.
      if ([...tried.values()].every((m) => m.includes(NOT_A_DRUMMER))) break;
      const left = deadline - this.env.nowMs();
      if (left <= RETRY_PAUSE_MS) break;
      await new Promise<void>((resolve) => this.env.setTimer(RETRY_PAUSE_MS, resolve));
    }
    const what = unknownOutcome
      ? `no drummer confirmed ${method}; it may or may not have been applied (check with cmd status)`
      : `no drummer could answer ${method} within ${this.timeoutMs} ms`;
    throw new Error(`${what}:\n  ${[...tried.values()].join("\n  ")}`);
  }

  /** One pass over the drummers: an answer, or what each said (in tried). */
  private async round(
    method: DrummerMethod,
    req: Obj,
    deadline: number,
    tried: Map<string, string>,
    unknownBefore: boolean,
  ): Promise<{ done: Obj | null; unknownOutcome: boolean }> {
    let unknownOutcome = unknownBefore;
    for (const address of this.order()) {
      const left = Math.floor(deadline - this.env.nowMs());
      if (left <= 0) break;
      // A read gives each drummer a share, so one that hangs leaves time for the others; a
      // write gets what is left (the drummer waits for its commit).
      const timeoutMs = WRITES.has(method)
        ? left
        : Math.min(left, Math.max(1000, Math.floor(this.timeoutMs / 2)));
      try {
        const r = await this.call(address, method, req, { timeoutMs });
        if (method === "ListDrummers") this.learn(r);
        return { done: r, unknownOutcome };
      } catch (error) {
        const e = explain(error, address);
        if (unknownOutcome && WRITES.has(method) && REFUSALS.has(e.code)) {
          const settled = await this.settle(method, req, e);
          if (settled) return { done: settled, unknownOutcome };
        }
        if (REFUSALS.has(e.code)) throw e;
        const notDone = this.sent === "not-connected" || (this.sent === "answered" && NOT_DONE.has(e.code));
        if (WRITES.has(method) && !notDone) unknownOutcome = true;
        tried.set(address, messageOf(e));
      }
    }
    return { done: null, unknownOutcome };
  }

  /** The leader first, then the given addresses, then the learned ones. */
  private order(): string[] {
    return [...new Set([...(this.leaderApi ? [this.leaderApi] : []), ...this.addresses])];
  }

  private learn(r: Obj): void {
    for (const d of drummersOf(r)) {
      if (d.apiAddress === "") continue;
      if (!this.addresses.includes(d.apiAddress)) this.addresses.push(d.apiAddress);
      if (d.leader) this.leaderApi = d.apiAddress;
    }
  }

  /** Finds the leader (one ListDrummers); a failure is left for the call that follows. */
  async locateLeader(): Promise<Obj | null> {
    try {
      return await this.request("ListDrummers", {});
    } catch {
      return null;
    }
  }

  /**
   * After a write whose first answer was lost, an error that means "already done" is checked
   * against the request: the answer when it matches what was asked, else null.
   */
  private async settle(method: DrummerMethod, req: Obj, e: DrummerCallError): Promise<Obj | null> {
    try {
      if (method === "CreateShard" && e.code === "already_exists") {
        const r = await this.request("ListShards", { shardIds: [req.shardId] });
        const def = list(r.shards)[0]?.definition as Obj | undefined;
        const same =
          def !== undefined &&
          s(def.app) === req.app &&
          n(def.replicaCount) === req.replicaCount &&
          JSON.stringify(list(def.regions).map((g) => [s(g.region), n(g.count)])) ===
            JSON.stringify(
              (req.regions as { region: string; count: number }[]).map((g) => [g.region, g.count]),
            );
        return same ? { shard: def } : null;
      }
      if (method === "Bootstrap" && e.code === "failed_precondition") {
        const d = await this.request("GetDeployment", {});
        return d.bootstrapped === true ? { shardCount: n(d.shardCount) } : null;
      }
      if (method === "AddDrummer" && e.code === "already_exists") {
        const r = await this.request("ListDrummers", {});
        const d = drummersOf(r).find((x) => x.id === req.drummerId);
        return d && d.raftAddress === req.raftAddress ? r : null;
      }
      if (method === "RemoveDrummer" && e.code === "not_found") return await this.request("ListDrummers", {});
    } catch {
      return null;
    }
    return null;
  }

  /**
   * Reads the whole deployment: drummers (each probed), NodeHosts, shards and decisions in
   * flight. What cannot be read is left empty and named in `errors`; it never throws.
   */
  async snapshot(): Promise<Snapshot> {
    const errors: string[] = [];
    const snap: Snapshot = {
      deployment: null,
      drummers: [],
      nodehosts: [],
      shards: [],
      unknownShardIds: [],
      inFlight: [],
      repairs: null,
      fromLeader: false,
      listening: false,
      errors,
    };
    const { drummers, deployment } = await this.drummerViews(errors);
    snap.drummers = drummers;
    snap.deployment = deployment;
    if (!drummers.some((d) => d.healthy)) return snap; // the other reads would fail the same way
    const read = async (method: DrummerMethod, req: Obj, use: (r: Obj) => void) => {
      try {
        use(await this.request(method, req));
      } catch (e) {
        errors.push(`${method}: ${messageOf(e)}`);
      }
    };
    let hostsFromLeader = false;
    await read("ListNodeHosts", {}, (r) => {
      snap.nodehosts = nodeHostsOf(r);
      hostsFromLeader = r.fromLeader === true;
      snap.listening = r.listening === true;
    });
    let shardsFromLeader = false;
    await read("ListShards", { shardIds: [] }, (r) => {
      snap.shards = shardsOf(r);
      shardsFromLeader = r.fromLeader === true;
    });
    snap.fromLeader = hostsFromLeader && shardsFromLeader;
    await read("ListDecisions", { shardId: 0, includeFinished: false }, (r) => {
      snap.inFlight = decisionsOf(r);
      snap.repairs = { started: n(r.repairsStarted), done: n(r.repairsDone), failed: n(r.repairsFailed) };
    });
    return snap;
  }

  /**
   * The drummer group's members, each asked for itself (GetDeployment, which needs a working
   * DrummerDB shard): healthy when it answers. Problems are added to errors; never throws.
   */
  async drummerViews(
    errors: string[],
  ): Promise<{ drummers: DrummerView[]; deployment: Snapshot["deployment"] }> {
    let deployment: Snapshot["deployment"] = null;
    const listed = await this.request("ListDrummers", {}).catch((e: unknown) => {
      errors.push(messageOf(e));
      return null;
    });
    const drummers: DrummerView[] = listed
      ? drummersOf(listed)
      : this.addresses.map((apiAddress) => ({
          id: 0,
          raftAddress: "",
          apiAddress,
          leader: false,
          healthy: false,
        }));
    await Promise.all(
      drummers.map(async (d) => {
        if (d.apiAddress === "") {
          d.error = "it has not registered its API address";
          return;
        }
        try {
          const dep = await this.one(d.apiAddress, "GetDeployment", {});
          d.healthy = true;
          if (deployment === null || d.leader) {
            deployment = {
              id: n(dep.deploymentId),
              bootstrapped: dep.bootstrapped === true,
              leaderDrummerId: n(dep.leaderDrummerId),
            };
          }
        } catch (e) {
          d.error = messageOf(e);
        }
      }),
    );
    return { drummers, deployment };
  }
}

/** An error for people: a drummer's refusal reads `<what> (already_exists, drummer d1:9001)`. */
export function messageOf(e: unknown): string {
  if (e instanceof DrummerCallError) return `${e.detail} (${e.code}, drummer ${e.address})`;
  return e instanceof Error ? e.message : String(e);
}

const NOT_A_DRUMMER = "this is not a drummer's API";

/**
 * A DrummerCallError reworded for people: a NodeHost (or anything else) at a drummer address
 * answers `unimplemented` for the Drummer API's paths.
 */
function explain(error: unknown, address: string): DrummerCallError {
  if (!(error instanceof DrummerCallError)) {
    return new DrummerCallError("unknown", error instanceof Error ? error.message : String(error), address);
  }
  if (error.code === "unimplemented" || /HTTP 404/.test(error.detail)) {
    return new DrummerCallError(
      "unimplemented",
      `${NOT_A_DRUMMER} (it does not serve the Drummer API: ${error.detail}); is it a NodeHost's --api-address? Give the drummers' --api-address to --drummer`,
      address,
    );
  }
  return error;
}
