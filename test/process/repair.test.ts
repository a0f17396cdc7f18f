// Repairs by the drummers with real processes (issue #15): `longboat dev --no-restart` runs 3
// drummers and 4 NodeHosts with 8 kv shards of 3 replicas, and a write load runs through the
// NodeHost API while NodeHosts and the drummer leader are killed with kill -9. The tests run
// in order on one deployment:
//   1. a NodeHost killed for good under load: every shard has 3 live members again within the
//      dead timeout + 30 s, and every acknowledged write is read back;
//   2. that NodeHost restarted after its replicas were rebuilt elsewhere: the drummers stop
//      its zombie replicas and remove their data;
//   3. a fifth NodeHost added, another NodeHost killed, and the drummer leader killed while
//      its repairs are in flight: they complete under the new leader;
// and throughout, no shard has more than 3 members or two additions in flight at once.
// Bad input to the Drummer API changes nothing.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { NodeHostClient } from "../../src/api/client.ts";
import { DrummerCallError, drummerCaller } from "../../src/drummer/client.ts";
import { DecisionKind } from "../../src/drummer/types.ts";
import { PROCESS_TEST_WALL_MS, REAL_WAIT_MS } from "../support/limits.ts";
import { freePorts } from "../support/ports.ts";
import { currentTest, parkIfEnded, track } from "../support/resources.ts";
import {
  alive,
  DevDeployment,
  HEALTH_OK,
  HOST_ALIVE,
  HOST_DEAD,
  NODEHOSTS,
  type ShardStatus,
} from "./dev-harness.ts";
import { BIN, ensureBinary, waitFor } from "./harness.ts";

const SHARDS = 8;
const DEAD_TIMEOUT_MS = 10_000; // dev's default
/** The issue's bound: every shard repaired within the dead timeout plus this. */
const REPAIR_MARGIN_MS = 30_000;
const WRITERS = 3;
/**
 * A writer starts a write at most this often. The load is bounded by time, not by a count: a
 * count was used up on a quiet machine before the writes the tests wait for after a repair.
 */
const WRITE_INTERVAL_MS = 25;
/** Acknowledged writes read back at once by lost(). */
const READERS = 8;
const DECISION_IN_FLIGHT = 1;
const DECISION_DONE = 2;

setDefaultTimeout(PROCESS_TEST_WALL_MS * 2);

const dev = new DevDeployment({ shards: SHARDS, noRestart: true, deadTimeout: `${DEAD_TIMEOUT_MS}ms` });
/** Broken rules seen by the monitor (more than 3 members, two additions in flight). */
const violations: string[] = [];
let monitorOn = false;

beforeAll(async () => {
  ensureBinary();
  await dev.start();
  monitorOn = true;
  void monitor();
}, PROCESS_TEST_WALL_MS * 2);

afterAll(async () => {
  monitorOn = false;
  await killFileNodeHosts(); // before dev.kill removes their data directories
  await dev.kill();
});

/** Polls the drummers and records every shard above 3 members and every two additions in flight. */
async function monitor(): Promise<void> {
  while (monitorOn) {
    try {
      const [shards, decisions] = await Promise.all([dev.shards(), dev.drummer("ListDecisions", {})]);
      for (const s of shards) {
        if (s.members.length > 3)
          violations.push(
            `shard ${s.definition.shardId} had ${s.members.length} members: ${JSON.stringify(s.members)}`,
          );
      }
      const adds = new Map<number, number>();
      for (const d of decisions.inFlight as { kind: number; shardId: number }[]) {
        if (d.kind !== DecisionKind.Add) continue;
        const id = Number(d.shardId);
        adds.set(id, (adds.get(id) ?? 0) + 1);
      }
      for (const [id, n] of adds) if (n > 1) violations.push(`shard ${id} had ${n} additions in flight`);
    } catch {
      // no drummer answers for a moment (the leader was killed): ask again
    }
    await Bun.sleep(250);
  }
}

/** API addresses of NodeHosts the tests started besides dev's four. */
const extraApis: string[] = [];
const allApis = () => [...dev.nodehostApis().split(","), ...extraApis];

/** NodeHosts started by a test to run on through the tests after it (killed when the file ends). */
const fileNodeHosts: ReturnType<typeof Bun.spawn>[] = [];
async function killFileNodeHosts(): Promise<void> {
  for (const proc of fileNodeHosts) proc.kill("SIGKILL");
  await Promise.all(fileNodeHosts.map((proc) => proc.exited));
}
track("NodeHosts the repair tests started for the whole file", killFileNodeHosts);

