/**
 * The `longboat` executable. Exit codes: 0 done, 1 failed, 2 bad usage (unknown command or
 * option, invalid configuration value).
 *
 * cac matches the subcommand and prints --help; the flag values themselves are read with
 * node:util parseArgs, because cac's parser turns numeric-looking text into numbers
 * (`--api-token 007` would become 7) and so could not report the value as typed.
 */
import type { CAC } from "cac";
import { ConfigError, type ConfigInput, envName, type Field } from "./merge.ts";
import { printText } from "./output.ts";
import { exitWithParent } from "./parent.ts";
import type { Subcommand } from "./subcommands.ts";
import { mark, printTrace } from "./trace.ts";

/** A command-line mistake that is not about a configuration value: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** What main reads and writes besides the arguments, so tests can supply their own. */
export interface Io {
  env: Record<string, string | undefined>;
  stderr(text: string): void;
}

/** Runs the CLI on `argv` (without the executable and script) and returns the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  return (await run(argv, io)).code;
}

/**
 * main, and whether process.stdout/process.stderr may still hold output when it returns: true
 * once a subcommand that writes through them ran (src/cli/output.ts says why the short-lived
 * ones do not).
 */
async function run(argv: readonly string[], io: Io): Promise<{ code: number; drain: boolean }> {
  const ran = { drain: false };
  try {
    return { code: await dispatch(argv, io, ran), drain: ran.drain };
  } catch (e) {
    const usage = e instanceof ConfigError || e instanceof UsageError;
    io.stderr(`longboat: ${e instanceof Error ? e.message : String(e)}\n`);
    return { code: usage ? 2 : 1, drain: ran.drain };
  }
}

/** The exit codes, as every --help and the README state them. */
export const EXIT_CODES = [
  "  0  done",
  "  1  failed: the request was refused or could not be made; cmd get of a missing key (--json: found false),",
  "     cmd delete of a missing key, cmd cas that did not swap, cmd health with a host unhealthy or unreachable",
  "  2  bad usage: unknown command, op or option, a missing or invalid value, an unknown app, a missing plugin file",
].join("\n");

/** What `longboat --version` and `longboat version` accept; they load nothing else. */
const VERSION_ARGS = new Set(["version", "--version", "-v"]);

async function dispatch(argv: readonly string[], io: Io, ran: { drain: boolean }): Promise<number> {
  mark("main");
  if (argv.length === 1 && VERSION_ARGS.has(argv[0]!)) return (await import("./commands/version.ts")).run();
  // The table of subcommands loads the fields but no command: each command's module (the
  // engine, the API client, protobuf) is imported once it runs, and each field's schema is
  // built once a value of it is checked (lazySchema).
  const { SUBCOMMANDS } = await import("./subcommands.ts");
  mark("table");
  // A subcommand run as such needs no cac: cac only prints the help and names what is not a
  // command (building its help of every option cost ~12 ms of a `cmd get`'s CPU).
  const first = argv[0];
  const wantsHelp = argv.some((a) => a === "--help" || a === "-h");
  const name =
    first !== undefined && !wantsHelp && Object.hasOwn(SUBCOMMANDS, first) ? first : await helpOrName(argv);
  if (typeof name === "number") return name;
  const sub = SUBCOMMANDS[name]!;
  const { flags, positionals } = readFlags(name, sub, argv);
  mark("flags");
  const configPath = typeof flags.config === "string" ? flags.config : io.env.LONGBOAT_CONFIG;
  const input: ConfigInput = { flags, env: io.env };
  if (sub.configFile && configPath !== undefined && configPath !== "")
    input.file = await loadConfigFile(configPath);
  ran.drain = sub.completeWrites !== true;
  return sub.start(input, positionals.slice(1));
}

/**
 * cac's part: prints the help asked for (exit 0), or the help when no command is given (exit
 * 2); refuses what is not a command; else returns the command's name.
 */
async function helpOrName(argv: readonly string[]): Promise<string | number> {
  const { SUBCOMMANDS } = await import("./subcommands.ts");
  const cli = buildCli((await import("cac")).cac, SUBCOMMANDS);
  cli.parse(["longboat", "longboat", ...argv], { run: false });
  if (cli.options.help) return 0; // cac has printed the help
  const name = cli.matchedCommandName;
  if (name !== undefined) return name;
  if (cli.args.length === 0) {
    cli.outputHelp();
    return 2;
  }
  const known = Object.keys(SUBCOMMANDS).join(", ");
  throw new UsageError(`unknown command "${cli.args[0]}" (commands: ${known}; see longboat --help)`);
}

