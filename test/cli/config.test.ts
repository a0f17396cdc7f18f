import { describe, expect, test } from "bun:test";
import {
  BACKUP_FIELDS,
  CMD_FIELDS,
  CMD_OPS,
  ConfigError,
  type ConfigInput,
  DEV_FIELDS,
  DRUMMER_FIELDS,
  NODEHOST_FIELDS,
  RESTORE_FIELDS,
  resolveBackupConfig,
  resolveCmdConfig,
  resolveDevConfig,
  resolveDrummerConfig,
  resolveNodeHostConfig,
  resolveRestoreConfig,
} from "../../src/cli/config.ts";
import { SCHEMA_ITSELF } from "../../src/cli/merge.ts";

const ADDRS = { "raft-address": "h1:7001", "api-address": "127.0.0.1:8001" };
const MEMBERS = "members=1@h1:7001;2@h2:7001;3@h3:7001";

function nodehostError(input: ConfigInput): string {
  try {
    resolveNodeHostConfig(input);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("merge priority", () => {
  const file = { path: "lb.json", data: { rttMs: 300 } };

  test("a flag beats the environment and the file", () => {
    const config = resolveNodeHostConfig({
      flags: { ...ADDRS, "rtt-ms": "100" },
      env: { LONGBOAT_RTT_MS: "200" },
      file,
    });
    expect(config.rttMs).toBe(100);
  });

  test("the environment beats the file", () => {
    const config = resolveNodeHostConfig({ flags: ADDRS, env: { LONGBOAT_RTT_MS: "200" }, file });
    expect(config.rttMs).toBe(200);
  });

  test("the file beats the default", () => {
    expect(resolveNodeHostConfig({ flags: ADDRS, env: {}, file }).rttMs).toBe(300);
  });

  test("defaults fill what no source gives", () => {
    expect(resolveNodeHostConfig({ flags: ADDRS })).toEqual({
      dataDir: "./longboat-data",
      raftAddress: "h1:7001",
      apiAddress: "127.0.0.1:8001",
      rttMs: 100,
      deploymentId: 1,
      region: "default",
      plugin: [],
      shards: [],
      master: [],
      logLevel: "info",
      apiInsecure: false,
      refresh: 2,
      onLeaderChangeShell: false,
      hookTimeoutMs: 10_000,
    });
  });

  test("an empty environment variable counts as unset", () => {
    expect(resolveNodeHostConfig({ flags: ADDRS, env: { LONGBOAT_RTT_MS: "" }, file }).rttMs).toBe(300);
  });

  test("required addresses can all come from the environment", () => {
    const env = { LONGBOAT_RAFT_ADDRESS: "h2:7001", LONGBOAT_API_ADDRESS: "127.0.0.2:8001" };
    expect(resolveNodeHostConfig({ env }).raftAddress).toBe("h2:7001");
  });

  test("a flag value is kept as typed, leading zeros included", () => {
    expect(resolveNodeHostConfig({ flags: { ...ADDRS, "api-token": "007" } }).apiToken).toBe("007");
  });
});

describe("nodehost values", () => {
  test("lists are comma-separated and flags repeat", () => {
    const config = resolveNodeHostConfig({ flags: { ...ADDRS, master: ["d1:9001,d2:9001", "d3:9001"] } });
    expect(config.master).toEqual(["d1:9001", "d2:9001", "d3:9001"]);
  });

  test("shards come from repeated --shard specs", () => {
    const shard = [`id=1,app=kv,replica=1,${MEMBERS}`, "id=2,app=kv,replica=1,join=true"];
    const config = resolveNodeHostConfig({ flags: { ...ADDRS, shard } });
    expect(config.shards.map((s) => s.shardId)).toEqual([1, 2]);
    expect(config.shards[1]!.join).toBe(true);
  });

  test("shards come from LONGBOAT_SHARD separated by spaces", () => {
    const env = { LONGBOAT_SHARD: `id=1,app=kv,replica=1,${MEMBERS} id=2,app=kv,replica=1,join=true` };
    expect(resolveNodeHostConfig({ flags: ADDRS, env }).shards).toHaveLength(2);
  });

  test("shards come from the config file as objects", () => {
    const shards = [{ shardId: 7, app: "kv", replicaId: 1, members: [{ replicaId: 1, address: "h1:7001" }] }];
    const config = resolveNodeHostConfig({ flags: ADDRS, file: { path: "lb.json", data: { shards } } });
    expect(config.shards).toEqual(shards);
  });

  test("all three TLS files are accepted together", () => {
    const tls = { "tls-ca": "ca.pem", "tls-cert": "h1.pem", "tls-key": "h1.key" };
    expect(resolveNodeHostConfig({ flags: { ...ADDRS, ...tls } }).tlsKey).toBe("h1.key");
  });

  test("leader-change hooks: a command, the shell switch, a webhook URL and the timeout", () => {
    const config = resolveNodeHostConfig({
      flags: {
        ...ADDRS,
        "on-leader-change": "./on-leader.sh --verbose",
        "on-leader-change-shell": true,
        "leader-webhook": "https://lb.example/leader",
        "hook-timeout-ms": "2500",
      },
    });
    expect(config).toMatchObject({
      onLeaderChange: "./on-leader.sh --verbose",
      onLeaderChangeShell: true,
      leaderWebhook: "https://lb.example/leader",
      hookTimeoutMs: 2500,
    });
  });
});

describe("bad nodehost input", () => {
  const cases: [string, ConfigInput, string][] = [
    [
      "a webhook that is not an http URL",
      { flags: { ...ADDRS, "leader-webhook": "ftp://x/y" } },
      '--leader-webhook must be an http:// or https:// URL, got "ftp://x/y"',
    ],
    [
      "the shell switch without a command",
      { flags: { ...ADDRS, "on-leader-change-shell": true } },
      "--on-leader-change-shell needs --on-leader-change",
    ],
    [
      "a hook timeout above its bound",
      { flags: { ...ADDRS, "hook-timeout-ms": "600001" } },
      "--hook-timeout-ms must be at most 600000 (ten minutes), got 600001",
    ],
    [
      "a word for --rtt-ms",
      { flags: { ...ADDRS, "rtt-ms": "fast" } },
      '--rtt-ms must be a positive integer, got "fast"',
    ],
    ["zero --rtt-ms", { flags: { ...ADDRS, "rtt-ms": "0" } }, "--rtt-ms must be a positive integer, got 0"],
    [
      "--rtt-ms above its bound",
      { flags: { ...ADDRS, "rtt-ms": "60001" } },
      "--rtt-ms must be at most 60000 (one minute), got 60001",
    ],
    [
      "a negative deployment id in the environment",
      { flags: ADDRS, env: { LONGBOAT_DEPLOYMENT_ID: "-3" } },
      "LONGBOAT_DEPLOYMENT_ID must be a positive integer, got -3",
    ],
    [
      "a deployment id beyond 2^53",
      { flags: { ...ADDRS, "deployment-id": "9007199254740993" } },
      '--deployment-id must be a positive integer, got "9007199254740993"',
    ],
    [
      "a missing --raft-address",
      { flags: { "api-address": "h1:8001" } },
      '--raft-address is required (or LONGBOAT_RAFT_ADDRESS, or "raftAddress" in --config)',
    ],
    [
      "a port out of range",
      { flags: { ...ADDRS, "raft-address": "h1:70000" } },
      '--raft-address must be host:port with a port in 1..65535, got "h1:70000" (port 70000 is outside 1..65535)',
    ],
    [
      "a bad master address",
      { flags: { ...ADDRS, master: "d1:9001,d2" } },
      '--master must be host:port with a port in 1..65535, got "d2" (expected host:port)',
    ],
    [
      "an unknown log level",
      { flags: { ...ADDRS, "log-level": "loud" } },
      '--log-level must be one of debug, info, warn, error, got "loud"',
    ],
    [
      "half the TLS files",
      { flags: { ...ADDRS, "tls-ca": "ca.pem" }, env: { LONGBOAT_TLS_CERT: "c.pem" } },
      "--tls-ca, --tls-cert and --tls-key must be given together, got only --tls-ca and LONGBOAT_TLS_CERT",
    ],
    [
      "the same raft and api address",
      { flags: { "raft-address": "h1:7001", "api-address": "h1:7001" } },
      "--api-address must differ from --raft-address, both are h1:7001",
    ],
    [
      "a non-repeatable flag given twice",
      { flags: { ...ADDRS, "rtt-ms": ["100", "200"] } },
      "--rtt-ms is given 2 times; give it once",
    ],
    [
      "a shard whose replica is not a member",
      { flags: { ...ADDRS, shard: `id=1,app=kv,replica=4,${MEMBERS}` } },
      "--shard shard 1: replica 4 is not among its members (1, 2, 3); add it or set join=true",
    ],
    [
      "a shard listing one address twice",
      { flags: { ...ADDRS, shard: "id=1,app=kv,replica=1,members=1@h1:7001;2@h1:7001" } },
      "--shard shard 1 lists address h1:7001 twice",
    ],
    [
      "a shard given twice",
      {
        flags: { ...ADDRS, shard: [`id=1,app=kv,replica=1,${MEMBERS}`, `id=1,app=kv,replica=1,${MEMBERS}`] },
      },
      "--shard shard 1 is given twice",
    ],
    [
      "a shard member with a bad address",
      { flags: { ...ADDRS, shard: "id=1,app=kv,replica=1,members=1@h1:7001;2@h2:0" } },
      '--shard members[1].address must be host:port with a port in 1..65535, got "h2:0" (port 0 is outside 1..65535)',
    ],
    [
      "a shard spec with an unknown key",
      { flags: { ...ADDRS, shard: "id=1,app=kv,replica=1,size=3" } },
      '--shard "id=1,app=kv,replica=1,size=3": unknown key "size" (allowed: id, app, replica, members, join, snapshot-entries, compaction-overhead, auto-compact)',
    ],
    [
      "a shard placing this replica at another host",
      { flags: { ...ADDRS, shard: "id=1,app=kv,replica=2,members=1@h1:7001;2@h2:7001" } },
      "--shard: shard 1 puts replica 2 at h2:7001, but this NodeHost's raft address is h1:7001",
    ],
    [
      "an unknown key in the config file",
      { flags: ADDRS, file: { path: "lb.json", data: { rtMs: 5 } } },
      `lb.json has unknown key "rtMs" at $.rtMs (allowed: ${NODEHOST_FIELDS.map((f) => f.key).join(", ")})`,
    ],
    [
      "a string where the config file needs a number",
      { flags: ADDRS, file: { path: "lb.json", data: { rttMs: "100" } } },
      'lb.json at $.rttMs must be a positive integer, got "100"',
    ],
    [
      "a config file that is not an object",
      { flags: ADDRS, file: { path: "lb.json", data: [1] } },
      "lb.json must hold a JSON object, got [1]",
    ],
    [
      "a bad nested value in the config file",
      {
        flags: ADDRS,
        file: {
          path: "lb.json",
          data: {
            shards: [
              { shardId: 1, app: "kv", replicaId: 1, members: [{ replicaId: 0, address: "h1:7001" }] },
            ],
          },
        },
      },
      "lb.json at $.shards[0].members[0].replicaId must be a positive integer, got 0",
    ],
    [
      "an unknown key inside a config file shard",
      {
        flags: ADDRS,
        file: {
          path: "lb.json",
          data: { shards: [{ shardId: 1, app: "kv", replicaId: 1, members: [], size: 3 }] },
        },
      },
      "lb.json at $.shards[0] must be an object {shardId, app, replicaId, members, join, snapshotEntries, compactionOverhead, autoCompact} with no other keys",
    ],
  ];
  for (const [name, input, message] of cases) {
    test(`${name} is refused naming the field and value`, () => {
      expect(nodehostError(input)).toBe(message);
    });
  }
});

describe("drummer", () => {
  const flags = {
    id: "2",
    peers: "1=d1:9101,2=d2:9101,3=d3:9101",
    "api-address": "d2:9001",
    "api-token": "t",
  };

  test("the raft address defaults to this drummer's entry in --peers", () => {
    expect(resolveDrummerConfig({ flags }).raftAddress).toBe("d2:9101");
  });

  test("an id missing from --peers is refused", () => {
    expect(() => resolveDrummerConfig({ flags: { ...flags, id: "4" } })).toThrow(
      "--id is 4, which is not among --peers (1, 2, 3)",
    );
  });

  test("a raft address that contradicts --peers is refused", () => {
    expect(() => resolveDrummerConfig({ flags: { ...flags, "raft-address": "d9:9101" } })).toThrow(
      "--raft-address is d9:9101, but --peers gives drummer 2 the address d2:9101",
    );
  });

  test("a peer listed twice is refused", () => {
    expect(() => resolveDrummerConfig({ flags: { ...flags, peers: "1=d1:9101,1=d2:9101" } })).toThrow(
      "--peers lists drummer 1 twice",
    );
  });

  test("durations take a unit and become milliseconds; the defaults are 60s, 5s and 4 repairs", () => {
    expect(resolveDrummerConfig({ flags })).toMatchObject({
      deadTimeoutMs: 60_000,
      reportIntervalMs: 5000,
      maxRepairs: 4,
    });
    const c = resolveDrummerConfig({ flags: { ...flags, "dead-timeout": "2m", "report-interval": "500ms" } });
    expect(c).toMatchObject({ deadTimeoutMs: 120_000, reportIntervalMs: 500 });
    const file = resolveDrummerConfig({
      flags,
      file: { path: "d.json", data: { deadTimeout: 9000, reportInterval: "1s" } },
    });
    expect(file).toMatchObject({ deadTimeoutMs: 9000, reportIntervalMs: 1000 });
  });

  const bad: [string, Record<string, string>, string][] = [
    [
      "a duration without a unit",
      { "dead-timeout": "60" },
      '--dead-timeout must be a duration like 500ms, 5s, 2m or 1h, got "60"',
    ],
    [
      "a duration over a day",
      { "report-interval": "25h" },
      '--report-interval must be between 1ms and 24h, got "25h"',
    ],
    ["max repairs 0", { "max-repairs": "0" }, "--max-repairs must be a positive integer, got 0"],
    [
      "an API address equal to the raft address",
      { "api-address": "d2:9101" },
      "--api-address must differ from the raft address, both are d2:9101",
    ],
    [
      "TLS without its key",
      { "tls-ca": "ca.pem", "tls-cert": "c.pem" },
      "--tls-ca, --tls-cert and --tls-key must be given together, got only --tls-ca and --tls-cert",
    ],
  ];
  for (const [name, extra, message] of bad) {
    test(`${name} is refused naming the field`, () => {
      expect(() => resolveDrummerConfig({ flags: { ...flags, ...extra } })).toThrow(message);
    });
  }
});

describe("API security of drummer", () => {
  const PUBLIC = { id: "1", peers: "1=d1:9101", "api-address": "d1:9001" };

  test("a non-loopback API address without a token or client certificates is refused, like nodehost's", () => {
    const error = () => resolveDrummerConfig({ flags: PUBLIC });
    expect(error).toThrow("--api-address d1:9001 is not a loopback address");
    expect(error).toThrow("--api-insecure");
    expect(resolveDrummerConfig({ flags: { ...PUBLIC, "api-address": "127.0.0.1:9001" } }).apiToken).toBe(
      undefined,
    );
  });

  test("a token, client certificates or --api-insecure each allow a public address; the metrics token is read", () => {
    const withToken = resolveDrummerConfig({ flags: { ...PUBLIC, "api-token": "t", "metrics-token": "m" } });
    expect(withToken).toMatchObject({ apiToken: "t", metricsToken: "m" });
    const mtls = { "api-tls-cert": "c.pem", "api-tls-key": "k.pem", "api-tls-ca": "ca.pem" };
    expect(resolveDrummerConfig({ flags: { ...PUBLIC, ...mtls } })).toMatchObject({
      apiTlsCert: "c.pem",
      apiTlsKey: "k.pem",
      apiTlsCa: "ca.pem",
    });
    expect(resolveDrummerConfig({ flags: { ...PUBLIC, "api-insecure": true } }).apiInsecure).toBe(true);
  });

  test("--api-tls-cert and --api-tls-key come together; --api-tls-ca needs them", () => {
    const local = { ...PUBLIC, "api-address": "127.0.0.1:9001" };
    expect(() => resolveDrummerConfig({ flags: { ...local, "api-tls-cert": "c.pem" } })).toThrow(
      "--api-tls-cert and --api-tls-key must be given together, got only --api-tls-cert",
    );
    expect(() => resolveDrummerConfig({ flags: { ...local, "api-tls-ca": "ca.pem" } })).toThrow(
      "--api-tls-ca needs --api-tls-cert and --api-tls-key: client certificates are checked over TLS",
    );
  });
});

describe("nodehost --master", () => {
  const MASTER = { "raft-address": "h1:7001", "api-address": "127.0.0.1:8001", master: "d1:9001" };

  test("--master-token and --master-tls-* are read", () => {
    const c = resolveNodeHostConfig({
      flags: {
        ...MASTER,
        "master-token": "t",
        "master-tls-ca": "ca.pem",
        "master-tls-cert": "c.pem",
        "master-tls-key": "k.pem",
      },
    });
    expect(c).toMatchObject({
      masterToken: "t",
      masterTlsCa: "ca.pem",
      masterTlsCert: "c.pem",
      masterTlsKey: "k.pem",
    });
  });

  test("--master-* flags without --master are refused; the client certificate and key come together", () => {
    const { master: _, ...noMaster } = MASTER;
    expect(() => resolveNodeHostConfig({ flags: { ...noMaster, "master-token": "t" } })).toThrow(
      "--master-token needs --master: it is how this NodeHost calls the drummers it reports to",
    );
    expect(() => resolveNodeHostConfig({ flags: { ...MASTER, "master-tls-key": "k.pem" } })).toThrow(
      "--master-tls-cert and --master-tls-key must be given together, got only --master-tls-key",
    );
  });

  test("--master with --shard is refused: the drummers decide what a master-mode NodeHost runs", () => {
    const flags = {
      "raft-address": "h1:7001",
      "api-address": "h1:8001",
      master: "d1:9001",
      shard: "id=1,app=kv,replica=1,members=1@h1:7001",
    };
    expect(() => resolveNodeHostConfig({ flags })).toThrow(
      "--master and --shard cannot be used together: with --master the drummers decide which replicas this NodeHost runs (drop --shard, or drop --master for static shards)",
    );
  });
});

describe("cmd", () => {
  const flags = { nodehost: "h1:8001", shard: "1" };

  test("put takes a key and a value", () => {
    const config = resolveCmdConfig({ flags, args: ["put", "k", "v"] });
    expect(config.request).toEqual({ op: "put", key: "k", value: "v" });
    expect(config.timeoutMs).toBe(5000);
    expect(config.json).toBe(false);
  });

  test("add takes a key and a signed integer delta", () => {
    expect(resolveCmdConfig({ flags, args: ["add", "n", "-3"] }).request).toEqual({
      op: "add",
      key: "n",
      delta: -3,
    });
  });

  test("add-replica takes a replica id and an address", () => {
    expect(resolveCmdConfig({ flags, args: ["add-replica", "4", "h4:7001"] }).request).toEqual({
      op: "add-replica",
      replicaId: 4,
      address: "h4:7001",
    });
  });

  test("status needs only a drummer", () => {
    expect(resolveCmdConfig({ flags: { drummer: "d1:9001" }, args: ["status"] }).drummer).toEqual([
      "d1:9001",
    ]);
  });

  test("watch needs --nodehost; --shard only narrows it", () => {
    const all = resolveCmdConfig({ flags: { nodehost: "h1:8001,h2:8001" }, args: ["watch"] });
    expect(all).toMatchObject({ request: { op: "watch" }, nodehost: ["h1:8001", "h2:8001"] });
    expect(all.shard).toBeUndefined();
    expect(resolveCmdConfig({ flags: { nodehost: "h1:8001", shard: "3" }, args: ["watch"] }).shard).toBe(3);
    expect(() => resolveCmdConfig({ flags: {}, args: ["watch"] })).toThrow("cmd watch needs --nodehost");
    expect(() => resolveCmdConfig({ flags: { nodehost: "h1:8001" }, args: ["watch", "x"] })).toThrow(
      "cmd watch takes 0 argument(s)",
    );
  });

  test("--json from the environment accepts 1", () => {
    expect(resolveCmdConfig({ flags, env: { LONGBOAT_JSON: "1" }, args: ["get", "k"] }).json).toBe(true);
  });

  test("--timeout-ms accepts its bound and refuses one more", () => {
    expect(
      resolveCmdConfig({ flags: { ...flags, "timeout-ms": "3600000" }, args: ["get", "k"] }).timeoutMs,
    ).toBe(3_600_000);
    expect(() =>
      resolveCmdConfig({ flags: { ...flags, "timeout-ms": "3600001" }, args: ["get", "k"] }),
    ).toThrow("--timeout-ms must be at most 3600000 (one hour), got 3600001");
  });

  const bad: [string[], Record<string, string>, string][] = [
    [[], flags, `cmd needs an op (one of ${Object.keys(CMD_OPS).join(", ")})`],
    [["grab"], flags, `cmd op "grab" is unknown (one of ${Object.keys(CMD_OPS).join(", ")})`],
    [["cas", "k", "v"], flags, "cmd cas takes 3 argument(s) <key> <expected> <value>, got 2"],
    [["remove-replica", "x"], flags, 'cmd remove-replica <replicaId> must be a positive integer, got "x"'],
    [["add", "n", "1.5"], flags, 'cmd add <delta> must be an integer within ±(2^53 − 1), got "1.5"'],
    [
      ["add", "n", "9007199254740992"],
      flags,
      "cmd add <delta> must be an integer within ±(2^53 − 1), got 9007199254740992",
    ],
    [
      ["add-replica", "4", "h4"],
      flags,
      'cmd add-replica <address> must be host:port with a port in 1..65535, got "h4" (expected host:port)',
    ],
    [["get", "k"], { nodehost: "h1:8001" }, "cmd get needs --shard"],
    [["get", "k"], { shard: "1" }, "cmd get needs --nodehost"],
    [["status"], {}, "cmd status needs --nodehost or --drummer"],
    [["log"], { ...flags, from: "9", to: "3" }, "--to 3 is below --from 9"],
    [["log"], { ...flags, from: "0" }, "must be a positive integer"],
    [
      ["snapshot"],
      { ...flags, "compaction-overhead": "5", "compaction-index": "9" },
      "give --compaction-overhead or --compaction-index, not both",
    ],
    [["remove-data"], flags, "cmd remove-data takes 1 argument(s) <replicaId>, got 0"],
    [["remove-data", "2"], { ...flags, "membership-from": "h2" }, "must be host:port"],
  ];
  for (const [args, f, message] of bad) {
    test(`refuses cmd ${args.join(" ") || "without an op"} with flags ${Object.keys(f).join(",") || "none"}`, () => {
      expect(() => resolveCmdConfig({ flags: f, args })).toThrow(message);
    });
  }
});

describe("dev", () => {
  test("defaults to ./.longboat-dev, base port 7100, 3 shards, restarts, a 10 s dead timeout", () => {
    expect(resolveDevConfig({})).toEqual({
      dataDir: "./.longboat-dev",
      basePort: 7100,
      shards: 3,
      noRestart: false,
      deadTimeoutMs: 10_000,
      verbose: false,
    });
  });

  test("the base port is bounded so base+33 (the last drummer's API) stays a port", () => {
    expect(resolveDevConfig({ flags: { "base-port": "65502" } }).basePort).toBe(65502);
    expect(() => resolveDevConfig({ flags: { "base-port": "65503" } })).toThrow(
      "--base-port must be at most 65502 (the highest port used is base+33), got 65503",
    );
  });

  test("the shard count is bounded at 1024", () => {
    expect(resolveDevConfig({ flags: { shards: "1024" } }).shards).toBe(1024);
    expect(() => resolveDevConfig({ flags: { shards: "1025" } })).toThrow(
      "--shards must be at most 1024, got 1025",
    );
  });

  test("--no-restart and --dead-timeout (at least 2s)", () => {
    const c = resolveDevConfig({ flags: { "no-restart": true, "dead-timeout": "5s" } });
    expect([c.noRestart, c.deadTimeoutMs]).toEqual([true, 5000]);
    expect(() => resolveDevConfig({ flags: { "dead-timeout": "1s" } })).toThrow(
      "--dead-timeout must be at least 2s",
    );
    expect(() => resolveDevConfig({ flags: { "dead-timeout": "soon" } })).toThrow("--dead-timeout");
  });
});

describe("backup", () => {
  test("needs --nodehost, --shard and --out; waits a minute per request by default", () => {
    expect(
      resolveBackupConfig({ flags: { nodehost: "h1:8001,h2:8001", shard: "1", out: "b.lbsnap" } }),
    ).toEqual({
      nodehost: ["h1:8001", "h2:8001"],
      shard: 1,
      out: "b.lbsnap",
      withoutQuorum: false,
      json: false,
      timeoutMs: 60_000,
      insecureSkipVerify: false,
    });
    expect(() => resolveBackupConfig({ flags: { nodehost: "h1:8001", shard: "1" } })).toThrow(
      "--out is required",
    );
  });
});

describe("restore", () => {
  const flags = {
    "data-dir": "d",
    shard: "1",
    replica: "2",
    members: "1@h1:7001,2@h2:7001",
    from: "b.lbsnap",
  };

  test("parses the members and defaults to deployment 1", () => {
    expect(resolveRestoreConfig({ flags })).toEqual({
      dataDir: "d",
      shard: 1,
      replica: 2,
      members: [
        { replicaId: 1, address: "h1:7001" },
        { replicaId: 2, address: "h2:7001" },
      ],
      from: "b.lbsnap",
      deploymentId: 1,
      json: false,
    });
  });

  const bad: [Record<string, string>, string][] = [
    [{ replica: "3" }, "--replica is 3, which is not among --members (1, 2)"],
    [{ members: "1@h1:7001,1@h2:7001" }, "lists replica 1 twice"],
    [{ members: "1@h1:7001,2@h1:7001" }, "lists address h1:7001 twice"],
    [{ members: "1=h1:7001" }, '"1=h1:7001" has no @'],
    [{ members: "x@h1:7001" }, "has no positive replica id"],
    [{ members: "1@h1" }, "has a bad address (expected host:port)"],
    [{ "data-dir": "" }, "--data-dir must be a non-empty string"],
  ];
  for (const [over, message] of bad) {
    test(`refuses ${JSON.stringify(over)}`, () => {
      expect(() => resolveRestoreConfig({ flags: { ...flags, ...over } })).toThrow(message);
    });
  }
});

describe("API security of nodehost", () => {
  const PUBLIC = { "raft-address": "h1:7001", "api-address": "h1:8001" };

  test("a non-loopback API address without a token or client certificates is refused, naming the ways out", () => {
    const message = nodehostError({ flags: PUBLIC });
    expect(message).toContain("--api-address h1:8001 is not a loopback address");
    expect(message).toContain("--api-token");
    expect(message).toContain("--api-tls-ca");
    expect(message).toContain("--api-insecure");
    expect(nodehostError({ flags: { ...PUBLIC, "api-address": "0.0.0.0:8001" } })).toContain(
      "is not a loopback address",
    );
  });

  test("loopback addresses need nothing: 127.0.0.0/8, ::1, localhost", () => {
    for (const api of ["127.0.0.1:8001", "127.9.9.9:8001", "[::1]:8001", "localhost:8001"]) {
      expect(resolveNodeHostConfig({ flags: { ...PUBLIC, "api-address": api } }).apiAddress).toBe(api);
    }
  });

  test("a token, client certificates or --api-insecure each allow a public address", () => {
    expect(resolveNodeHostConfig({ flags: { ...PUBLIC, "api-token": "t" } }).apiToken).toBe("t");
    const mtls = { "api-tls-cert": "c.pem", "api-tls-key": "k.pem", "api-tls-ca": "ca.pem" };
    expect(resolveNodeHostConfig({ flags: { ...PUBLIC, ...mtls } }).apiTlsCa).toBe("ca.pem");
    expect(resolveNodeHostConfig({ flags: { ...PUBLIC, "api-insecure": true } }).apiInsecure).toBe(true);
    expect(resolveNodeHostConfig({ flags: PUBLIC, env: { LONGBOAT_API_INSECURE: "true" } }).apiInsecure).toBe(
      true,
    );
  });

  test("--api-tls-cert and --api-tls-key come together; --api-tls-ca needs them", () => {
    expect(nodehostError({ flags: { ...ADDRS, "api-tls-cert": "c.pem" } })).toBe(
      "--api-tls-cert and --api-tls-key must be given together, got only --api-tls-cert",
    );
    expect(nodehostError({ flags: { ...ADDRS, "api-tls-key": "k.pem" } })).toBe(
      "--api-tls-cert and --api-tls-key must be given together, got only --api-tls-key",
    );
    expect(nodehostError({ flags: { ...ADDRS, "api-tls-ca": "ca.pem" } })).toBe(
      "--api-tls-ca needs --api-tls-cert and --api-tls-key: client certificates are checked over TLS",
    );
  });

  test("--metrics-token and --snapshot-export-dir are read", () => {
    const config = resolveNodeHostConfig({
      flags: { ...ADDRS, "metrics-token": "m", "snapshot-export-dir": "/srv/exports" },
    });
    expect(config).toMatchObject({ metricsToken: "m", snapshotExportDir: "/srv/exports" });
  });
});

describe("API client TLS of cmd and backup", () => {
  const cmd = (flags: Record<string, string | boolean>) =>
    resolveCmdConfig({ flags: { nodehost: "h1:8001", ...flags }, args: ["status"] });

  test("--tls-ca, --tls-cert/--tls-key and --insecure-skip-verify are read", () => {
    expect(cmd({ "tls-ca": "ca.pem", "tls-cert": "c.pem", "tls-key": "k.pem" })).toMatchObject({
      tlsCa: "ca.pem",
      tlsCert: "c.pem",
      tlsKey: "k.pem",
      insecureSkipVerify: false,
    });
    expect(cmd({ "insecure-skip-verify": true }).insecureSkipVerify).toBe(true);
  });

  test("--tls-cert without --tls-key, or --insecure-skip-verify with --tls-ca, is refused", () => {
    expect(() => cmd({ "tls-cert": "c.pem" })).toThrow(
      "--tls-cert and --tls-key must be given together, got only --tls-cert",
    );
    expect(() => cmd({ "insecure-skip-verify": true, "tls-ca": "ca.pem" })).toThrow(
      "--insecure-skip-verify and --tls-ca contradict each other",
    );
    expect(() =>
      resolveBackupConfig({ flags: { nodehost: "h1:8001", shard: "1", out: "b", "tls-key": "k.pem" } }),
    ).toThrow("--tls-cert and --tls-key must be given together, got only --tls-key");
  });
});

describe("the schemas' fast paths (lazySchema)", () => {
  // Values of every kind a flag, the environment or a config file can give.
  const SAMPLES: unknown[] = [
    ...[0, 1, -1, 2, 1.5, 7, 1024, 1025, 3600, 3601, 10_000, 10_001, 60_000, 60_001, 65_502, 65_503],
    ...[600_000, 600_001, 3_600_000, 3_600_001, 86_400_000, 86_400_001],
    ...[2 ** 53, 2 ** 53 - 1, -(2 ** 53 - 1), -(2 ** 53), Number.NaN, Number.POSITIVE_INFINITY],
    ...["", " ", "x", "kv", "1", "-1", "5s", "500ms", "2m", "1h", "24h", "25h", "0s", "1.5s", "5 s"],
    ...["h1:8001", "127.0.0.1:7111", "[::1]:80", "::1:80", "http://h:1", "h:0", "h:65536", "h:", ":1"],
    ...["debug", "info", "warn", "error", "nope", "true", "none", "eu=2", "a.json"],
    ...[true, false, null, undefined, {}, []],
    ...[["h1:8001"], ["h1:8001", "h2:8002"], ["h1:8001", "bad"], [""], [1], ["a.json"], ["eu=2,us=1"]],
  ];
  const TABLES = { NODEHOST_FIELDS, DRUMMER_FIELDS, CMD_FIELDS, BACKUP_FIELDS, RESTORE_FIELDS, DEV_FIELDS };

  for (const [table, fields] of Object.entries(TABLES)) {
    test(`${table}: every field's schema gives what its zod schema gives, for every value`, () => {
      for (const field of fields) {
        const itself =
          (field.schema as unknown as Record<symbol, typeof field.schema | undefined>)[SCHEMA_ITSELF] ??
          field.schema;
        for (const value of SAMPLES) {
          const fast = field.schema.safeParse(value);
          const slow = itself.safeParse(value);
          const what = `--${field.flag} ${JSON.stringify(value)}`;
          expect(fast.success, what).toBe(slow.success);
          if (slow.success) expect(fast.data, what).toEqual(slow.data);
        }
      }
    });
  }

  test("cmd's positional arguments: delta and replica ids as zod judges them", () => {
    const cmd = (...args: string[]) =>
      resolveCmdConfig({ flags: { nodehost: ["h1:8001"], shard: ["1"] }, args });
    expect(cmd("add", "n", "-5").request).toEqual({ op: "add", key: "n", delta: -5 });
    expect(() => cmd("add", "n", "1.5")).toThrow(
      'cmd add <delta> must be an integer within ±(2^53 − 1), got "1.5"',
    );
    expect(() => cmd("add", "n", String(2 ** 53))).toThrow("cmd add <delta> must be an integer");
    expect(cmd("transfer-leader", "2").request).toEqual({ op: "transfer-leader", replicaId: 2 });
    expect(() => cmd("transfer-leader", "0")).toThrow(
      "cmd transfer-leader <replicaId> must be a positive integer, got 0",
    );
  });
});
