/**
 * `longboat cmd <op> --drummer d1:9001,…`: the whole deployment through the drummers —
 * `status` (exit 0 only when healthy), `nodehosts`, `shards`, `create-shard`, `set-regions`,
 * `bootstrap`, `drummers`, `add-drummer`, `remove-drummer` and `wait --healthy`.
 * Exit codes as the rest of cmd: 0 done (or healthy), 1 failed (or not healthy), 2 bad usage
 * (checked before this runs, in cmd-drummer-flags.ts).
 */
import { isatty } from "node:tty";
import type { FetchLike } from "../../api/types.ts";
import type { Env } from "../../env.ts";
import type { CmdConfig } from "../config.ts";
import { printErrorLine, printLine } from "../output.ts";
import { apiClientTls } from "../tls.ts";
import { type DrummerOp, isDrummerOp } from "./cmd-drummer-flags.ts";
import {
  Drummers,
  drummersOf,
  messageOf,
  type NodeHostView,
  nodeHostsOf,
  type Snapshot,
  shardsOf,
} from "./cmd-drummer-client.ts";
import {
  assess,
  drummersTable,
  nodeHostsTable,
  progressText,
  shardsTable,
  statusJson,
  statusText,
  verdictText,
} from "./cmd-drummer-output.ts";

/** What a run reads and writes besides the config, so tests can supply their own. */
export interface DrummerIo {
  out(line: string): void;
  err(line: string): void;
  /** The progress line of `wait` (rewritten in place on a terminal). */
  progress(text: string): Promise<void> | void;
  /** Ends the progress line. */
  progressEnd(): Promise<void> | void;
  clock: { nowMs(): number; sleep(ms: number): Promise<void> };
  fetch?: FetchLike;
  /** Timer for call timeouts (a virtual clock in tests). */
  timers?: Pick<Env, "setTimer" | "nowMs">;
}

/** How often `wait` looks again. */
export const WAIT_POLL_MS = 1000;
/** A progress line off a terminal is repeated at least this often even when nothing changed. */
const PROGRESS_REPEAT_MS = 10_000;

/** The terminal's io: stdout/stderr through src/cli/output.ts, the real clock. */
export function processIo(): DrummerIo {
  const tty = isatty(2);
  let drawn = false;
  let last = "";
  let lastMs = 0;
  return {
    out: printLine,
    err: printErrorLine,
    async progress(text) {
      if (tty) {
        await Bun.write(Bun.stderr, `\r\x1b[2K${text}`);
        drawn = true;
        return;
      }
      // Off a terminal (a log, CI): a line when something changed, else every PROGRESS_REPEAT_MS.
      const what = text.replace(/^\[[^\]]*\] /, "");
      const now = performance.now();
      if (what === last && now - lastMs < PROGRESS_REPEAT_MS) return;
      last = what;
      lastMs = now;
      printErrorLine(text);
    },
    async progressEnd() {
      if (tty && drawn) await Bun.write(Bun.stderr, "\n");
      drawn = false;
    },
    clock: { nowMs: () => performance.now(), sleep: (ms) => Bun.sleep(ms) },
  };
}

/** Runs one drummer op (or `status --drummer`); returns the exit code. */
export async function runDrummerCmd(config: CmdConfig, io: DrummerIo = processIo()): Promise<number> {
  const op = config.request.op;
  if (op !== "status" && !isDrummerOp(op)) throw new Error(`cmd ${op} is not a drummer op`);
  // Read before the try: a PEM file that cannot be read is bad usage (exit 2), as for --nodehost.
  const tls = apiClientTls(config);
  if (config.insecureSkipVerify) {
    io.err(
      "longboat cmd: --insecure-skip-verify: the drummers' certificates are not checked (development only)",
    );
  }
  const drummers = new Drummers({
    addresses: config.drummer,
    timeoutMs: config.timeoutMs,
    security: {
      ...(config.apiToken === undefined ? {} : { token: config.apiToken }),
      ...(tls ? { tls } : {}),
    },
    ...(io.fetch ? { fetch: io.fetch } : {}),
    ...(io.timers ? { env: io.timers } : {}),
  });
  try {
    return await execute(op, drummers, config, io);
  } catch (error) {
    const message = messageOf(error);
    if (config.json) io.out(JSON.stringify({ ok: false, error: message }));
    else io.err(`longboat cmd ${op}: ${message}`);
    return 1;
  }
}

type Obj = Record<string, unknown>;

