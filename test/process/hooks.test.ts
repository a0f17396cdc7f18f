// Leader-change hooks on three real nodehost processes: the fence example as the hook, kill -9
// of the leader, SIGTERM of the next one.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROCESS_TEST_WALL_MS, REAL_WAIT_MS } from "../support/limits.ts";
import { TimerLateness } from "../support/lateness.ts";
import { track } from "../support/resources.ts";
import { BIN, ensureBinary, type HostSpec, ProcessCluster, ROOT, waitFor } from "./harness.ts";

/** One tick; the election timeout is 10 ticks (the default electionRtt). */
const RTT_MS = 100;
const ELECTION_TIMEOUT_MS = 10 * RTT_MS;
/** Five ticks for the three round trips of PreVote, Vote and the first commit, on a busy machine. */
const ELECTION_ROUNDS_MS = 5 * RTT_MS;
const FENCE = join(ROOT, "examples/leader-hooks/fence.sh");

interface Action {
  atMs: number;
  shard: number;
  term: number;
  role: string;
  host: string;
  verdict: string;
}

/** Three nodehosts whose --on-leader-change is fence.sh over one shared state directory. */
class HookedCluster extends ProcessCluster {
  readonly state = mkdtempSync(join(tmpdir(), "longboat-hooks-state-"));

  override args(h: HostSpec): string[] {
    const a = super.args(h);
    a[a.indexOf("--rtt-ms") + 1] = String(RTT_MS);
    return [...a, "--on-leader-change", `${FENCE} ${this.state}`, "--hook-timeout-ms", "5000"];
  }

  actions(): Action[] {
    const file = join(this.state, "actions.log");
    if (!existsSync(file)) return [];
    return readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((line) => {
        const field = (k: string) => new RegExp(`${k}=(\\S+)`).exec(line)![1]!;
        return {
          atMs: Number(BigInt(line.split(" ")[0]!) / 1_000_000n),
          shard: Number(field("shard")),
          term: Number(field("term")),
          role: field("role"),
          host: field("host"),
          verdict: line.split(" ").at(-1)!,
        };
      });
  }

  /** When host index's nodehost started the hook for a change matching pick (its log's time). */
  hookStartMs(index: number, pick: (e: { role: string; term: number }) => boolean): number | undefined {
    for (const line of (this.logs.get(index) ?? "").split("\n")) {
      if (!line.includes('"hook-start"')) continue;
      const e = JSON.parse(line) as { time: string; role: string; term: number };
      if (pick(e)) return Date.parse(e.time);
    }
    return undefined;
  }

  hostIndex(raft: string): number {
    return this.hosts.find((h) => h.raft === raft)!.index;
  }
}

/** Collects a process's output as it comes; lines() parses the JSON lines so far. */
function collect(stream: ReadableStream<Uint8Array>) {
  const out = {
    text: "",
    lines: () =>
      out.text
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) out.text += decoder.decode(chunk);
  })();
  return out;
}

beforeAll(() => ensureBinary());

