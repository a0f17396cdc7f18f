import { describe, expect, spyOn, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { envName } from "../../src/cli/merge.ts";
import { main } from "../../src/cli/main.ts";
import { SUBCOMMANDS } from "../../src/cli/subcommands.ts";

const MAIN = join(import.meta.dir, "../../src/cli/main.ts");

/** Runs main in-process, capturing stderr and what cac prints with console.info (help). */
async function run(argv: string[], env: Record<string, string> = {}) {
  let stderr = "";
  let stdout = "";
  const info = spyOn(console, "info").mockImplementation((text: string) => {
    stdout += `${text}\n`;
  });
  const write = spyOn(process.stderr, "write").mockImplementation(() => true);
  try {
    const code = await main(argv, { env, stderr: (t) => (stderr += t) });
    return { code, stdout, stderr };
  } finally {
    info.mockRestore();
    write.mockRestore();
  }
}

describe("--help", () => {
  for (const [name, sub] of Object.entries(SUBCOMMANDS)) {
    test(`${name} --help says what it does, every option with its default and env, and an example`, async () => {
      const { code, stdout } = await run([name, "--help"]);
      expect(code).toBe(0);
      expect(stdout).toContain(sub.description);
      for (const field of sub.fields) {
        const line = stdout.split("\n").find((l) => l.trimStart().startsWith(`--${field.flag} `));
        expect(line, `--${field.flag}`).toBeDefined();
        expect(line).toContain(envName(field));
        if (field.default !== undefined) expect(line).toContain(`default ${JSON.stringify(field.default)}`);
        if (field.required) expect(line).toContain("required");
      }
      if (sub.configFile) expect(stdout).toContain("--config <file>");
      expect(stdout).toContain(`$ longboat ${name}`);
    });
  }

  test("top-level --help lists every subcommand", async () => {
    const { code, stdout } = await run(["--help"]);
    expect(code).toBe(0);
    for (const name of Object.keys(SUBCOMMANDS)) expect(stdout).toContain(`  ${name}`);
  });
});

describe("exit codes", () => {
  test("no command prints the help and exits 2", async () => {
    const { code, stdout } = await run([]);
    expect(code).toBe(2);
    expect(stdout).toContain("Commands:");
  });

  test("an unknown command exits 2 naming it", async () => {
    const { code, stderr } = await run(["serve"]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      'longboat: unknown command "serve" (commands: nodehost, drummer, cmd, backup, restore, dev, version; see longboat --help)\n',
    );
  });

  test("an unknown flag exits 2 naming it", async () => {
    const { code, stderr } = await run(["dev", "--shard-count", "3"]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      "longboat: unknown option --shard-count for longboat dev (see longboat dev --help)\n",
    );
  });

  test("a negative number where an option may stand exits 2 saying to put it after --", async () => {
    const { code, stderr } = await run(["cmd", "add", "--nodehost", "h1:8001", "--shard", "1", "n", "-2"]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      'longboat: unknown option -2 for longboat cmd (a negative number goes after "--", as in "… -- -2"; see longboat cmd --help)\n',
    );
  });

  test("a flag without its value exits 2", async () => {
    const { code, stderr } = await run(["dev", "--shards"]);
    expect(code).toBe(2);
    expect(stderr).toBe("longboat: --shards needs a value for longboat dev (see longboat dev --help)\n");
  });

  test("--flag=value is read as --flag value; a boolean flag with a value is refused", async () => {
    const given = await run(["cmd", "get", "--nodehost=h1:8001", "--shard=0", "k"]);
    expect(given).toMatchObject({ code: 2, stderr: "longboat: --shard must be a positive integer, got 0\n" });
    const flag = await run(["cmd", "get", "--json=yes", "--nodehost", "h1:8001", "--shard", "1", "k"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe(
      "longboat: --json takes no value (give --json alone) for longboat cmd (see longboat cmd --help)\n",
    );
  });

  test("after -- everything is an argument; - alone is an argument (put's stdin)", async () => {
    const dashes = await run(["cmd", "get", "--nodehost", "h1:8001", "--shard", "1", "--", "--json", "x"]);
    expect(dashes).toMatchObject({ code: 2, stderr: "longboat: cmd get takes 1 argument(s) <key>, got 2\n" });
    const stdin = await run(["cmd", "put", "--nodehost", "h1:8001", "--shard", "1", "k", "-", "--file", "f"]);
    expect(stdin.code).toBe(2);
    expect(stdin.stderr).toContain(
      'give the value as <value> or with --file, not both (got "-" and --file f)',
    );
  });

  test("-h anywhere prints the command's help", async () => {
    const { code, stdout } = await run(["cmd", "get", "-h"]);
    expect(code).toBe(0);
    expect(stdout).toContain("--nodehost <host:port,…>");
  });

  test("a bad value exits 2 with the field, value and rule", async () => {
    const { code, stderr } = await run(["dev", "--shards", "many"]);
    expect(code).toBe(2);
    expect(stderr).toBe('longboat: --shards must be a positive integer, got "many"\n');
  });

  test("a drummer dead timeout shorter than two report intervals exits 2 naming both", async () => {
    const { code, stderr } = await run([
      "drummer",
      "--id",
      "1",
      "--peers",
      "1=127.0.0.1:9101",
      "--api-address",
      "127.0.0.1:9001",
      "--dead-timeout",
      "8s",
      "--report-interval",
      "5s",
    ]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      "longboat: --dead-timeout (8000 ms) must be at least twice --report-interval (5000 ms): a NodeHost that misses one report would be dead\n",
    );
  });
});

describe("messages that say what is wrong, where, and how to fix it", () => {
  const shard = "id=1,app=kv,replica=1,members=1@127.0.0.1:17001";
  const nodehost = (...extra: string[]) => [
    "nodehost",
    "--raft-address",
    "127.0.0.1:17001",
    "--api-address",
    "127.0.0.1:17002",
    ...extra,
  ];

  test("an http:// URL as --nodehost says to drop the scheme, not to bracket IPv6", async () => {
    const { code, stderr } = await run([
      "cmd",
      "get",
      "--nodehost",
      "http://127.0.0.1:7111",
      "--shard",
      "1",
      "k",
    ]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      'longboat: --nodehost must be host:port with a port in 1..65535, got "http://127.0.0.1:7111" (give host:port without "http://", like 127.0.0.1:7111)\n',
    );
  });

  test("an empty address says it is empty", async () => {
    const { code, stderr } = await run(["cmd", "put", "--nodehost", "", "--shard", "1", "k", "v"]);
    expect(code).toBe(2);
    expect(stderr).toContain(
      '--nodehost must be host:port with a port in 1..65535, got "" (the address is empty',
    );
  });

  test("--shard -1 is checked as a value, not called ambiguous", async () => {
    const { code, stderr } = await run(["cmd", "get", "--nodehost", "h1:8001", "--shard", "-1", "k"]);
    expect(code).toBe(2);
    expect(stderr).toBe("longboat: --shard must be a positive integer, got -1\n");
  });

  test("an option followed by another option says it needs a value", async () => {
    const { code, stderr } = await run(["cmd", "get", "--nodehost", "h1:8001", "--shard", "--json", "k"]);
    expect(code).toBe(2);
    expect(stderr).toContain("--shard needs a value, but the option --json follows it");
    expect(stderr).not.toContain("ambiguous");
  });

  test('--shard "replica=" names the spec, every missing key and the form', async () => {
    const { code, stderr } = await run(nodehost("--shard", "replica="));
    expect(code).toBe(2);
    expect(stderr).toStartWith(
      'longboat: --shard "replica=": "id=", "app=", "members=" are missing and "replica=" has no value: a shard is id=N,app=NAME,replica=N,members=',
    );
    expect(stderr).toContain("quote it in a shell");
  });

  test("an unknown app exits 2 naming it and the known apps", async () => {
    const { code, stderr } = await run(nodehost("--shard", shard.replace("app=kv", "app=nope")));
    expect(code).toBe(2);
    expect(stderr).toBe(
      'longboat: --shard: unknown app "nope" (known: kv, noop; load a plugin with --plugin <file> to add one)\n',
    );
  });

  test("a missing plugin file exits 2 naming it, without Bun's module paths", async () => {
    const { code, stderr } = await run(nodehost("--plugin", "/nonexistent/app.ts"));
    expect(code).toBe(2);
    expect(stderr).toStartWith("longboat: --plugin /nonexistent/app.ts: no such file");
    expect(stderr).not.toContain("bunfs");
  });

  test("a data dir that cannot be created names the path and the reason", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "longboat-cli-")), "a-file");
    writeFileSync(file, "");
    const { code, stderr } = await run(nodehost("--data-dir", join(file, "data"), "--shard", shard));
    expect(code).toBe(1);
    expect(stderr).toBe(
      `longboat: --data-dir ${join(file, "data")} cannot hold the NodeHost's data: a part of the path is a file, not a directory (ENOTDIR); give a directory this user can write (it is created if missing)\n`,
    );
  });

  test("the nodehost --help example quotes its --shard value", async () => {
    const { stdout } = await run(["nodehost", "--help"]);
    const example = stdout.split("\n").find((l) => l.includes("--shard id=") || l.includes('--shard "id='));
    expect(example).toContain('--shard "id=1,app=kv,replica=1,members=1@h1:7001;2@h2:7001;3@h3:7001"');
  });
});