/**
 * Runs a NodeHost in master mode outside dev, killed when its test ends — or, with
 * untilFileEnds, when the file ends (a host the next tests rely on: killed at the end of its
 * test, it would never send the report that follows what it just did).
 */
function startNodeHost(raft: string, api: string, dataDir: string, untilFileEnds = false): void {
  const proc = Bun.spawn(
    [
      BIN,
      "nodehost",
      "--raft-address",
      raft,
      "--api-address",
      api,
      "--data-dir",
      dataDir,
      "--master",
      [1, 2, 3].map((j) => dev.drummerApi(j)).join(","),
    ],
    { stdout: "ignore", stderr: "ignore" },
  );
  if (untilFileEnds) {
    fileNodeHosts.push(proc);
    return;
  }
  track(`nodehost ${raft} started by the test`, async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  });
}

/** A write load on every shard through the NodeHost API; what it acknowledged. */
class Load {
  readonly acked: { shard: number; key: string; value: string }[] = [];
  failed = 0;
  /** Why writes failed: each error's message with its numbers blanked, and how often. */
  readonly failures = new Map<string, number>();
  private running = true;
  private readonly loops: Promise<void>[] = [];

  constructor(tag: string) {
    const token = currentTest();
    for (let w = 0; w < WRITERS; w++) {
      const client = new NodeHostClient({ addresses: allApis(), timeoutMs: 5000 });
      this.loops.push(
        (async () => {
          for (let n = 0; this.running; n++) {
            const startedMs = Date.now();
            const shard = ((n * WRITERS + w) % SHARDS) + 1;
            const key = `${tag}-${w}-${n}`;
            const value = `v${n}`;
            try {
              // No session: a write whose outcome is unknown is not retried and not counted.
              await client.put(shard, key, value);
              this.acked.push({ shard, key, value });
            } catch (error) {
              this.failed++;
              const why = String(error instanceof Error ? error.message : error).replace(/\d+/g, "#");
              this.failures.set(why, (this.failures.get(why) ?? 0) + 1);
            }
            await Bun.sleep(Math.max(0, startedMs + WRITE_INTERVAL_MS - Date.now()));
            await parkIfEnded(token);
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** How many writes were acknowledged, how many not, and why not. */
  summary(): string {
    const why = [...this.failures].map(([message, n]) => `${n} × ${message}`).join("; ");
    return `${this.acked.length} writes acknowledged, ${this.failed} not${why === "" ? "" : ` (${why})`}`;
  }

  /** The acknowledged writes that do not read back as written. */
  async lost(): Promise<string[]> {
    const client = new NodeHostClient({ addresses: allApis(), timeoutMs: 10_000 });
    const lost: string[] = [];
    let next = 0;
    const reader = async () => {
      for (let w = this.acked[next++]; w !== undefined; w = this.acked[next++]) {
        const got = await client.get(w.shard, w.key);
        const text = got === null ? null : new TextDecoder().decode(got);
        if (text !== w.value) lost.push(`shard ${w.shard} ${w.key}: ${text} instead of ${w.value}`);
      }
    };
    await Promise.all(Array.from({ length: READERS }, reader));
    return lost.sort();
  }
}

/** Every shard healthy with 3 members, none on the given NodeHosts. */
async function repaired(without: string[]): Promise<boolean> {
  try {
    const shards = await dev.shards();
    return (
      shards.length === SHARDS &&
      shards.every(
        (s) =>
          s.health === HEALTH_OK &&
          s.members.length === 3 &&
          s.members.every((m) => !without.includes(m.raftAddress)),
      )
    );
  } catch {
    return false;
  }
}

/** The NodeHost (index) holding the most replicas. */
function busiest(shards: ShardStatus[], exclude: number[] = []): number {
  let best = 0;
  let most = -1;
  for (const i of NODEHOSTS) {
    if (exclude.includes(i)) continue;
    const n = shards.filter((s) => s.members.some((m) => m.raftAddress === dev.nodehostRaft(i))).length;
    if (n > most) [best, most] = [i, n];
  }
  return best;
}

/** The replicas the shards list on NodeHost i. */
function replicasOn(shards: ShardStatus[], i: number): { shardId: number; replicaId: number }[] {
  return shards.flatMap((s) =>
    s.members
      .filter((m) => m.raftAddress === dev.nodehostRaft(i))
      .map((m) => ({ shardId: s.definition.shardId, replicaId: m.replicaId })),
  );
}

async function repairedWithin(
  without: string[],
  fromMs: number,
  boundMs: number,
  what: string,
): Promise<number> {
  try {
    await waitFor(() => repaired(without), boundMs - (Date.now() - fromMs), what);
  } catch (error) {
    console.error(JSON.stringify(await dev.shards().catch(() => "?"), null, 1));
    console.error(
      JSON.stringify(await dev.drummer("ListDecisions", { includeFinished: true }).catch(() => "?")),
    );
    throw error;
  }
  return Date.now() - fromMs;
}

let firstVictim = 0;
let firstVictimReplicas: { shardId: number; replicaId: number }[] = [];

describe("repairs with real processes", () => {
  test("bad input to the Drummer API is refused with the reason and changes nothing", async () => {
    // What bad input could change: the definitions and the members (not who leads right now).
    const layout = async () =>
      (await dev.shards()).map((s) => ({
        definition: s.definition,
        members: s.members.map((m) => [m.replicaId, m.raftAddress]),
      }));
    const before = await layout();
    const deployment = await dev.drummer("GetDeployment");
    const refused = async (method: "CreateShard" | "Bootstrap", req: Record<string, unknown>) => {
      const e = await dev.drummer(method, req).then(
        () => null,
        (error: unknown) => error,
      );
      expect(e).toBeInstanceOf(DrummerCallError);
      return e as DrummerCallError;
    };
    const inUse = await refused("CreateShard", { shardId: 1, app: "kv", replicaCount: 3 });
    expect([inUse.code, inUse.detail]).toEqual([
      "already_exists",
      "shard 1 is already defined (app kv, 3 replicas)",
    ]);
    const twice = await refused("Bootstrap", {});
    expect([twice.code, twice.detail]).toEqual([
      "failed_precondition",
      "the deployment is already bootstrapped",
    ]);
    const noReplicas = await refused("CreateShard", { shardId: 99, app: "kv", replicaCount: 0 });
    expect(noReplicas.code).toBe("invalid_argument");
    expect(noReplicas.detail).toContain("CreateShardRequest.replicaCount must be an integer in 1..");
    const badApp = await refused("CreateShard", { shardId: 99, app: "no such/app", replicaCount: 3 });
    expect(badApp.code).toBe("invalid_argument");
    expect(badApp.detail).toContain("CreateShardRequest.app must be an app name");
    // A NodeHost's API address given as a drummer's: a clear error, not a crash or a hang.
    const call = drummerCaller();
    const notDrummer = await call(dev.nodehostApi(1), "GetDeployment", {}, { timeoutMs: 5000 }).then(
      () => null,
      (error: unknown) => error as DrummerCallError,
    );
    expect(notDrummer).toBeInstanceOf(DrummerCallError);
    expect(notDrummer!.code).not.toBe("unavailable");
    // Nothing changed.
    expect(await layout()).toEqual(before);
    expect(await dev.drummer("GetDeployment")).toEqual(deployment);
    expect(await nodehostHealthy(1)).toBe(true);
  });

  test("kill -9 of a NodeHost under write load: every shard has 3 live members within the dead timeout + 30 s, no acknowledged write lost", async () => {
    const load = new Load("a");
    await waitFor(() => load.acked.length >= 200, REAL_WAIT_MS, "200 acknowledged writes before the kill");
    const shards = await dev.shards();
    firstVictim = busiest(shards);
    firstVictimReplicas = replicasOn(shards, firstVictim);
    expect(firstVictimReplicas.length).toBeGreaterThan(0);
    const pid = dev.pid(`nodehost-${firstVictim}`)!;
    process.kill(pid, "SIGKILL");
    const killedMs = Date.now();
    const tookMs = await repairedWithin(
      [dev.nodehostRaft(firstVictim)],
      killedMs,
      DEAD_TIMEOUT_MS + REPAIR_MARGIN_MS,
      `every shard rebuilt without nodehost-${firstVictim}`,
    );
    // The load ran through the repair and on after it.
    const atRepair = load.acked.length;
    await waitFor(
      () => load.acked.length >= atRepair + 100,
      REAL_WAIT_MS,
      "100 writes after the repair",
    ).catch((error: unknown) => {
      console.error(`load: ${load.summary()}`);
      throw error;
    });
    await load.stop();
    expect(alive(pid)).toBe(false);
    expect(dev.stdout).toContain(
      `longboat dev: nodehost-${firstVictim} killed by SIGKILL; left dead (--no-restart)`,
    );
    expect(dev.stdout).toContain(`longboat dev: the drummers see nodehost-${firstVictim} dead`);
    const hosts = await dev.hosts();
    expect(hosts.find((h) => h.raftAddress === dev.nodehostRaft(firstVictim))?.state).toBe(HOST_DEAD);
    expect(await load.lost()).toEqual([]);
    console.log(
      `repair after kill -9 of nodehost-${firstVictim} (${firstVictimReplicas.length} replicas): ${tookMs} ms (bound ${DEAD_TIMEOUT_MS + REPAIR_MARGIN_MS}); ${load.summary()}`,
    );
    expect(violations).toEqual([]);
  });

  test("the killed NodeHost back after its replicas were rebuilt: its zombie replicas are stopped and their data removed", async () => {
    expect(firstVictim).toBeGreaterThan(0);
    const i = firstVictim;
    // It runs on after this test: the next one waits for its reports of the kills.
    startNodeHost(dev.nodehostRaft(i), dev.nodehostApi(i), join(dev.dir, `nodehost-${i}`), true);
    const client = new NodeHostClient({ addresses: [dev.nodehostApi(i)], timeoutMs: 5000 });
    const stale = (info: {
      logsOnDisk?: { shardId?: unknown; replicaId?: unknown }[];
      shards?: { shardId?: unknown; replicaId?: unknown }[];
    }) =>
      [...(info.logsOnDisk ?? []), ...(info.shards ?? [])].filter((x) =>
        firstVictimReplicas.some(
          (r) => r.shardId === Number(x.shardId) && r.replicaId === Number(x.replicaId),
        ),
      );
    // It held the replicas' data when it stopped: it comes back with it.
    await waitFor(
      () =>
        client.status().then(
          () => true,
          () => false,
        ),
      REAL_WAIT_MS,
      `nodehost-${i} API`,
    );
    await waitFor(
      async () => {
        const status = await client.status().catch(() => null);
        return status !== null && stale(status as never).length === 0;
      },
      DEAD_TIMEOUT_MS + REPAIR_MARGIN_MS,
      `nodehost-${i}'s stale replicas stopped and their data removed`,
    );
    await waitFor(
      async () =>
        (await dev.hosts()).find((h) => h.raftAddress === dev.nodehostRaft(i))?.state === HOST_ALIVE,
      REAL_WAIT_MS,
      `nodehost-${i} alive to the drummers`,
    );
    // The shards stay as repaired: 3 members each, none of them the zombies.
    expect(await repaired([dev.nodehostRaft(i)])).toBe(true);
    expect(violations).toEqual([]);
  });
  // The host must outlive the test above: when it was killed as that test ended (a few ms after
  // its kills, before its next report), the kills ended FAILED, "no effect seen within 10000 ms".
  test("the drummers see the zombie kills done", async () => {
    const i = firstVictim;
    // The drummers decided each kill and saw it done.
    type D = {
      kind: number;
      shardId: number;
      replicaId: number;
      replicaAddress: string;
      state: number;
      outcome: string;
    };
    const kills = async () => {
      const d = await dev.drummer("ListDecisions", { includeFinished: true });
      return [...(d.finished as D[]), ...(d.inFlight as D[])]
        .filter((x) => x.kind === DecisionKind.Kill && x.replicaAddress === dev.nodehostRaft(i))
        .map((x) => ({
          shardId: Number(x.shardId),
          replicaId: Number(x.replicaId),
          state: x.state,
          outcome: x.outcome,
        }));
    };
    const isOf = (x: { shardId: number; replicaId: number }, r: { shardId: number; replicaId: number }) =>
      x.shardId === r.shardId && x.replicaId === r.replicaId;
    await waitFor(
      async () => {
        const k = await kills().catch(() => []);
        return firstVictimReplicas.every((r) => k.some((x) => isOf(x, r) && x.state !== DECISION_IN_FLIGHT));
      },
      DEAD_TIMEOUT_MS + REPAIR_MARGIN_MS,
      "the kill decisions ended",
    );
    const ended = await kills();
    for (const r of firstVictimReplicas) {
      expect(ended.filter((x) => isOf(x, r)).map((x) => [x.state, x.outcome])).toContainEqual([
        DECISION_DONE,
        `replica ${r.replicaId} stopped and its data removed on ${dev.nodehostRaft(i)}`,
      ]);
    }
  });

  test("the drummer leader killed with kill -9 while repairs are in flight: the repairs complete under the new leader", async () => {
    expect(firstVictim).toBeGreaterThan(0);
    const load = new Load("b");
    await waitFor(() => load.acked.length >= 100, REAL_WAIT_MS, "100 acknowledged writes before the kill");
    // A fifth NodeHost (fresh data) for the repairs to go to.
    const [raftPort, apiPort] = freePorts(2);
    const fifth = { raft: `127.0.0.1:${raftPort}`, api: `127.0.0.1:${apiPort}` };
    startNodeHost(fifth.raft, fifth.api, join(dev.dir, "nodehost-5"));
    extraApis.push(fifth.api);
    await waitFor(
      async () =>
        (await dev.hosts().catch(() => [])).some(
          (h) => h.raftAddress === fifth.raft && h.state === HOST_ALIVE,
        ),
      REAL_WAIT_MS,
      "the fifth NodeHost alive to the drummers",
    );
    const victim = busiest(await dev.shards());
    process.kill(dev.pid(`nodehost-${victim}`)!, "SIGKILL");
    const killedMs = Date.now();
    // Wait for the repairs of its replicas to start, then kill the drummer that decided them.
    let inFlight: { decisionId: number; repair: boolean }[] = [];
    await waitFor(
      async () => {
        const d = await dev.drummer("ListDecisions", {}).catch(() => null);
        inFlight = ((d?.inFlight ?? []) as { decisionId: number; repair: boolean }[]).filter((x) => x.repair);
        return inFlight.length > 0;
      },
      DEAD_TIMEOUT_MS + REPAIR_MARGIN_MS,
      `repairs of nodehost-${victim}'s replicas in flight`,
    );
    const oldLeader = Number((await dev.drummer("GetDeployment")).leaderDrummerId);
    expect(oldLeader).toBeGreaterThan(0);
    process.kill(dev.pid(`drummer-${oldLeader}`)!, "SIGKILL");
    const leaderKilledMs = Date.now();
    // The new leader listens for a dead timeout before it judges NodeHosts, then repairs.
    const tookMs = await repairedWithin(
      [dev.nodehostRaft(victim)],
      leaderKilledMs,
      2 * DEAD_TIMEOUT_MS + REPAIR_MARGIN_MS,
      `every shard rebuilt without nodehost-${victim} under a new drummer leader`,
    );
    const newLeader = Number((await dev.drummer("GetDeployment")).leaderDrummerId);
    expect(newLeader).toBeGreaterThan(0);
    expect(newLeader).not.toBe(oldLeader);
    await load.stop();
    expect(await load.lost()).toEqual([]);
    // No shard ever had two additions in flight: the decisions' lifetimes, from the replicated history.
    const history = await dev.drummer("ListDecisions", { includeFinished: true });
    const adds = [
      ...(history.finished as { kind: number; shardId: number; createdMs: number; endedMs: number }[]),
      ...(history.inFlight as { kind: number; shardId: number; createdMs: number; endedMs: number }[]),
    ].filter((d) => d.kind === DecisionKind.Add);
    for (const a of adds) {
      const overlapping = adds.filter(
        (b) =>
          b !== a &&
          Number(b.shardId) === Number(a.shardId) &&
          Number(b.createdMs) < (Number(a.endedMs) || Number.MAX_SAFE_INTEGER) &&
          Number(a.createdMs) < (Number(b.endedMs) || Number.MAX_SAFE_INTEGER),
      );
      expect(overlapping).toEqual([]);
    }
    console.log(
      `repair of nodehost-${victim} with drummer leader ${oldLeader} killed mid-repair: ${tookMs} ms after the leader's kill, ${Date.now() - killedMs} ms after the host's; ${inFlight.length} repair decisions were in flight; ${load.summary()}`,
    );
    expect(violations).toEqual([]);
  });
});

async function nodehostHealthy(i: number): Promise<boolean> {
  try {
    return (await fetch(`http://${dev.nodehostApi(i)}/healthz`)).ok;
  } catch {
    return false;
  }
}
