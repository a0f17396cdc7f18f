/**
 * `longboat dev`: a managed deployment on this machine. Three drummers and four NodeHosts in
 * master mode, each a process of this same binary on 127.0.0.1; the drummers define and place
 * `--shards` kv shards of three replicas (one NodeHost is spare, so a repair has somewhere to
 * go). dev waits until the deployment is healthy, prints what runs where and commands to try,
 * restarts a process that dies (unless --no-restart), reports the drummers' view as it changes
 * (a NodeHost dead, a shard repairing, healthy again), and stops everything in parallel on
 * Ctrl-C or SIGTERM. Its children watch it (src/cli/parent.ts): they stop when dev exits,
 * even when dev is killed with kill -9.
 *
 * Ports (base = --base-port, 7100 by default): NodeHost i has raft base+i and API base+10+i
 * (i = 1…4); drummer j has raft base+20+j and API base+30+j (j = 1…3). Under --data-dir each
 * process has its data directory (nodehost-1, drummer-1, …), its full log (nodehost-1.log)
 * and its pid (nodehost-1.pid).
 */
import {
  accessSync,
  appendFileSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";
import { type DrummerCall, DrummerCallError, drummerCaller } from "../../drummer/client.ts";
import { DEV_DRUMMERS, DEV_NODEHOSTS, type DevConfig } from "../config.ts";
import { EXIT_WITH_PARENT_ENV } from "../parent.ts";

/** A child restarted more often than this within RESTART_WINDOW_MS is given up. */
const RESTARTS_MAX = 5;
const RESTART_WINDOW_MS = 60_000;
const RESTART_DELAY_MS = 1000;
/** How long the deployment may take to become healthy before dev says so (and keeps waiting). */
const HEALTHY_WARN_MS = 120_000;
/** How long a graceful stop may take before the rest is killed. */
const STOP_MS_MAX = 15_000;
/** How often dev asks the drummers how the deployment is. */
const POLL_MS = 1000;
/** Lines of a child's output kept to explain its failure. */
const TAIL_LINES = 20;
const REPLICAS = 3;
const DRUMMER_CALL_MS = 3000;
/** Drummer API answers that a later try may not get: dev's set-up retries them. */
const TRANSIENT = new Set(["unavailable", "deadline_exceeded", "unknown", "aborted"]);
/** A second Ctrl-C this long after the first kills what still runs. */
const REPEAT_SIGNAL_MS = 1000;

const HEALTH = ["?", "ok", "under-replicated", "repairing", "no quorum", "unplaced", "placing", "unknown"];
const HEALTH_OK = 1;
const HOST_STATE = ["?", "alive", "dead", "unknown"];
const HOST_ALIVE = 1;

type Proc = ReturnType<typeof Bun.spawn>;

interface Child {
  name: string;
  raft: string;
  api: string;
  args: string[];
  proc: Proc | null;
  /** Start times of the recent restarts. */
  restarts: number[];
  /** The last lines it wrote, to explain a failure. */
  tail: string[];
  /** The port it could not listen on, when its output said so. */
  portInUse: number | null;
  givenUp: boolean;
}

/** The command line that runs this same longboat (compiled binary, or bun + the entry script). */
function self(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs") || Bun.main.includes("~BUN");
  return compiled ? [process.execPath] : [process.execPath, Bun.main];
}

/** How a person types this binary from the current directory. */
function selfForPeople(): string {
  const compiled = Bun.main.startsWith("/$bunfs") || Bun.main.includes("~BUN");
  if (!compiled) return `bun ${relative(process.cwd(), Bun.main)}`;
  const rel = relative(process.cwd(), process.execPath);
  return rel.startsWith("..") || rel === "" ? process.execPath : rel.includes("/") ? rel : `./${rel}`;
}

const ADDRESS_IN_USE = /EADDRINUSE|address already in use|Is port (\d+) in use|port (\d+) .*in use/i;

/** Runs `longboat dev`; returns the exit code. */
export async function run(config: DevConfig): Promise<number> {
  return new Dev(config).run();
}

class Dev {
  private readonly dataDir: string;
  private readonly drummers: Child[] = [];
  private readonly nodehosts: Child[] = [];
  private readonly call: DrummerCall = drummerCaller();
  private stopping = false;
  private healthy = false;
  /** Set when dev must end: the exit code. */
  private endWith: (code: number) => void = () => {};
  private readonly ended: Promise<number>;
  private readonly out = process.stdout;
  private readonly bin = selfForPeople();
  private readonly startedMs = Date.now();

  constructor(private readonly config: DevConfig) {
    this.dataDir = resolve(config.dataDir);
    this.ended = new Promise<number>((resolve) => {
      this.endWith = resolve;
    });
    const base = config.basePort;
    const peers = Array.from({ length: DEV_DRUMMERS }, (_, j) => `${j + 1}=127.0.0.1:${base + 21 + j}`);
    const report = Math.max(100, Math.floor(config.deadTimeoutMs / 10));
    for (let j = 1; j <= DEV_DRUMMERS; j++) {
      const api = `127.0.0.1:${base + 30 + j}`;
      this.drummers.push(
        this.child(`drummer-${j}`, `127.0.0.1:${base + 20 + j}`, api, [
          "drummer",
          "--id",
          String(j),
          "--peers",
          peers.join(","),
          "--api-address",
          api,
          "--data-dir",
          join(this.dataDir, `drummer-${j}`),
          "--dead-timeout",
          `${config.deadTimeoutMs}ms`,
          "--report-interval",
          `${report}ms`,
        ]),
      );
    }
    const masters = this.drummers.map((d) => d.api).join(",");
    for (let i = 1; i <= DEV_NODEHOSTS; i++) {
      const raft = `127.0.0.1:${base + i}`;
      const api = `127.0.0.1:${base + 10 + i}`;
      this.nodehosts.push(
        this.child(`nodehost-${i}`, raft, api, [
          "nodehost",
          "--raft-address",
          raft,
          "--api-address",
          api,
          "--data-dir",
          join(this.dataDir, `nodehost-${i}`),
          "--master",
          masters,
        ]),
      );
    }
  }

  private child(name: string, raft: string, api: string, args: string[]): Child {
    return { name, raft, api, args, proc: null, restarts: [], tail: [], portInUse: null, givenUp: false };
  }

  private get children(): Child[] {
    return [...this.drummers, ...this.nodehosts];
  }

  async run(): Promise<number> {
    const badDir = this.makeDataDir();
    if (badDir !== null) {
      process.stderr.write(`longboat dev: --data-dir ${this.config.dataDir} cannot be used: ${badDir}\n`);
      return 1;
    }
    const holder = this.lock();
    if (holder !== null) {
      process.stderr.write(
        `longboat dev: --data-dir ${this.config.dataDir} is in use by another longboat dev (pid ${holder}); stop it, or give another --data-dir\n`,
      );
      return 1;
    }
    try {
      return await this.runLocked();
    } finally {
      rmSync(this.lockPath, { force: true });
    }
  }

  private get lockPath(): string {
    return join(this.dataDir, "dev.pid");
  }

  /**
   * Takes the data directory for this dev (dev.pid holds its pid): null when taken, else the
   * pid of the live dev that holds it. A dev.pid whose process is gone (dev killed) is taken over.
   */
  private lock(): number | null {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockPath, "wx");
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return null;
      } catch (error) {
        if ((error as { code?: string }).code !== "EEXIST") throw error;
      }
      const pid = Number(readFileSync(this.lockPath, "utf8").trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && runsDev(pid)) return pid;
      rmSync(this.lockPath, { force: true }); // its dev is gone
    }
    return null;
  }

  private async runLocked(): Promise<number> {
    const taken = await this.takenPort();
    if (taken !== null) {
      process.stderr.write(
        `longboat dev: port ${taken.port} (${taken.what}) is in use by another program; is another longboat dev running? Stop it, or give other ports with --base-port (dev uses base+1 … base+${30 + DEV_DRUMMERS})\n`,
      );
      return 1;
    }
    let firstSignalMs = 0;
    const onSignal = (signal: string) => {
      // npm passes the terminal's Ctrl-C on as well: a signal within a second is the same one.
      if (this.stopping && Date.now() - firstSignalMs < REPEAT_SIGNAL_MS) return;
      if (this.stopping) {
        process.stderr.write(`longboat dev: ${signal} again: killing what still runs\n`);
        for (const c of this.children) c.proc?.kill("SIGKILL");
        return;
      }
      firstSignalMs = Date.now();
      this.endWith(0);
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    this.say(
      `longboat dev: starting ${DEV_DRUMMERS} drummers and ${DEV_NODEHOSTS} NodeHosts (data in ${this.dataDir})`,
    );
    for (const c of this.children) this.start(c);
    const setUp = this.setUp().catch((error: unknown) => {
      if (this.stopping) return;
      process.stderr.write(`longboat dev: ${error instanceof Error ? error.message : String(error)}\n`);
      this.endWith(1);
    });
    const code = await this.ended;
    await this.stopAll();
    await setUp;
    return code;
  }

  /** Creates the data directory; the reason it cannot be used, or null. */
  private makeDataDir(): string | null {
    try {
      if (existsSync(this.dataDir) && !statSync(this.dataDir).isDirectory()) return "it is a file";
      mkdirSync(this.dataDir, { recursive: true });
      accessSync(this.dataDir, constants.W_OK);
      return null;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "EACCES" || code === "EPERM")
        return "permission denied (choose a directory you can write)";
      if (code === "ENOTDIR" || code === "EEXIST") return "a part of its path is a file";
      return (error as Error).message;
    }
  }

  /** The first port of the layout that cannot be listened on, and whose it is. */
  private async takenPort(): Promise<{ port: number; what: string } | null> {
    const ports: { port: number; what: string }[] = [];
    for (const c of this.children) {
      ports.push({ port: portOf(c.raft), what: `raft port of ${c.name}` });
      ports.push({ port: portOf(c.api), what: `API port of ${c.name}` });
    }
    const free = await Promise.all(ports.map((p) => canListen(p.port)));
    const i = free.indexOf(false);
    return i < 0 ? null : ports[i]!;
  }

  private start(c: Child): void {
    c.tail = [];
    c.portInUse = null;
    const proc = Bun.spawn([...self(), ...c.args], {
      // Its own process group: a Ctrl-C in the terminal reaches dev alone, which stops each
      // child once (a second signal would cut the child's graceful stop short).
      detached: true,
      stdin: "pipe", // never written: the child stops when dev exits and the pipe closes
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, [EXIT_WITH_PARENT_ENV]: "1" },
    });
    c.proc = proc;
    writeFileSync(join(this.dataDir, `${c.name}.pid`), `${proc.pid}\n`);
    void this.readLines(c, proc.stdout as ReadableStream<Uint8Array>);
    void this.readLines(c, proc.stderr as ReadableStream<Uint8Array>);
    void proc.exited.then(() => this.exited(c, proc));
  }

  private async readLines(c: Child, stream: ReadableStream<Uint8Array>): Promise<void> {
    const logFile = join(this.dataDir, `${c.name}.log`);
    const decoder = new TextDecoder();
    let pending = "";
    try {
      for await (const chunk of stream) {
        pending += decoder.decode(chunk, { stream: true });
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        if (lines.length === 0) continue;
        appendFileSync(logFile, `${lines.join("\n")}\n`);
        for (const line of lines) this.line(c, line);
      }
    } catch {
      // the child's pipe broke: it is exiting
    }
    if (pending !== "") {
      appendFileSync(logFile, `${pending}\n`);
      this.line(c, pending);
    }
  }

  /** One line a child wrote: kept for its failure message; warnings and errors are shown. */
  private line(c: Child, line: string): void {
    c.tail.push(line);
    if (c.tail.length > TAIL_LINES) c.tail.shift();
    const inUse = ADDRESS_IN_USE.exec(line);
    if (inUse) c.portInUse = Number(inUse[1] ?? inUse[2] ?? 0) || c.portInUse || 0;
    if (this.stopping || !this.healthy) return;
    const shown = readable(line, this.config.verbose);
    if (shown !== null) process.stderr.write(`[${c.name}] ${shown}\n`);
  }

  private exited(c: Child, proc: Proc): void {
    if (c.proc !== proc) return;
    c.proc = null;
    rmSync(join(this.dataDir, `${c.name}.pid`), { force: true });
    if (this.stopping) return;
    const how = proc.signalCode ? `killed by ${proc.signalCode}` : `exited with code ${proc.exitCode}`;
    if (c.portInUse !== null) {
      const port = c.portInUse > 0 ? c.portInUse : `${portOf(c.raft)} or ${portOf(c.api)}`;
      this.fail(
        `${c.name} ${how}: it cannot listen on port ${port}, which another program holds (choose other ports with --base-port)`,
        c,
      );
      return;
    }
    if (!this.healthy) {
      this.fail(`${c.name} ${how} while the deployment was starting`, c);
      return;
    }
    if (this.config.noRestart) {
      const more = c.name.startsWith("nodehost")
        ? `; after ${this.config.deadTimeoutMs / 1000} s of silence the drummers call it dead and rebuild its replicas on the other NodeHosts`
        : "";
      this.say(`longboat dev: ${c.name} ${how}; left dead (--no-restart)${more}`);
      this.endIfAllDead();
      return;
    }
    const nowMs = Date.now();
    c.restarts = c.restarts.filter((t) => nowMs - t < RESTART_WINDOW_MS);
    if (c.restarts.length >= RESTARTS_MAX) {
      c.givenUp = true;
      process.stderr.write(
        `longboat dev: ${c.name} ${how}, its ${RESTARTS_MAX + 1}th exit within ${RESTART_WINDOW_MS / 1000} s; not restarting it. Its last lines (all in ${join(this.dataDir, `${c.name}.log`)}):\n${indent(c.tail)}\n`,
      );
      this.endIfAllDead();
      return;
    }
    c.restarts.push(nowMs);
    this.say(`longboat dev: ${c.name} ${how}; restarting it in ${RESTART_DELAY_MS / 1000} s`);
    setTimeout(() => {
      if (this.stopping || c.proc !== null) return;
      this.start(c);
      this.say(`longboat dev: ${c.name} restarted, pid ${c.proc!.pid}`);
    }, RESTART_DELAY_MS);
  }

  private endIfAllDead(): void {
    if (this.children.every((c) => c.proc === null && (c.givenUp || this.config.noRestart))) {
      process.stderr.write("longboat dev: every process has exited; stopping\n");
      this.endWith(1);
    }
  }

  private fail(message: string, c: Child): void {
    process.stderr.write(
      `longboat dev: ${message}. Its last lines (all in ${join(this.dataDir, `${c.name}.log`)}):\n${indent(c.tail)}\n`,
    );
    this.endWith(1);
  }

  /** Defines the shards, bootstraps, waits until healthy, prints the summary, then watches. */
  private async setUp(): Promise<void> {
    const progress = new Progress(process.stderr);
    const leader = await this.until(
      async () => {
        const d = await this.drummerCall("GetDeployment", {});
        return Number(d.leaderDrummerId) > 0 ? Number(d.leaderDrummerId) : null;
      },
      progress,
      () => "waiting for the drummers to elect a leader",
    );
    void leader;
    const listed = await this.until(
      () => this.drummerCall("ListShards", { shardIds: [] }),
      progress,
      () => "reading the shards the drummers know",
    );
    const known = new Set(
      (listed.shards as { definition: { shardId: number } }[]).map((s) => Number(s.definition.shardId)),
    );
    for (let id = 1; id <= this.config.shards; id++) {
      if (known.has(id)) continue;
      await this.until(
        async () => {
          try {
            await this.drummerCall("CreateShard", { shardId: id, app: "kv", replicaCount: REPLICAS });
          } catch (error) {
            if (!(error instanceof DrummerCallError && error.code === "already_exists")) throw error;
          }
          return true;
        },
        progress,
        () => `defining shard ${id} (kv, ${REPLICAS} replicas)`,
      );
    }
    const deployment = await this.until(
      () => this.drummerCall("GetDeployment", {}),
      progress,
      () => "bootstrapping",
    );
    if (!deployment.bootstrapped) {
      await this.until(
        async () => {
          try {
            await this.drummerCall("Bootstrap", {});
          } catch (error) {
            if (!(error instanceof DrummerCallError && error.code === "failed_precondition")) throw error;
          }
          return true;
        },
        progress,
        () => "bootstrapping",
      );
    }
    let view: View | null = null;
    let warned = false;
    await this.until(
      async () => {
        view = await this.view();
        if (!warned && Date.now() - this.startedMs > HEALTHY_WARN_MS) {
          warned = true;
          progress.end();
          process.stderr.write(
            `longboat dev: not healthy after ${HEALTHY_WARN_MS / 1000} s (${view.summary()}); still waiting. The processes' logs are in ${this.dataDir}\n`,
          );
        }
        return view.healthy ? view : null;
      },
      progress,
      () =>
        view === null
          ? "waiting for the NodeHosts to report"
          : `waiting until healthy: ${(view as View).summary()}`,
    );
    progress.end();
    this.healthy = true;
    this.printSummary(view!);
    await this.watch(view!);
  }

  /**
   * Calls fn until it gives a value (not null), retrying while the drummers are unavailable or
   * slow (a busy machine, an election). Each step is safe to repeat: a shard defined or a
   * bootstrap done by an earlier try is answered already_exists or failed_precondition, which
   * the steps take as done.
   */
  private async until<T>(fn: () => Promise<T | null>, progress: Progress, what: () => string): Promise<T> {
    for (;;) {
      if (this.stopping) throw new Error("stopping");
      try {
        const v = await fn();
        if (v !== null) return v;
      } catch (error) {
        if (!(error instanceof DrummerCallError && TRANSIENT.has(error.code))) throw error;
      }
      progress.show(`${what()} (${((Date.now() - this.startedMs) / 1000).toFixed(0)} s)`);
      await Bun.sleep(POLL_MS / 4);
    }
  }

  /** Calls the drummers, each in turn until one answers. */
  private async drummerCall(method: Parameters<DrummerCall>[1], request: Record<string, unknown>) {
    let last: unknown;
    for (const d of this.drummers) {
      if (d.proc === null) continue;
      try {
        return await this.call(d.api, method, request, { timeoutMs: DRUMMER_CALL_MS });
      } catch (error) {
        last = error;
        if (!(error instanceof DrummerCallError && error.code === "unavailable")) throw error;
      }
    }
    throw last instanceof DrummerCallError
      ? last
      : new DrummerCallError("unavailable", "no drummer runs", "-");
  }

  private async view(): Promise<View> {
    const [hosts, shards] = await Promise.all([
      this.drummerCall("ListNodeHosts", {}),
      this.drummerCall("ListShards", { shardIds: [] }),
    ]);
    return new View(hosts as unknown as HostsReply, shards as unknown as ShardsReply, this.config.shards);
  }

  private nameOf(raft: string): string {
    return this.children.find((c) => c.raft === raft)?.name ?? raft;
  }

  private printSummary(view: View): void {
    const secs = ((Date.now() - this.startedMs) / 1000).toFixed(1);
    const shardsOf = (raft: string) =>
      view.shards
        .filter((s) => s.members.some((m) => m.raftAddress === raft))
        .map((s) => Number(s.definition.shardId));
    const rows = [
      ...this.drummers.map((d) => [
        d.name,
        `raft ${d.raft}`,
        `API ${d.api}`,
        `pid ${d.proc?.pid ?? "-"}`,
        "",
      ]),
      ...this.nodehosts.map((n) => {
        const s = shardsOf(n.raft);
        return [
          n.name,
          `raft ${n.raft}`,
          `API ${n.api}`,
          `pid ${n.proc?.pid ?? "-"}`,
          s.length === 0 ? "spare" : `shards ${s.join(", ")}`,
        ];
      }),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    const table = rows.map((r) => `  ${r.map((x, i) => x.padEnd(widths[i]!)).join("  ")}`.trimEnd());
    const rel = relative(process.cwd(), this.dataDir);
    const dir = rel === "" ? "." : rel.startsWith("..") ? this.dataDir : rel;
    const nodehosts = this.nodehosts.map((n) => n.api).join(",");
    const drummers = this.drummers.map((d) => d.api).join(",");
    const victim = this.nodehosts.find((n) => shardsOf(n.raft).length > 0) ?? this.nodehosts[0]!;
    this.say(
      [
        `longboat dev: healthy in ${secs} s: ${DEV_DRUMMERS} drummers, ${DEV_NODEHOSTS} NodeHosts, ${view.shards.length} kv shards of ${REPLICAS} replicas`,
        ...table,
        `  data, logs (<name>.log) and pids (<name>.pid) in ${dir}`,
        `Dashboard: http://${this.drummers[0]!.api}/  (every drummer's and NodeHost's API address serves it)`,
        "Try, from another terminal in this directory:",
        `  N=${nodehosts}`,
        `  D=${drummers}`,
        `  ${this.bin} cmd put --nodehost $N --shard 1 greeting hello`,
        `  ${this.bin} cmd get --nodehost $N --shard 1 greeting`,
        `  ${this.bin} cmd status --drummer $D          # drummers, NodeHosts, shards, repairs`,
        `  kill -9 $(cat ${join(dir, `${victim.name}.pid`)})   # ${
          this.config.noRestart
            ? `the drummers call it dead after ${this.config.deadTimeoutMs / 1000} s and rebuild its replicas`
            : "dev restarts it (with --no-restart the drummers rebuild its replicas elsewhere)"
        }`,
        `  ${this.bin} cmd wait --healthy --drummer $D  # until every shard is healthy again`,
        "Ctrl-C stops everything.",
      ].join("\n"),
    );
  }

  /** Prints what changes in the drummers' view: NodeHosts dead or back, shard health. */
  private async watch(first: View): Promise<void> {
    let before = first;
    while (!this.stopping) {
      await Bun.sleep(POLL_MS);
      if (this.stopping) return;
      let now: View;
      try {
        now = await this.view();
      } catch {
        continue; // no drummer answers right now (one restarting, an election): ask again
      }
      for (const h of now.hosts) {
        const was = before.hosts.find((x) => x.raftAddress === h.raftAddress);
        if (was && was.state !== h.state)
          this.say(
            `longboat dev: the drummers see ${this.nameOf(h.raftAddress)} ${HOST_STATE[h.state] ?? h.state}`,
          );
      }
      for (const s of now.shards) {
        const id = Number(s.definition.shardId);
        const was = before.shards.find((x) => Number(x.definition.shardId) === id);
        const members = s.members
          .map((m) => `${Number(m.replicaId)}@${this.nameOf(m.raftAddress)}`)
          .join(" ");
        const wasMembers = was?.members
          .map((m) => `${Number(m.replicaId)}@${this.nameOf(m.raftAddress)}`)
          .join(" ");
        if (was && was.health === s.health && wasMembers === members) continue;
        const why = s.health !== HEALTH_OK && s.reason ? ` (${s.reason})` : "";
        this.say(`longboat dev: shard ${id} ${HEALTH[s.health] ?? s.health}${why}; members ${members}`);
      }
      before = now;
    }
  }

  /** Stops every child at once (SIGTERM, SIGKILL after STOP_MS_MAX), printing each as it ends. */
  private async stopAll(): Promise<void> {
    this.stopping = true;
    const running = this.children.filter((c) => c.proc !== null);
    if (running.length === 0) return;
    const t0 = Date.now();
    process.stderr.write(`longboat dev: stopping ${running.map((c) => c.name).join(", ")}…\n`);
    const killer = setTimeout(() => {
      const left = running.filter((c) => c.proc !== null && c.proc.exitCode === null && !c.proc.signalCode);
      process.stderr.write(
        `longboat dev: ${left.map((c) => c.name).join(", ")} still running after ${STOP_MS_MAX / 1000} s: killed\n`,
      );
      for (const c of left) c.proc?.kill("SIGKILL");
    }, STOP_MS_MAX);
    await Promise.all(
      running.map(async (c) => {
        const proc = c.proc!;
        proc.kill("SIGTERM");
        const code = await proc.exited;
        const how = proc.signalCode ? ` (${proc.signalCode})` : code === 0 ? "" : ` (exit code ${code})`;
        process.stderr.write(`  ${c.name} stopped${how} after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
        rmSync(join(this.dataDir, `${c.name}.pid`), { force: true });
      }),
    );
    clearTimeout(killer);
    process.stderr.write(`longboat dev: all stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }

  private say(text: string): void {
    this.out.write(`${text}\n`);
  }
}

interface HostsReply {
  nodehosts: { raftAddress: string; apiAddress: string; state: number }[];
  /** The drummer leader is new and still listening for NodeHosts: states are provisional. */
  listening: boolean;
}
interface ShardStatusReply {
  definition: { shardId: number; replicaCount: number };
  members: { replicaId: number; raftAddress: string; state: number }[];
  health: number;
  reason: string;
}
interface ShardsReply {
  shards: ShardStatusReply[];
}

/** The drummers' view of the deployment at one moment. */
class View {
  readonly hosts: HostsReply["nodehosts"];
  readonly shards: ShardStatusReply[];
  readonly listening: boolean;
  constructor(
    hosts: HostsReply,
    shards: ShardsReply,
    private readonly wanted: number,
  ) {
    this.hosts = hosts.nodehosts;
    this.listening = hosts.listening;
    this.shards = shards.shards;
  }

  get alive(): number {
    return this.hosts.filter((h) => h.state === HOST_ALIVE).length;
  }

  get okShards(): number {
    return this.shards.filter((s) => s.health === HEALTH_OK).length;
  }

  get healthy(): boolean {
    return (
      !this.listening &&
      this.alive === DEV_NODEHOSTS &&
      this.shards.length >= this.wanted &&
      this.okShards === this.shards.length
    );
  }

  summary(): string {
    const listening = this.listening ? " (the drummer leader is still listening for NodeHosts)" : "";
    return `${this.alive}/${DEV_NODEHOSTS} NodeHosts alive, ${this.okShards}/${this.shards.length} shards healthy${listening}`;
  }
}

/** A progress line on stderr: rewritten in place on a terminal, one line per change otherwise. */
class Progress {
  private last = "";
  private drawn = false;
  constructor(private readonly stream: { write(text: string): unknown; isTTY?: boolean }) {}

  show(text: string): void {
    if (this.stream.isTTY === true) {
      this.stream.write(`\r\x1b[2K${text}`);
      this.drawn = true;
      return;
    }
    const key = text.replace(/ \(\d+ s\)$/, "");
    if (key === this.last) return;
    this.last = key;
    this.stream.write(`${text}\n`);
  }

  end(): void {
    if (this.drawn) this.stream.write("\n");
    this.drawn = false;
  }
}

/** A child's log line as a person reads it, or null when it is not shown (debug and info, unless all). */
function readable(line: string, all: boolean): string | null {
  if (line.trim() === "") return null;
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof event !== "object" || event === null) return line;
  const { level, time: _time, event: name, ...rest } = event;
  if (!all && level !== "warn" && level !== "error") return null;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${level} ${String(name ?? "")} ${fields}`.trimEnd();
}

function indent(lines: string[]): string {
  return lines.length === 0 ? "  (nothing)" : lines.map((l) => `  ${l}`).join("\n");
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** Whether port can be listened on at 127.0.0.1 now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Whether pid is a running `longboat dev` (its command line, from /proc; elsewhere: whether it runs). */
function runsDev(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("dev");
  } catch {
    return true; // no /proc: a live pid is taken to be the dev that wrote it
  }
}