describe("--config", () => {
  const dir = mkdtempSync(join(tmpdir(), "longboat-cli-"));

  test("values come from the file named by --config", async () => {
    const path = join(dir, "dev.json");
    writeFileSync(path, JSON.stringify({ shards: 0 }));
    const { code, stderr } = await run(["dev", "--config", path]);
    expect(code).toBe(2);
    expect(stderr).toBe(`longboat: ${path} at $.shards must be a positive integer, got 0\n`);
  });

  test("LONGBOAT_CONFIG names the file when --config is absent", async () => {
    const path = join(dir, "env.json");
    writeFileSync(path, JSON.stringify({ basePort: 70000 }));
    const { stderr } = await run(["dev"], { LONGBOAT_CONFIG: path });
    expect(stderr).toContain(`${path} at $.basePort must be at most 65502`);
  });

  test("a file that is not JSON exits 2 naming the file", async () => {
    const path = join(dir, "broken.json");
    writeFileSync(path, "{ shards: 3 }");
    const { code, stderr } = await run(["dev", "--config", path]);
    expect(code).toBe(2);
    expect(stderr).toStartWith(`longboat: --config ${path} is not valid JSON: `);
  });

  test("a missing file exits 2 naming the file", async () => {
    const { code, stderr } = await run(["dev", "--config", join(dir, "absent.json")]);
    expect(code).toBe(2);
    expect(stderr).toStartWith(`longboat: --config ${join(dir, "absent.json")} cannot be read: `);
  });
});

