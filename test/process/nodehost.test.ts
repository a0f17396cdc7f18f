// Process tests of `longboat nodehost` and `longboat cmd` with the compiled binary (dev: dev.test.ts).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeKvQueryResult, encodeKvCommand, encodeKvQuery } from "../../src/statemachine/kv.ts";
import { PROCESS_TEST_WALL_MS, REAL_WAIT_MS } from "../support/limits.ts";
import { freePorts } from "../support/ports.ts";
import { track } from "../support/resources.ts";
import { BIN, cmd, ensureBinary, ProcessCluster, waitFor } from "./harness.ts";

setDefaultTimeout(PROCESS_TEST_WALL_MS);

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString("base64");
const kvPut = (key: string, value: string) =>
  b64(encodeKvCommand({ op: "put", key, value: new TextEncoder().encode(value) }));

beforeAll(() => ensureBinary());

/** Bound of the write load of the kill -9 test (it stops as soon as the restarted host serves). */
/** The writer's pause after a write that failed (the cluster is electing a leader). */
const FAILED_WRITE_PAUSE_MS = 20;

describe("three nodehost processes", () => {
  const cluster = new ProcessCluster(3);
  beforeAll(async () => {
    await cluster.init();
    await cluster.startAll();
  }, PROCESS_TEST_WALL_MS);
  afterAll(() => cluster.stop());

  test("cmd put on one host and cmd get on another return the value; get of an absent key exits 1", () => {
    const [a, b] = [cluster.hosts[0]!.api, cluster.hosts[1]!.api];
    expect(cmd(["put", "--nodehost", a, "--shard", "1", "greeting", "hello"]).code).toBe(0);
    const got = cmd(["get", "--nodehost", b, "--shard", "1", "greeting"]);
    expect(got).toMatchObject({ code: 0, stdout: "hello\n" });
    const absent = cmd(["get", "--nodehost", b, "--shard", "1", "nothing-here"]);
    expect(absent.code).toBe(1);
    expect(absent.stderr).toContain("not found");
  });

  test("cmd add counts from 0 and prints the new value; add on a non-integer value fails with the reason", () => {
    const [a, b] = [cluster.hosts[0]!.api, cluster.hosts[1]!.api];
    expect(cmd(["add", "--nodehost", a, "--shard", "1", "visits", "5"])).toMatchObject({
      code: 0,
      stdout: "5\n",
    });
    expect(cmd(["add", "--nodehost", b, "--shard", "1", "visits", "--", "-2"])).toMatchObject({
      code: 0,
      stdout: "3\n",
    });
    expect(cmd(["get", "--nodehost", b, "--shard", "1", "visits"]).stdout).toBe("3\n");
    expect(cmd(["put", "--nodehost", a, "--shard", "1", "word", "hello"]).code).toBe(0);
    const bad = cmd(["add", "--nodehost", a, "--shard", "1", "word", "1"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("not an integer counter");
  });

  test("cmd status lists every shard with role, leader and indexes; --json gives structure", () => {
    const human = cmd(["status", "--nodehost", cluster.hosts[2]!.api]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("SHARD");
    const json = JSON.parse(cmd(["status", "--nodehost", cluster.hosts[2]!.api, "--json"]).stdout);
    expect(json.shards.map((s: { shard: number }) => s.shard)).toEqual([1, 2, 3]);
    expect(json.shards.every((s: { leader: unknown }) => typeof s.leader === "number")).toBe(true);
  });

  test("a plain fetch JSON client proposes and reads through the Connect API of any host", async () => {
    for (const i of [1, 2, 3]) {
      const res = await cluster.call(i, "Propose", {
        shardId: "2",
        command: kvPut(`from-${i}`, "x"),
        timeoutMs: 5000,
      });
      expect(res.status).toBe(200);
    }
    const query = b64(encodeKvQuery({ op: "get", key: "from-3" }));
    const read = await cluster.call(1, "Read", { shardId: "2", query, timeoutMs: 5000 });
    expect(read.status).toBe(200);
    const body = (await read.json()) as { result: string };
    const answer = decodeKvQueryResult(Buffer.from(body.result, "base64"));
    expect(answer.found).toBe(true);
    expect(new TextDecoder().decode(answer.value)).toBe("x");
  });

  test("bad requests get their Connect code and the server keeps serving", async () => {
    const malformed = await cluster.call(1, "Propose", "{not json");
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { code: string }).code).toBe("invalid_argument");
    const unknownShard = await cluster.call(1, "Read", { shardId: "99", query: b64("q") });
    expect(((await unknownShard.json()) as { code: string }).code).toBe("not_found");
    const unknownMethod = await cluster.call(1, "NoSuchMethod", {});
    expect(((await unknownMethod.json()) as { code: string }).code).toBe("unimplemented");
    const big = await cluster.call(1, "Propose", {
      shardId: "1",
      command: b64("x".repeat(17 * 1024 * 1024)),
    });
    expect(((await big.json()) as { code: string }).code).toBe("resource_exhausted");
    // Commands the kv app refuses: before proposing (invalid_argument), or when applied
    // (failed_precondition with the log index); never a 200 with the refusal in its data.
    const refused = async (command: string) => {
      const res = await cluster.call(1, "Propose", { shardId: "1", command });
      return { status: res.status, ...((await res.json()) as { code: string; message: string }) };
    };
    const value3MB = encodeKvCommand({ op: "put", key: "big", value: new Uint8Array(3 * 1024 * 1024) });
    expect(await refused(b64(value3MB))).toMatchObject({
      status: 400,
      code: "invalid_argument",
      message: expect.stringContaining("put: value is 3145728 bytes, above the limit of 1048576"),
    });
    expect(await refused(b64(new Uint8Array([0xff, 0xff, 0xff])))).toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("kv command does not decode"),
    });
    // A 503 (unavailable: not applied, e.g. while a loaded machine elects a leader) is asked
    // again, as a client would; what this test asserts is the answer once the shard serves.
    const answered = async (command: string) => {
      const deadlineMs = Date.now() + REAL_WAIT_MS;
      let r = await refused(command);
      while (r.status === 503 && Date.now() < deadlineMs) {
        await Bun.sleep(100);
        r = await refused(command);
      }
      return r;
    };
    expect((await answered(kvPut("word2", "x"))).status).toBe(200);
    expect(await answered(b64(encodeKvCommand({ op: "add", key: "word2", delta: 1 })))).toMatchObject({
      status: 400,
      code: "failed_precondition",
      message: expect.stringMatching(
        /refused the command at log index \d+ \(nothing changed\): add: the value/,
      ),
    });
    expect(cmd(["put", "--nodehost", cluster.hosts[0]!.api, "--shard", "1", "still", "serving"]).code).toBe(
      0,
    );
  });

  test("/metrics reports fsync time, batch sizes, the log writer's work, queue depths, transport bytes and API latency", async () => {
    expect(cmd(["put", "--nodehost", cluster.hosts[0]!.api, "--shard", "1", "m", "1"]).code).toBe(0);
    const text = await (await fetch(`http://${cluster.hosts[0]!.api}/metrics`)).text();
    for (const name of [
      "longboat_logdb_save_duration_seconds_bucket",
      "longboat_logdb_save_batch_entries_count",
      'longboat_queue_depth{queue="proposals"}',
      'longboat_transport_bytes_total{direction="sent"}',
      "longboat_api_request_duration_seconds_bucket",
      "longboat_raft_elections_total",
      'longboat_logdb_writer_transactions_total{kind="append"}',
      'longboat_logdb_writer_seconds_total{kind="commit"}',
    ]) {
      expect(text).toContain(name);
    }
  });

  test("kill -9 of the leader during a write load loses no acknowledged write; the restarted host catches up", async () => {
    const leader = await cluster.waitLeader(1);
    const acked: string[] = [];
    let stop = false;
    const writer = (async () => {
      // Bounded by time, not by a count of attempts: failures while the leader is down come
      // fast, and a count would be used up by them before the writes after the kill.
      for (let i = 0; !stop; i++) {
        const host = ((i % 3) + 1) as 1 | 2 | 3;
        if (!cluster.procs.has(host)) continue;
        try {
          const res = await cluster.call(host, "Propose", {
            shardId: "1",
            command: kvPut(`w${i}`, `${i}`),
            timeoutMs: 3000,
          });
          if (res.status === 200) acked.push(`w${i}`);
        } catch {
          // connection refused while the host is down: not acknowledged
          await Bun.sleep(FAILED_WRITE_PAUSE_MS);
        }
      }
    })();
    try {
      await waitFor(() => acked.length >= 20, REAL_WAIT_MS, "20 acknowledged writes");
      await cluster.kill(leader, "SIGKILL");
      const before = acked.length;
      await waitFor(() => acked.length >= before + 20, REAL_WAIT_MS, "writes acknowledged after the kill");
      cluster.start(leader);
      await waitFor(
        () => cluster.healthy(cluster.hosts[leader - 1]!.api),
        REAL_WAIT_MS,
        "the restarted host's API",
      );
    } finally {
      stop = true;
      await writer;
    }
    const last = acked.at(-1)!;
    await waitFor(
      async () => (await readAll(leader, 1))?.get(last) === last.slice(1),
      REAL_WAIT_MS,
      "the restarted host to apply the last acknowledged write",
    );
    // A linearizable scan on the restarted host: every acknowledged write is there.
    let values: Map<string, string> | null = null;
    await waitFor(
      async () => {
        values = await readAll(leader, 1);
        return values !== null;
      },
      REAL_WAIT_MS,
      "a scan of the restarted host",
    );
    for (const key of acked) expect({ key, value: values!.get(key) }).toEqual({ key, value: key.slice(1) });
  });

  test("SIGSTOP of a follower does not stop writes; after SIGCONT it catches up", async () => {
    const leader = await cluster.waitLeader(3);
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    await cluster.kill(follower, "SIGSTOP");
    try {
      const other = [1, 2, 3].find((i) => i !== follower)!;
      for (let i = 0; i < 10; i++) {
        expect(
          cmd(["put", "--nodehost", cluster.hosts[other - 1]!.api, "--shard", "3", `p${i}`, `${i}`]).code,
        ).toBe(0);
      }
    } finally {
      await cluster.kill(follower, "SIGCONT");
    }
    await waitFor(
      async () => (await readAll(follower, 3))?.get("p9") === "9",
      REAL_WAIT_MS,
      "the resumed follower to catch up",
    );
  });

  test("SIGTERM moves leadership to a peer before the process exits", async () => {
    const leader = await cluster.waitLeader(2);
    try {
      const code = await cluster.kill(leader, "SIGTERM");
      expect(code).toBe(0);
      const log = cluster.logs.get(leader) ?? "";
      expect(log).toContain('"event":"leadership-handed-over"');
      expect(log).toMatch(/"stillLeading":\[\]/);
      const next = await cluster.waitLeader(2);
      expect(next).not.toBe(leader);
    } finally {
      if (!cluster.procs.has(leader)) cluster.start(leader);
    }
  });

  /**
   * Every key → value of a shard, read (linearizably) through one host's API; null while the
   * host cannot answer (not caught up, restarting, or a pooled connection reset after SIGCONT).
   */
  async function readAll(index: number, shardId: number): Promise<Map<string, string> | null> {
    const out = new Map<string, string>();
    let start = "";
    for (;;) {
      const query = b64(encodeKvQuery({ op: "scan", start, end: "", limit: 1000 }));
      let res: Response;
      try {
        res = await cluster.call(index, "Read", { shardId: String(shardId), query, timeoutMs: 5000 });
      } catch {
        return null;
      }
      if (res.status !== 200) return null;
      const body = (await res.json()) as { result: string };
      const page = decodeKvQueryResult(Buffer.from(body.result, "base64"));
      for (const p of page.pairs) out.set(p.key, new TextDecoder().decode(p.value));
      if (!page.more || page.pairs.length === 0) return out;
      start = `${page.pairs.at(-1)!.key}\0`;
    }
  }
});