describe("--on-leader-change on three nodehost processes", () => {
  const cluster = new HookedCluster(1);
  beforeAll(async () => {
    await cluster.init();
    await cluster.startAll();
  }, PROCESS_TEST_WALL_MS);
  afterAll(async () => {
    await cluster.stop();
    rmSync(cluster.state, { recursive: true, force: true });
  });

  test(
    "kill -9 of the leader: the new leader's hook runs with a higher term within two election timeouts (and the election's round trips)",
    async () => {
      await waitFor(
        () => cluster.actions().some((a) => a.role === "leader"),
        REAL_WAIT_MS,
        "a first leader's hook",
      );
      const first = cluster.actions().find((a) => a.role === "leader")!;
      expect(first.verdict).toBe("accepted");
      const victim = cluster.hostIndex(first.host);
      expect(await cluster.leaderOf(1)).toBe(victim);
      // The other two hosts' hooks were told "follower" of the same term.
      await waitFor(
        () => cluster.actions().filter((a) => a.role === "follower" && a.term === first.term).length === 2,
        REAL_WAIT_MS,
        "the followers' hooks",
      );
      // `cmd watch` on all three hosts shows the kill as it happens.
      const watcher = Bun.spawn([BIN, "cmd", "watch", "--nodehost", cluster.api(), "--json"], {
        stdout: "pipe",
        stderr: "pipe",
      });
      track("cmd watch", () => watcher.kill("SIGKILL"));
      const watchOut = collect(watcher.stdout);
      const watchErr = collect(watcher.stderr);
      await waitFor(
        () => (watchErr.text.match(/: watching\n/g) ?? []).length === 3,
        REAL_WAIT_MS,
        "cmd watch on 3 hosts",
      );
      // The nodehosts' ticks are 100 ms timers: on a busy machine each fires late, which the
      // probe's timers of the same period measure over the same window.
      const lateness = new TimerLateness(RTT_MS);
      const killedAtMs = Date.now();
      let lateMs: number;
      try {
        await cluster.kill(victim);
        await waitFor(
          () => cluster.actions().some((a) => a.role === "leader" && a.term > first.term),
          REAL_WAIT_MS,
          "a new leader's hook",
        );
      } finally {
        lateMs = await lateness.stop();
      }
      const next = cluster.actions().find((a) => a.role === "leader" && a.term > first.term)!;
      expect(next.verdict).toBe("accepted");
      const successor = cluster.hostIndex(next.host);
      expect(successor).not.toBe(victim);
      // The nodehost starts the hook (its "hook-start" log line) within two election timeouts of
      // the kill, plus the round trips of the election: a follower campaigns when its randomized
      // timeout, drawn from [E, 2E) ticks, runs out after the last heartbeat (at most one tick
      // before the kill); PreVote, Vote and the new term's first commit take three round trips,
      // given ELECTION_ROUNDS_MS. How long the script itself then takes is the script's business.
      // That is per campaign: two followers whose timeouts run out together split the vote and
      // campaign again, each campaign in a new term, so the terms since the first leader's count
      // the campaigns. The bound is in ticks: what the machine delayed the ticks by (lateMs) is
      // added to it.
      const startedMs = cluster.hookStartMs(successor, (e) => e.role === "leader" && e.term === next.term)!;
      const campaigns = next.term - first.term;
      const boundMs = campaigns * (2 * ELECTION_TIMEOUT_MS + ELECTION_ROUNDS_MS) + lateMs;
      const tookMs = startedMs - killedAtMs;
      console.log(
        `new leader's hook ${tookMs} ms after the kill: ${campaigns} campaign(s), ticks ${lateMs} ms late`,
      );
      expect(tookMs).toBeLessThanOrEqual(boundMs);
      // The fence took every decision in term order: what it accepted never went down, and what
      // it refused (another host's hook of an older term that ran late) was below what it had.
      let highest = 0;
      for (const a of cluster.actions()) {
        if (a.verdict === "accepted") {
          expect(a.term).toBeGreaterThanOrEqual(highest);
          highest = a.term;
        } else expect(a.term).toBeLessThan(highest);
      }
      const victimApi = cluster.hosts[victim - 1]!.api;
      const successorApi = cluster.hosts[successor - 1]!.api;
      await waitFor(
        () =>
          watchOut
            .lines()
            .some(
              (e) => e.nodehost === successorApi && e.kind === "roleChanged" && Number(e.term) === next.term,
            ),
        REAL_WAIT_MS,
        "cmd watch to show the new leader",
      );
      const shown = watchOut
        .lines()
        .find(
          (e) => e.nodehost === successorApi && e.kind === "roleChanged" && Number(e.term) === next.term,
        )!;
      expect(shown).toMatchObject({ shardId: "1", role: "leader", leaderId: String(successor) });
      expect(watchErr.text).toContain(`${victimApi}: connection lost`);
      watcher.kill("SIGINT");
      expect(await watcher.exited).toBe(0);
    },
    PROCESS_TEST_WALL_MS,
  );

  test(
    "SIGTERM: the leader hands over and its hook is told none before the process exits",
    async () => {
      const leader = await cluster.waitLeader(1);
      const raft = cluster.hosts[leader - 1]!.raft;
      const code = await cluster.kill(leader, "SIGTERM");
      expect(code).toBe(0);
      const mine = cluster.actions().filter((a) => a.host === raft);
      expect(mine.at(-1)).toMatchObject({ role: "none", verdict: "accepted" });
      expect(cluster.logs.get(leader)).toContain('"event":"hook-done"');
    },
    PROCESS_TEST_WALL_MS,
  );
});