describe("as a process", () => {
  function spawn(args: string[]) {
    const p = Bun.spawnSync([process.execPath, MAIN, ...args], { env: { PATH: process.env.PATH ?? "" } });
    return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
  }

  test("version prints the version, commit and bun version and exits 0", () => {
    const { code, stdout } = spawn(["version"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^longboat \d+\.\d+\.\d+ \(commit [0-9a-z]+, bun \d+\.\d+\.\d+\)\n$/);
  });

  test("--version and -v print the same line as version, and --help lists --version and the exit codes", () => {
    const line = spawn(["version"]).stdout;
    for (const flag of ["--version", "-v"])
      expect(spawn([flag])).toEqual({ code: 0, stdout: line, stderr: "" });
    const help = spawn(["--help"]).stdout;
    expect(help).toContain("-v, --version");
    expect(help).toContain("Exit codes:");
    expect(help).toContain("2  bad usage");
  });

  test("drummer --help teaches the dead timeout, report interval and repair limit", () => {
    const { code, stdout } = spawn(["drummer", "--help"]);
    expect(code).toBe(0);
    for (const flag of [
      "--dead-timeout <duration>",
      "--report-interval <duration>",
      "--max-repairs <n>",
      "--join",
    ]) {
      expect(stdout).toContain(flag);
    }
    expect(stdout).toContain("LONGBOAT_DEAD_TIMEOUT");
  });

  test("a bad flag value exits 2", () => {
    const { code, stderr } = spawn([
      "nodehost",
      "--raft-address",
      "h1:7001",
      "--api-address",
      "h1:8001",
      "--rtt-ms",
      "fast",
    ]);
    expect(code).toBe(2);
    expect(stderr).toBe('longboat: --rtt-ms must be a positive integer, got "fast"\n');
  });
});