async function execute(op: DrummerOp | "status", d: Drummers, config: CmdConfig, io: DrummerIo) {
  const print = (human: string, json: Obj) =>
    io.out(config.json ? JSON.stringify({ ok: true, ...json }) : human);
  switch (op) {
    case "status": {
      const snap = await d.snapshot();
      const v = assess(snap);
      print(statusText(snap, v), statusJson(snap, v));
      return v.healthy ? 0 : 1;
    }
    case "wait":
      return wait(d, config, io);
    case "drummers": {
      const errors: string[] = [];
      const { drummers } = await d.drummerViews(errors);
      if (drummers.every((x) => !x.healthy) && errors.length > 0) throw new Error(errors[0]);
      const leader = drummers.find((x) => x.leader);
      const head = `${drummers.length} drummers, leader ${leader ? `${leader.id} (${leader.apiAddress})` : "none"}`;
      print(`${head}\n${drummersTable(drummers)}`, { drummers });
      return drummers.every((x) => x.healthy) && leader !== undefined ? 0 : 1;
    }
    case "nodehosts": {
      await d.locateLeader();
      const r = await d.request("ListNodeHosts", {});
      const hosts = nodeHostsOf(r);
      const caveats = viewCaveats(r);
      print([...caveats, nodeHostsTable(hosts)].join("\n"), {
        nodehosts: hosts,
        fromLeader: r.fromLeader === true,
        listening: r.listening === true,
      });
      return 0;
    }
    case "shards": {
      await d.locateLeader();
      const r = await d.request("ListShards", { shardIds: config.id === undefined ? [] : [config.id] });
      const shards = shardsOf(r);
      const unknown = (r.unknownShardIds as unknown[]).map(Number);
      if (config.id !== undefined && unknown.includes(config.id)) {
        throw new Error(`shard ${config.id} is not defined (see cmd shards for the defined ones)`);
      }
      const reasons = shards
        .filter((x) => x.health !== "ok" && x.reason)
        .map((x) => `shard ${x.id}: ${x.reason}`);
      print([...viewCaveats(r), shardsTable(shards), ...reasons].join("\n"), {
        shards,
        unknownShardIds: unknown,
        fromLeader: r.fromLeader === true,
      });
      return 0;
    }
    case "create-shard": {
      const id = config.id!;
      await d.locateLeader();
      await checkPlacement(d, config, io);
      const regions = config.regions ?? [];
      const r = await d.request("CreateShard", {
        shardId: id,
        app: config.app,
        replicaCount: config.replicas,
        regions,
      });
      const dep = await d.request("GetDeployment", {}).catch(() => null);
      const next =
        dep?.bootstrapped === true
          ? "the drummers place it now (longboat cmd wait --healthy waits for it)"
          : "it is placed once the deployment is bootstrapped (longboat cmd bootstrap)";
      const where =
        regions.length > 0 ? `, regions ${regions.map((g) => `${g.region}=${g.count}`).join(",")}` : "";
      print(`shard ${id} defined: app ${config.app}, ${config.replicas} replicas${where}; ${next}`, {
        shard: r.shard,
      });
      return 0;
    }
    case "set-regions": {
      await d.locateLeader();
      const regions = config.regions ?? [];
      const r = await d.request("SetRegions", { shardId: config.id!, regions });
      const what = regions.length > 0 ? regions.map((g) => `${g.region}=${g.count}`).join(",") : "none";
      print(
        `shard ${config.id} regions: ${what} (placed replicas stay where they are; replacements follow the new regions)`,
        { shard: r.shard },
      );
      return 0;
    }
    case "bootstrap": {
      await d.locateLeader();
      const r = await d.request("Bootstrap", {});
      const count = Number(r.shardCount ?? 0);
      print(
        `bootstrapped: the drummers place the ${count} defined shard(s) now (longboat cmd wait --healthy waits until they run)`,
        { shardCount: count },
      );
      return 0;
    }
    case "add-drummer": {
      await d.locateLeader();
      const r = await d.request("AddDrummer", {
        drummerId: config.id!,
        raftAddress: config.raftAddress!,
        timeoutMs: serverTimeout(config.timeoutMs),
      });
      print(
        [
          `drummer ${config.id} (raft ${config.raftAddress}) added to the group; start it now:`,
          `  longboat drummer --id ${config.id} --join --peers ${config.id}=${config.raftAddress} --api-address <host:port>`,
        ].join("\n"),
        { drummers: drummersOf(r) },
      );
      return 0;
    }
    case "remove-drummer": {
      await d.locateLeader();
      const r = await d.request("RemoveDrummer", {
        drummerId: config.id!,
        timeoutMs: serverTimeout(config.timeoutMs),
      });
      print(
        `drummer ${config.id} removed from the group; stop its process (its data directory can then be deleted)`,
        { drummers: drummersOf(r) },
      );
      return 0;
    }
  }
}