describe("cmd across a failover and a restart (the client retries what was not applied)", () => {
  const cluster = new ProcessCluster(1);
  beforeAll(async () => {
    await cluster.init();
    await cluster.startAll();
  }, PROCESS_TEST_WALL_MS);
  afterAll(() => cluster.stop());
  const TIMEOUT = ["--timeout-ms", "10000"];

  test("cmd add during a failover succeeds once a new leader is elected, and applies once", async () => {
    const leader = await cluster.waitLeader(1);
    expect(cmd(["add", "--nodehost", cluster.api(), "--shard", "1", "n", "1", ...TIMEOUT]).stdout).toBe(
      "1\n",
    );
    // A stopped leader accepts connections and never answers: the request's outcome is
    // unknown. The write carries a session, so the client tries the next address, where a new
    // leader is elected meanwhile, and the session keeps the write from applying twice.
    await cluster.kill(leader, "SIGSTOP");
    const order = [leader, ...[1, 2, 3].filter((i) => i !== leader)].map((i) => cluster.hosts[i - 1]!.api);
    const during = cmd(["add", "--nodehost", order.join(","), "--shard", "1", "n", "1", ...TIMEOUT]);
    await cluster.kill(leader, "SIGCONT");
    expect({ code: during.code, stdout: during.stdout, stderr: during.stderr }).toEqual({
      code: 0,
      stdout: "2\n",
      stderr: "",
    });
    await waitFor(
      () => cmd(["get", "--nodehost", order[0]!, "--shard", "1", "n", ...TIMEOUT]).stdout === "2\n",
      REAL_WAIT_MS,
      "the resumed host to apply the write",
    );
    // The old leader may still hold the first attempt: once it settles, the counter stays 2.
    await Bun.sleep(1000);
    expect(cmd(["get", "--nodehost", cluster.api(), "--shard", "1", "n", ...TIMEOUT]).stdout).toBe("2\n");
  });

  test("a read right after every host restarts waits for the shard instead of failing", async () => {
    const api = cluster.api();
    expect(cmd(["put", "--nodehost", api, "--shard", "1", "r", "before", ...TIMEOUT]).code).toBe(0);
    for (const i of [1, 2, 3]) await cluster.kill(i, "SIGKILL");
    for (const i of [1, 2, 3]) cluster.start(i);
    // No API listens yet and no shard has a leader: both are "not applied", so the client waits.
    const got = cmd(["get", "--nodehost", api, "--shard", "1", "r", ...TIMEOUT]);
    expect({ code: got.code, stdout: got.stdout, stderr: got.stderr }).toEqual({
      code: 0,
      stdout: "before\n",
      stderr: "",
    });
  });
});

