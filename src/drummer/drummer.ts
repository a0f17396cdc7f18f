/**
 * One drummer: a NodeHost of its own hosting a replica of the DrummerDB shard, the leader
 * loop, and the Drummer API's handlers. Library form of `longboat drummer`; the simulator
 * runs several in one process with injected clock, log database and transport.
 *
 * ```ts
 * const d = new Drummer({ drummerId: 1, raftAddress: "d1:9101", apiAddress: "d1:9001",
 *   peers: [{ id: 1, address: "d1:9101" }, …], dataDir: "./drummer-1", deploymentId: 1 });
 * await d.start();
 * serveApi(d.api(), { hostname: "0.0.0.0", port: 9001 });
 * ```
 */
import type { RpcHandler } from "../api/rpc/router.ts";
import type { FetchLike, ForwardTls } from "../api/types.ts";
import { type Env, realEnv, type TimerHandle } from "../env.ts";
import { LongboatError } from "../engine/errors.ts";
import type { LogDB } from "../logdb/types.ts";
import { NodeHost } from "../nodehost.ts";
import type { Registry, Transport } from "../transport/types.ts";
import { createDrummerApi } from "./api/app.ts";
import { drummerCaller } from "./client.ts";
import {
  DRUMMER_SHARD_ID,
  type DrummerSettings,
  type DrummerSettingsInput,
  resolveSettings,
} from "./config.ts";
import { DrummerDB } from "./db/statemachine.ts";
import { nodeHostStatuses, type ShardHealth, shardStatuses } from "./health.ts";
import { LeaderLoop } from "./leader.ts";
import { type DrummerGauges, DrummerMetrics } from "./metrics.ts";
import { ReportBook } from "./reports.ts";
import { DrummerService } from "./service.ts";

export interface DrummerOptions extends DrummerSettingsInput {
  /** This drummer's raft address (one of peers at first start). */
  raftAddress: string;
  /** The drummers of a new group (id and raft address); used only when this drummer has no data yet. */
  peers: { id: number; address: string }[];
  /** Start as a drummer added to a running group (AddDrummer first), with no peers. */
  join?: boolean;
  dataDir: string;
  /** Milliseconds per Raft tick of the DrummerDB shard. Default 100. */
  rttMs?: number;
  /** Election timeout of the DrummerDB shard in ticks. Default 20. */
  electionRtt?: number;
  /** TLS of the DrummerDB shard's raft transport (like a NodeHost's --tls-*). */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /** The Drummer API's security (`longboat drummer --api-token`, `--api-tls-*`, `--metrics-token`). */
  apiSecurity?: DrummerApiSecurity;
  env?: Env;
  log?: (event: Record<string, unknown>) => void;
  /** Replace the log database, transport or the HTTP client to other drummers (simulator, tests). */
  expert?: { logdb?: LogDB; transport?: (registry: Registry, env: Env) => Transport; fetch?: FetchLike };
}

export interface DrummerApiSecurity {
  /** Bearer token every Drummer API call needs (not /healthz); calls forwarded to the leader carry it. */
  token?: string;
  /** Token of GET /metrics alone (the API token works there too). */
  metricsToken?: string;
  /**
   * The API is served over TLS (serveApi's `tls`); here: how calls forwarded to the leader drummer
   * reach it — https, trusting `ca` (the deployment's CA), presenting this certificate.
   */
  tls?: ForwardTls;
}

/** How long start() retries registering this drummer's API address before it gives up waiting. */
const REGISTER_RETRY_MS = 1000;

export class Drummer {
  readonly settings: DrummerSettings;
  readonly nodehost: NodeHost;
  readonly db = new DrummerDB();
  readonly reports = new ReportBook();
  readonly metrics = new DrummerMetrics();
  readonly loop: LeaderLoop;
  readonly service: DrummerService;
  /** Set when the drummer cannot serve (another deployment's data); the CLI exits with it. */
  fatal: string | null = null;
  onFatal: (message: string) => void = () => {};
  private readonly env: Env;
  private readonly log: (event: Record<string, unknown>) => void;
  private registerTimer: TimerHandle | null = null;
  private stopped = false;

  constructor(private readonly opts: DrummerOptions) {
    this.settings = resolveSettings(opts);
    this.env = opts.env ?? realEnv();
    this.log = opts.log ?? (() => {});
    this.nodehost = new NodeHost({
      nodeHostDir: opts.dataDir,
      raftAddress: opts.raftAddress,
      rttMs: opts.rttMs,
      deploymentId: opts.deploymentId,
      tls: opts.tls,
      env: this.env,
      log: this.log,
      expert: { logdb: opts.expert?.logdb, transport: opts.expert?.transport },
    });
    this.loop = new LeaderLoop({
      nodehost: this.nodehost,
      db: this.db,
      reports: this.reports,
      env: this.env,
      settings: this.settings,
      log: this.log,
      onFatal: (message) => this.fail(message),
    });
    this.service = new DrummerService({
      nodehost: this.nodehost,
      db: this.db,
      reports: this.reports,
      loop: this.loop,
      settings: this.settings,
      env: this.env,
      call: drummerCaller(opts.expert?.fetch, this.env, {
        ...(opts.apiSecurity?.token === undefined ? {} : { token: opts.apiSecurity.token }),
        ...(opts.apiSecurity?.tls === undefined ? {} : { tls: opts.apiSecurity.tls }),
      }),
      metrics: this.metrics,
    });
    this.db.onApplied = () => {
      this.service.stale = true;
    };
    this.metrics.watch(() => this.gauges());
  }