/** What the drummer is asked to wait at most: a little less than this client waits for it. */
function serverTimeout(clientMs: number): number {
  return Math.max(1, clientMs - Math.min(1000, Math.floor(clientMs / 5)));
}

/** Lines that qualify a NodeHost or shard view that is not the leader's settled one. */
function viewCaveats(r: Obj): string[] {
  const out: string[] = [];
  if (r.fromLeader !== true)
    out.push("(the leader could not be reached: committed records only, without live states)");
  if (r.listening === true)
    out.push("(the drummer leader is new and still listening for NodeHosts: states are provisional)");
  return out;
}

/**
 * Refuses a shard the known NodeHosts cannot hold (more replicas than hosts, a region no host
 * is in, more replicas in a region than its hosts), before anything is written. With no
 * NodeHost known yet (shards defined before the hosts start), it only says so.
 */
async function checkPlacement(d: Drummers, config: CmdConfig, io: DrummerIo): Promise<void> {
  let hosts: NodeHostView[];
  try {
    hosts = nodeHostsOf(await d.request("ListNodeHosts", {}));
  } catch {
    return; // the write itself reports what is wrong with the drummers
  }
  if (hosts.length === 0) {
    if (!config.json)
      io.err(
        "note: no NodeHost has reported to the drummers yet, so whether they can hold this shard is not checked",
      );
    return;
  }
  const usable = hosts.filter((h) => h.state !== "dead");
  if (config.replicas > usable.length) {
    throw new Error(
      `shard ${config.id} would need ${config.replicas} NodeHosts but the drummers know ${usable.length} live one(s) (${hosts.length} in all); nothing was changed (start more NodeHosts with --master, or give fewer --replicas)`,
    );
  }
  const inRegion = new Map<string, number>();
  for (const h of usable) inRegion.set(h.region, (inRegion.get(h.region) ?? 0) + 1);
  for (const g of config.regions ?? []) {
    const have = inRegion.get(g.region) ?? 0;
    if (have === 0) {
      const known = [...inRegion.keys()].map((x) => x || '""').join(", ");
      throw new Error(
        `no live NodeHost is in region ${g.region} (regions of the live NodeHosts: ${known}); nothing was changed`,
      );
    }
    if (have < g.count) {
      throw new Error(
        `--regions asks for ${g.count} replicas in ${g.region}, which has ${have} live NodeHost(s); nothing was changed`,
      );
    }
  }
}

/** `wait --healthy`: a snapshot every WAIT_POLL_MS until healthy (exit 0) or --timeout (exit 1). */
async function wait(d: Drummers, config: CmdConfig, io: DrummerIo): Promise<number> {
  const startMs = io.clock.nowMs();
  for (;;) {
    const snap = await d.snapshot();
    const v = assess(snap);
    const waited = io.clock.nowMs() - startMs;
    fatalOf(snap);
    if (v.healthy) {
      await io.progressEnd();
      if (config.json) io.out(JSON.stringify({ ok: true, healthy: true, waitedMs: Math.round(waited) }));
      else
        io.out(
          `healthy after ${(waited / 1000).toFixed(1)}s: ${progressText(snap, v, waited, config.timeout)}`,
        );
      return 0;
    }
    if (waited >= config.timeout) {
      await io.progressEnd();
      const verdict = verdictText(v);
      if (config.json)
        io.out(
          JSON.stringify({ ok: false, healthy: false, problems: v.problems, waitedMs: Math.round(waited) }),
        );
      else io.err(`longboat cmd wait: not healthy within ${config.timeout / 1000}s\n${verdict}`);
      return 1;
    }
    if (!config.json) await io.progress(progressText(snap, v, waited, config.timeout));
    await io.clock.sleep(Math.min(WAIT_POLL_MS, Math.max(1, config.timeout - waited)));
  }
}

/** Waiting cannot help when no address given is a drummer at all: that is reported at once. */
function fatalOf(snap: Snapshot): void {
  const notDrummer = snap.errors.find((e) => /is not a drummer's API/.test(e));
  if (notDrummer && snap.drummers.every((x) => !x.healthy)) throw new Error(notDrummer);
}