describe("API token", () => {
  const cluster = new ProcessCluster(1, ["--api-token", "s3cret"]);
  beforeAll(async () => {
    await cluster.init();
    await cluster.startHosts();
  }, PROCESS_TEST_WALL_MS);
  afterAll(() => cluster.stop());

  test("a wrong token is unauthenticated, /healthz needs none, the right token works", async () => {
    const wrong = await cluster.call(1, "Status", {}, { authorization: "Bearer nope" });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { code: string }).code).toBe("unauthenticated");
    const right = await cluster.call(1, "Status", {}, { authorization: "Bearer s3cret" });
    expect(right.status).toBe(200);
  });
});

describe("the production binary", () => {
  // Planted bugs are a NodeHost option only tests pass (src/engine/bugs.ts); the binary's
  // build defines LONGBOAT_PRODUCTION, which compiles the option's resolver to "no bug".
  test("carries no planted-bug switch: nothing reads LONGBOAT_SIM_BUG, the option resolves to none", () => {
    // The bundled JavaScript (about 2 MB, every src/ file) sits at the end of the ~110 MB
    // executable: read the last 16 MB only, and check the window holds the bundle.
    const fd = openSync(BIN, "r");
    const sizeBytes = fstatSync(fd).size;
    const tail = Buffer.alloc(Math.min(sizeBytes, 16 * 1024 * 1024));
    readSync(fd, tail, 0, tail.byteLength, sizeBytes - tail.byteLength);
    closeSync(fd);
    const at = tail.indexOf("function plantedBugOption(");
    expect(at).toBeGreaterThan(-1);
    expect(tail.indexOf("// src/cli/main.ts")).toBeGreaterThan(-1);
    expect(tail.indexOf("LONGBOAT_SIM_BUG")).toBe(-1);
    const resolver = tail.subarray(at, at + 200).toString("latin1");
    expect(resolver).toMatch(/^function plantedBugOption\(\w+\) \{\s*if \(true\)\s*return null;/);
  });

  test("runs a shard with LONGBOAT_SIM_BUG set to a name the resolver would refuse", async () => {
    const dir = mkdtempSync(join(tmpdir(), "longboat-prod-"));
    const [raftPort, apiPort] = freePorts(2);
    const raft = `127.0.0.1:${raftPort}`;
    const api = `127.0.0.1:${apiPort}`;
    const proc = Bun.spawn(
      [
        BIN,
        "nodehost",
        "--data-dir",
        dir,
        "--raft-address",
        raft,
        "--api-address",
        api,
        "--rtt-ms",
        "20",
        "--shard",
        `id=1,app=kv,replica=1,members=1@${raft}`,
      ],
      { stdout: "ignore", stderr: "ignore", env: { ...process.env, LONGBOAT_SIM_BUG: "no-such-bug" } },
    );
    track("nodehost with LONGBOAT_SIM_BUG", () => proc.kill("SIGKILL"));
    try {
      await waitFor(
        () => cmd(["put", "--nodehost", api, "--shard", "1", "k", "v", "--timeout-ms", "1000"]).code === 0,
        REAL_WAIT_MS,
        "a put on a single-replica shard",
      );
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
