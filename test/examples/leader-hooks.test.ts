// The fencing examples of docs/leader-hooks.md: they keep the highest term and refuse a stale one.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fencedReceiver } from "../../examples/leader-hooks/webhook-receiver.ts";
import { webhookRunner } from "../../src/cli/hooks.ts";
import type { LeaderChange } from "../../src/hooks/queue.ts";

const FENCE = join(import.meta.dir, "../../examples/leader-hooks/fence.sh");
/** These tests start shell processes: on a busy machine each start can take a second. */
const SPAWNS_MS = 60_000;

let dir = "";
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function fence(
  term: number,
  role = "leader",
  shard = 1,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([FENCE, join(dir, "state")], {
    env: {
      ...process.env,
      LONGBOAT_SHARD: String(shard),
      LONGBOAT_TERM: String(term),
      LONGBOAT_ROLE: role,
      LONGBOAT_RAFT_ADDRESS: `h${term}:7001`,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  return Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]).then(
    ([code, stdout, stderr]) => ({ code, stdout, stderr }),
  );
}

/** The terms in actions.log, in the order they were decided, with their verdicts. */
function decisions(): { term: number; verdict: string }[] {
  return readFileSync(join(dir, "state", "actions.log"), "utf8")
    .trim()
    .split("\n")
    .map((line) => ({ term: Number(/term=(\d+)/.exec(line)![1]), verdict: line.split(" ").at(-1)! }));
}

describe("examples/leader-hooks/fence.sh", () => {
  test(
    "accepts a term at least the highest seen and refuses a lower one, per shard",
    async () => {
      dir = mkdtempSync(join(tmpdir(), "longboat-fence-"));
      expect(await fence(5)).toMatchObject({ code: 0, stdout: "accepted: shard 1 term 5 role leader\n" });
      expect(await fence(7, "leader")).toMatchObject({ code: 0 });
      const stale = await fence(6, "leader");
      expect(stale.code).toBe(3);
      expect(stale.stderr).toBe("refused: term 6 of shard 1 is stale (highest seen 7)\n");
      expect(await fence(7, "none")).toMatchObject({ code: 0 }); // the same term: the same reign
      expect(await fence(2, "leader", 2)).toMatchObject({ code: 0 }); // another shard has its own term
      expect(decisions()).toEqual([
        { term: 5, verdict: "accepted" },
        { term: 7, verdict: "accepted" },
        { term: 6, verdict: "refused" },
        { term: 7, verdict: "accepted" },
        { term: 2, verdict: "accepted" },
      ]);
    },
    SPAWNS_MS,
  );

  test(
    "hooks racing from many hosts: what it accepts never goes down, and the highest term wins",
    async () => {
      dir = mkdtempSync(join(tmpdir(), "longboat-fence-"));
      const terms = Array.from({ length: 8 }, (_, i) => i + 1).sort(() => Math.random() - 0.5);
      const results = await Promise.all(terms.map((t) => fence(t)));
      expect(results.every((r) => r.code === 0 || r.code === 3)).toBe(true);
      let highest = 0;
      for (const d of decisions()) {
        if (d.verdict === "accepted") {
          expect(d.term).toBeGreaterThanOrEqual(highest);
          highest = d.term;
        } else expect(d.term).toBeLessThan(highest);
      }
      expect(readFileSync(join(dir, "state", "shard-1.term"), "utf8").trim()).toBe("8");
    },
    SPAWNS_MS,
  );

  test(
    "refuses to run without its environment",
    async () => {
      dir = mkdtempSync(join(tmpdir(), "longboat-fence-"));
      const p = Bun.spawnSync([FENCE, join(dir, "state")], {
        env: { PATH: process.env.PATH ?? "" },
        stderr: "pipe",
      });
      expect(p.exitCode).not.toBe(0);
      expect(p.stderr.toString()).toContain("LONGBOAT_SHARD is not set");
    },
    SPAWNS_MS,
  );
});

describe("examples/leader-hooks/webhook-receiver.ts", () => {
  test("answers 409 to a stale term, which the webhook does not retry; a newer term is accepted", async () => {
    const acted: number[] = [];
    const receive = fencedReceiver((c) => acted.push(c.term));
    const post = webhookRunner({
      url: "http://receiver/leader",
      raftAddress: "h1:7001",
      fetch: (url, init) => receive(new Request(url, init)),
    });
    const change = (term: number): LeaderChange => ({
      shardId: 1,
      replicaId: 1,
      term,
      leaderId: 1,
      role: "leader",
    });
    const never = new AbortController().signal;
    expect(await post(change(7), 1, never)).toEqual({ ok: true, detail: { status: 204 } });
    expect(await post(change(6), 1, never)).toEqual({
      ok: false,
      retry: false,
      detail: { status: 409, body: "stale term 6 for shard 1 (highest seen 7)\n" },
    });
    expect(await post(change(8), 1, never)).toMatchObject({ ok: true });
    expect(acted).toEqual([7, 8]);
  });
});