  /** Starts the DrummerDB replica (from its data when it has some), registration and the leader loop. */
  async start(): Promise<void> {
    await this.nodehost.ready;
    const onDisk = this.nodehost
      .getNodeHostInfo()
      .logsOnDisk.some((k) => k.shardId === DRUMMER_SHARD_ID && k.replicaId === this.settings.drummerId);
    const members: Record<number, string> = {};
    if (!onDisk && !this.opts.join) for (const p of this.opts.peers) members[p.id] = p.address;
    await this.nodehost.startReplica(
      members,
      !onDisk && (this.opts.join ?? false),
      () => this.db,
      {
        shardId: DRUMMER_SHARD_ID,
        replicaId: this.settings.drummerId,
        // Drummers need no fast failover; a longer election timeout rides out a long apply or
        // pass (DrummerDB's entries can be large). A snapshot every 10,000 entries: its state
        // is encoded whole.
        electionRtt: this.opts.electionRtt ?? 20,
        heartbeatRtt: 2,
        checkQuorum: true,
        snapshotEntries: 10_000,
        compactionOverhead: 1000,
      },
      { app: "drummerdb" },
    );
    this.register();
    this.loop.start();
    this.log({ level: "info", event: "drummer-started", drummer: this.settings.drummerId, fromDisk: onDisk });
  }

  /** The Drummer API (serve it with serveApi; `fetch` answers in process). */
  api(extra: { dashboardRefreshSeconds?: number } = {}): RpcHandler {
    return createDrummerApi({
      ...extra,
      service: this.service,
      metrics: this.metrics,
      env: this.env,
      log: this.log,
      ...(this.opts.apiSecurity?.token === undefined ? {} : { token: this.opts.apiSecurity.token }),
      ...(this.opts.apiSecurity?.metricsToken === undefined
        ? {}
        : { metricsToken: this.opts.apiSecurity.metricsToken }),
    });
  }

  /** Proposes this drummer's API address until it is in DrummerDB (other drummers forward to it). */
  private register(): void {
    const me = this.settings.drummerId;
    const attempt = async () => {
      this.registerTimer = null;
      if (this.stopped || this.db.state.drummers.get(me)?.apiAddress === this.settings.apiAddress) return;
      try {
        await this.loop.propose({
          kind: "registerDrummer",
          drummer: { drummerId: me, apiAddress: this.settings.apiAddress },
        });
      } catch (error) {
        if (!(error instanceof LongboatError)) throw error;
      }
      if (!this.stopped) this.registerTimer = this.env.setTimer(REGISTER_RETRY_MS, () => void attempt());
    };
    void attempt();
  }

  /** Asks a peer to take DrummerDB leadership and waits up to waitMs for it (SIGTERM). */
  async handOverLeadership(waitMs: number): Promise<boolean> {
    const me = this.settings.drummerId;
    let leader: { leaderId: number };
    try {
      leader = this.nodehost.getLeaderId(DRUMMER_SHARD_ID);
    } catch {
      return true;
    }
    if (leader.leaderId !== me) return true;
    const m = this.nodehost.getShardMembershipLocal(DRUMMER_SHARD_ID);
    const target = m.addresses.find((x) => x.replicaId !== me);
    if (!target) return false;
    this.nodehost.requestLeaderTransfer(DRUMMER_SHARD_ID, target.replicaId);
    const deadline = this.env.nowMs() + waitMs;
    while (this.env.nowMs() < deadline) {
      if (this.nodehost.getLeaderId(DRUMMER_SHARD_ID).leaderId !== me) return true;
      await new Promise<void>((resolve) => this.env.setTimer(20, resolve));
    }
    return false;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.registerTimer?.cancel();
    this.loop.stop();
    await this.nodehost.stop();
  }

  private fail(message: string): void {
    if (this.fatal !== null) return;
    this.fatal = message;
    this.log({ level: "error", event: "drummer-fatal", error: message });
    this.onFatal(message);
  }

  private gauges(): DrummerGauges {
    const s = this.db.state;
    const g: DrummerGauges = {
      leading: this.loop.leading,
      hostsByState: { alive: 0, dead: 0, unknown: 0 },
      shardsByHealth: {},
      repairs: {
        started: s.counters.repairsStarted,
        done: s.counters.repairsDone,
        failed: s.counters.repairsFailed,
        stopped: s.counters.repairsStopped,
      },
      decisionsInFlight: s.inFlight.size,
    };
    if (!this.loop.leading) return g;
    const input = this.loop.input();
    const names = ["", "alive", "dead", "unknown"] as const;
    for (const h of nodeHostStatuses(input)) g.hostsByState[names[h.state] as "alive"]++;
    for (const sh of shardStatuses(input, [...s.shards.keys()], this.loop.problems)) {
      g.shardsByHealth[sh.health as ShardHealth] = (g.shardsByHealth[sh.health as ShardHealth] ?? 0) + 1;
    }
    return g;
  }
}