/** The cac program: one command per subcommand, options described from the field tables. */
function buildCli(cac: (name: string) => CAC, subcommands: Record<string, Subcommand>): CAC {
  const cli = cac("longboat");
  for (const sub of Object.values(subcommands)) {
    const command = cli.command(sub.usage, sub.description);
    for (const field of sub.fields) command.option(optionName(field), optionHelp(field));
    if (sub.configFile) {
      command.option(
        "--config <file>",
        "JSON file of options with camelCase keys; flags and env beat it (env LONGBOAT_CONFIG)",
      );
    }
    for (const example of sub.examples) command.example(example);
    command.usage(`${sub.usage} [options]`);
  }
  // cac's help of a command lists usage and options; put what the command does under the usage.
  cli.help((sections) => {
    if (cli.matchedCommand !== undefined) sections.splice(2, 0, { body: cli.matchedCommand.description });
    sections.push({ title: "Exit codes", body: EXIT_CODES });
    return sections;
  });
  cli.example("  $ longboat dev");
  cli.option("-v, --version", "print the version (as `longboat version`)");
  return cli;
}

function optionName(field: Field): string {
  return field.valueName === undefined ? `--${field.flag}` : `--${field.flag} <${field.valueName}>`;
}

function optionHelp(field: Field): string {
  const base = field.required
    ? "required"
    : field.default === undefined
      ? "optional"
      : `default ${JSON.stringify(field.default)}`;
  return `${field.help} (${base}; env ${envName(field)})`;
}

interface FlagSpec {
  type: "string" | "boolean";
  multiple: boolean;
}

/**
 * Reads the flags of subcommand `name` (strict: an unknown option, a missing value or a value
 * that looks like an option is a UsageError) and the positional arguments (the command's name
 * first). `--flag value` and `--flag=value`; a value may be "-" (stdin) or a negative number
 * (`--shard -1` is checked as a value, not taken for an option); after "--" all is positional.
 * Not node:util's parseArgs, whose import alone cost ~7 ms of CPU at every start.
 */
function readFlags(name: string, sub: Subcommand, argv: readonly string[]) {
  const specs = new Map<string, FlagSpec>([["help", { type: "boolean", multiple: false }]]);
  for (const field of sub.fields)
    specs.set(field.flag, { type: field.kind === "bool" ? "boolean" : "string", multiple: true });
  if (sub.configFile) specs.set("config", { type: "string", multiple: false });
  const flags: Record<string, string | boolean | (string | boolean)[]> = {};
  const positionals: string[] = [];
  const refuse = (what: string, hint = `see longboat ${name} --help`) =>
    new UsageError(`${what} for longboat ${name} (${hint})`);
  const store = (key: string, spec: FlagSpec, value: string | boolean) => {
    if (!spec.multiple) flags[key] = value;
    else flags[key] = [...((flags[key] as (string | boolean)[] | undefined) ?? []), value];
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      store("help", specs.get("help")!, true);
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    if (!arg.startsWith("--")) {
      const negative = /^-[0-9]/.test(arg);
      throw refuse(
        `unknown option ${arg}`,
        negative
          ? `a negative number goes after "--", as in "… -- ${arg}"; see longboat ${name} --help`
          : undefined,
      );
    }
    const eq = arg.indexOf("=");
    const key = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs.get(key);
    if (spec === undefined) throw refuse(`unknown option --${key}`);
    if (spec.type === "boolean") {
      if (eq >= 0) throw refuse(`--${key} takes no value (give --${key} alone)`);
      store(key, spec, true);
      continue;
    }
    if (eq >= 0) {
      store(key, spec, arg.slice(eq + 1));
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined) throw refuse(`--${key} needs a value`);
    if (next.length > 1 && next.startsWith("-") && !/^-[0-9]/.test(next)) {
      throw refuse(
        `--${key} needs a value, but the option ${next} follows it (a value that starts with "-" is written --${key}=${next})`,
      );
    }
    store(key, spec, next);
    i++;
  }
  return { flags: flags as ConfigInput["flags"] & { config?: string }, positionals };
}

async function loadConfigFile(path: string): Promise<NonNullable<ConfigInput["file"]>> {
  const { readFileSync } = await import("node:fs");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`--config ${path} cannot be read: ${(e as Error).message}`);
  }
  try {
    return { path, data: JSON.parse(text) };
  } catch (e) {
    throw new ConfigError(`--config ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Ends stdout and stderr and waits until what was written to them has left the process. A
 * pipe takes 64 KiB at a time and Bun writes the rest asynchronously: exiting at once cut a
 * 120,000-byte `cmd get` to 65,536 bytes when its reader was slower than the process.
 */
export async function flushOutput(): Promise<void> {
  const drained = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => {
      // A reader that went away (EPIPE) ends the wait too: nothing more can be delivered.
      stream.once("error", () => resolve());
      stream.end(() => resolve());
    });
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
}

if (import.meta.main) {
  exitWithParent(process.env);
  const { code, drain } = await run(process.argv.slice(2), {
    env: process.env,
    stderr: (text) => printText(text, "stderr"),
  });
  if (drain) await flushOutput();
  mark("done");
  printTrace();
  process.exit(code);
}
