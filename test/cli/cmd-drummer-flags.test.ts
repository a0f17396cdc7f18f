// `longboat cmd` against the drummers: flag parsing and the checks of what each op needs.
// Bad input is a ConfigError (exit 2) that names the flag and says what to give instead.
import { describe, expect, spyOn, test } from "bun:test";
import { ConfigError, resolveCmdConfig } from "../../src/cli/config.ts";
import { main } from "../../src/cli/main.ts";

const D = ["--drummer", "d1:9001,d2:9001,d3:9001"];

function resolve(args: string[], flags: Record<string, string | boolean> = {}) {
  return resolveCmdConfig({ args, flags: { drummer: D[1]!, ...flags }, env: {} });
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error("accepted");
}

describe("drummer ops: what each one needs", () => {
  test("create-shard: --id, with app kv and 3 replicas by default; regions parsed into counts", () => {
    const c = resolve(["create-shard"], { id: "7" });
    expect(c).toMatchObject({ request: { op: "create-shard" }, id: 7, app: "kv", replicas: 3 });
    expect(c.regions).toBeUndefined();
    expect(c.drummer).toEqual(["d1:9001", "d2:9001", "d3:9001"]);
    const r = resolve(["create-shard"], { id: "7", app: "noop", replicas: "5", regions: "eu=2,us=1" });
    expect(r).toMatchObject({ app: "noop", replicas: 5 });
    expect(r.regions).toEqual([
      { region: "eu", count: 2 },
      { region: "us", count: 1 },
    ]);
  });

  test("--shard stands for --id in the shard ops; both naming different shards is refused", () => {
    expect(resolve(["shards"], { shard: "3" }).id).toBe(3);
    expect(resolve(["shards"]).id).toBeUndefined();
    expect(refusal(() => resolve(["shards"], { shard: "3", id: "4" }))).toBe(
      "--id 4 and --shard 3 name different shards; give one",
    );
  });

  test("each op without what it needs is refused, saying what to give", () => {
    expect(refusal(() => resolve(["create-shard"]))).toBe("cmd create-shard needs --id N, the shard ID");
    expect(refusal(() => resolve(["set-regions"], { id: "1" }))).toBe(
      "cmd set-regions needs --regions eu=2,us=1 (or none)",
    );
    expect(refusal(() => resolve(["add-drummer"], { id: "4" }))).toBe(
      "cmd add-drummer needs --raft-address host:port",
    );
    expect(refusal(() => resolve(["remove-drummer"]))).toBe(
      "cmd remove-drummer needs --id N, the drummer ID",
    );
    expect(refusal(() => resolve(["wait"]))).toBe("cmd wait needs --healthy (the condition it waits for)");
    expect(refusal(() => resolveCmdConfig({ args: ["nodehosts"], flags: {}, env: {} }))).toMatch(
      /^cmd nodehosts needs --drummer host:port,… \(the drummers' API addresses/,
    );
  });

  test("bad values are refused naming the flag and the value", () => {
    expect(refusal(() => resolve(["create-shard"], { id: "0" }))).toBe(
      "--id must be a positive integer, got 0",
    );
    expect(refusal(() => resolve(["create-shard"], { id: "1", replicas: "10" }))).toBe(
      "--replicas must be at most 9, got 10",
    );
    expect(refusal(() => resolve(["create-shard"], { id: "1", regions: "eu=2,us" }))).toBe(
      '--regions must be region=count (a region name and a positive number of replicas), as in eu=2, got "us"',
    );
    expect(refusal(() => resolve(["create-shard"], { id: "1", regions: "eu=0" }))).toMatch(
      /^--regions must be region=count .*, got "eu=0"$/,
    );
    expect(refusal(() => resolve(["create-shard"], { id: "1", regions: "eu=1,eu=1" }))).toBe(
      '--regions names region eu twice, got "eu=1"',
    );
    expect(refusal(() => resolve(["create-shard"], { id: "1", regions: "eu=2,us=2" }))).toBe(
      "--regions asks for 4 replicas in regions but --replicas is 3",
    );
    expect(refusal(() => resolve(["add-drummer"], { id: "4", "raft-address": "d4" }))).toMatch(
      /^--raft-address must be host:port with a port in 1..65535, got "d4"/,
    );
    expect(refusal(() => resolve(["wait"], { healthy: true, timeout: "soon" }))).toBe(
      '--timeout must be a duration like 500ms, 5s, 2m or 1h, got "soon"',
    );
    expect(refusal(() => resolve(["status"], { drummer: "d1" }))).toMatch(/^--drummer must be host:port/);
  });

  test("set-regions --regions none clears the goal; wait --timeout defaults to 60 s", () => {
    expect(resolve(["set-regions"], { id: "1", regions: "none" }).regions).toEqual([]);
    expect(resolve(["wait"], { healthy: true }).timeout).toBe(60_000);
    expect(resolve(["wait"], { healthy: true, timeout: "2m" }).timeout).toBe(120_000);
  });

  test("drummer ops refuse --nodehost; status takes one of --nodehost and --drummer; NodeHost ops keep --nodehost", () => {
    expect(refusal(() => resolve(["shards"], { nodehost: "h1:8001" }))).toBe(
      "cmd shards talks to the drummers (--drummer), not to a NodeHost: drop --nodehost",
    );
    expect(refusal(() => resolve(["status"], { nodehost: "h1:8001" }))).toBe(
      "cmd status shows one NodeHost's replicas (--nodehost) or the whole deployment (--drummer); give one of --nodehost and --drummer",
    );
    const s = resolveCmdConfig({ args: ["status"], flags: { nodehost: "h1:8001" }, env: {} });
    expect(s).toMatchObject({ nodehost: ["h1:8001"], drummer: [] });
    expect(
      refusal(() => resolveCmdConfig({ args: ["get", "k"], flags: { drummer: "d1:9001" }, env: {} })),
    ).toBe("cmd get needs --nodehost");
  });

  test("a shell exporting LONGBOAT_NODEHOST and LONGBOAT_DRUMMER: a flag beats the environment; status with both from it shows the deployment", () => {
    const env = { LONGBOAT_NODEHOST: "h1:8001", LONGBOAT_DRUMMER: "d1:9001" };
    const both = resolveCmdConfig({ args: ["status"], env });
    expect([both.nodehost, both.drummer]).toEqual([[], ["d1:9001"]]);
    const one = resolveCmdConfig({ args: ["status"], flags: { nodehost: "h2:8001" }, env });
    expect([one.nodehost, one.drummer]).toEqual([["h2:8001"], []]);
    const dep = resolveCmdConfig({ args: ["status"], flags: { drummer: "d2:9001" }, env });
    expect([dep.nodehost, dep.drummer]).toEqual([[], ["d2:9001"]]);
    const shards = resolveCmdConfig({ args: ["shards"], env });
    expect([shards.nodehost, shards.drummer]).toEqual([[], ["d1:9001"]]);
    const get = resolveCmdConfig({ args: ["get", "k"], flags: { shard: "1" }, env });
    expect([get.nodehost, get.drummer]).toEqual([["h1:8001"], ["d1:9001"]]);
  });

  test("the environment gives the drummers too (LONGBOAT_DRUMMER)", () => {
    const c = resolveCmdConfig({ args: ["drummers"], env: { LONGBOAT_DRUMMER: "d9:9001" } });
    expect(c.drummer).toEqual(["d9:9001"]);
  });

  test("--id and --raft-address are not taken from LONGBOAT_ID / LONGBOAT_RAFT_ADDRESS (a drummer's own settings)", () => {
    const env = { LONGBOAT_DRUMMER: "d9:9001", LONGBOAT_ID: "2", LONGBOAT_RAFT_ADDRESS: "d2:9101" };
    expect(refusal(() => resolveCmdConfig({ args: ["remove-drummer"], env }))).toBe(
      "cmd remove-drummer takes --id from the command line only, not from LONGBOAT_ID (which also sets a drummer's or NodeHost's own ID)",
    );
    expect(refusal(() => resolveCmdConfig({ args: ["add-drummer"], flags: { id: "4" }, env }))).toBe(
      "cmd add-drummer takes --raft-address from the command line only, not from LONGBOAT_RAFT_ADDRESS (which also sets a drummer's or NodeHost's own raft address)",
    );
    expect(resolveCmdConfig({ args: ["remove-drummer"], flags: { id: "3" }, env }).id).toBe(3);
    expect(resolveCmdConfig({ args: ["status"], env }).drummer).toEqual(["d9:9001"]); // not used there
  });
});

describe("through main: exit 2 and a message for bad usage, help that lists the ops and flags", () => {
  async function run(argv: string[]) {
    let stderr = "";
    let stdout = "";
    const info = spyOn(console, "info").mockImplementation((text: string) => {
      stdout += `${text}\n`;
    });
    try {
      const code = await main(argv, { env: {}, stderr: (t) => (stderr += t) });
      return { code, stdout, stderr };
    } finally {
      info.mockRestore();
    }
  }

  test("a missing --id is exit 2 with the message", async () => {
    const r = await run(["cmd", "create-shard", ...D]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("longboat: cmd create-shard needs --id N, the shard ID\n");
  });

  test("cmd --help names every drummer op and flag", async () => {
    const r = await run(["cmd", "--help"]);
    expect(r.code).toBe(0);
    for (const op of ["nodehosts", "shards", "create-shard", "set-regions", "bootstrap", "drummers"])
      expect(r.stdout).toContain(op);
    for (const op of ["add-drummer", "remove-drummer", "wait"]) expect(r.stdout).toContain(op);
    for (const flag of ["--id <n>", "--app <name>", "--replicas <n>", "--regions <region=n,…>", "--healthy"])
      expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain("cmd wait --healthy --drummer");
  });
});
