/**
 * Merging one subcommand's configuration from flags, LONGBOAT_* environment variables and a
 * JSON config file, validating each value with the field's zod schema. The schemas themselves
 * live in src/cli/config.ts; this file only knows how to read sources and word errors.
 */
import type { z as Zod } from "zod";
import { parsePeers, parseShardSpec, SpecError } from "./specs.ts";

let zodLoaded: typeof Zod | undefined;

/**
 * zod, evaluated the first time a schema is built (a require, not an import: a CLI call whose
 * values all take their schemas' fast paths never evaluates it, ~5 ms of CPU).
 */
export const z: typeof Zod = new Proxy({} as typeof Zod, {
  get(_, key) {
    zodLoaded ??= (require("zod") as typeof import("zod")).z;
    return Reflect.get(zodLoaded, key);
  },
});

/**
 * What a schema's fast path gives for a value: what the schema would give, or undefined to
 * let the schema decide (and word the refusal).
 */
export type FastPath = (value: unknown) => { data: unknown } | undefined;

/** The key under which a lazySchema gives its zod schema itself, without the fast path (tests). */
export const SCHEMA_ITSELF: unique symbol = Symbol("schema itself");

/**
 * A schema built the first time it is used, with an optional fast path for the values it
 * accepts. Loading zod's schemas cost a CLI call ~20 ms of CPU (docs/performance.md, CLI
 * start-up): building every table at start, then zod's first use of each kind of schema. Every
 * schema of the option tables is declared through this, so only those of the values given are
 * built, and a fast path (test/cli/config.test.ts checks it gives what the schema gives) lets a
 * usual value through without zod; zod still judges, and words, every value it does not take.
 * Stands for the schema in every use (properties, methods, instanceof, a part of another schema).
 */
export function lazySchema<T extends object>(make: () => T, fast?: FastPath): T {
  let built: T | undefined;
  const real = (): T => {
    built ??= make();
    return built;
  };
  type Parse = (value: unknown, ...rest: unknown[]) => unknown;
  return new Proxy({} as T, {
    get(_, key) {
      if (key === SCHEMA_ITSELF) return real();
      if (fast !== undefined && (key === "parse" || key === "safeParse")) {
        return (value: unknown, ...rest: unknown[]) => {
          const quick = fast(value);
          if (quick === undefined) return (Reflect.get(real(), key) as Parse)(value, ...rest);
          return key === "parse" ? quick.data : { success: true, data: quick.data };
        };
      }
      const target = real();
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
    has: (_, key) => Reflect.has(real(), key),
    set: (_, key, value) => Reflect.set(real(), key, value),
    getPrototypeOf: () => Reflect.getPrototypeOf(real()),
  });
}

/** A configuration value that is wrong; exit code 2. The message names the field, value and rule. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * How a field's flag and environment text becomes a value: `text` as is, `int` a decimal
 * integer, `bool` true/false/1/0, `list` comma-separated (flag repeatable), `shards` one
 * shard spec per flag (space-separated in the environment), `peers` id=host:port,….
 */
export type TextKind = "text" | "int" | "bool" | "list" | "shards" | "peers";

/** One configuration field of a subcommand. */
export interface Field {
  /** camelCase key in the config file and in the resolved config. */
  key: string;
  /** kebab-case flag name without the leading dashes; the env name derives from it. */
  flag: string;
  kind: TextKind;
  /** Value placeholder in --help, e.g. "ms" or "host:port"; absent for boolean flags. */
  valueName?: string;
  /** One line for --help: what the field does and its unit. */
  help: string;
  /** Validates one value from any source. */
  schema: Zod.ZodType;
  /** Used when no source gives the field; absent means optional unless `required`. */
  default?: unknown;
  required?: boolean;
}

/** Raw inputs: flag values keyed by flag name as parsed, the environment, a parsed JSON file. */
export interface ConfigInput {
  flags?: Record<string, string | boolean | (string | boolean)[] | undefined>;
  env?: Record<string, string | undefined>;
  file?: { path: string; data: unknown };
}

/** Where each resolved key came from, in user terms (`--rtt-ms`, `LONGBOAT_RTT_MS`, `f.json at $.rttMs`). */
export type Labels = Map<string, string>;

/** `LONGBOAT_RTT_MS` for `rtt-ms`. */
export function envName(field: Field): string {
  return `LONGBOAT_${field.flag.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * Resolves every field: flags beat env beat file beat default. Returns the values (absent
 * optional fields left out) and where each came from. Throws ConfigError on the first bad value.
 */
export function mergeFields(
  fields: readonly Field[],
  input: ConfigInput,
): { values: Record<string, unknown>; labels: Labels } {
  const fileData = checkFileKeys(fields, input.file);
  const values: Record<string, unknown> = {};
  const labels: Labels = new Map();
  for (const field of fields) {
    const found = findValue(field, input, fileData);
    if (found === undefined) {
      if (field.required) {
        throw new ConfigError(
          `--${field.flag} is required (or ${envName(field)}, or "${field.key}" in --config)`,
        );
      }
      // A text default is written as a user would type it (e.g. "60s"), so it goes through the
      // schema like typed text; other defaults are given as the value itself.
      if (field.default !== undefined) {
        values[field.key] = field.kind === "text" ? field.schema.parse(field.default) : field.default;
      }
      labels.set(field.key, `--${field.flag}`);
      continue;
    }
    const result = field.schema.safeParse(found.value);
    if (!result.success) throw new ConfigError(describeIssue(result.error.issues[0]!, found));
    values[field.key] = result.data;
    labels.set(field.key, found.label);
  }
  return { values, labels };
}

interface Found {
  value: unknown;
  label: string;
  /** Whether the label is a JSON path that issue paths extend. */
  json: boolean;
}

function findValue(field: Field, input: ConfigInput, fileData: Record<string, unknown> | undefined) {
  const flagValue = input.flags?.[field.flag];
  if (flagValue !== undefined) {
    const texts = Array.isArray(flagValue) ? flagValue : [flagValue];
    if (texts.length > 1 && field.kind !== "list" && field.kind !== "shards") {
      throw new ConfigError(`--${field.flag} is given ${texts.length} times; give it once`);
    }
    return fromText(field, texts, `--${field.flag}`);
  }
  const envText = input.env?.[envName(field)];
  if (envText !== undefined && envText !== "") {
    const texts = field.kind === "shards" ? envText.trim().split(/\s+/) : [envText];
    return fromText(field, texts, envName(field));
  }
  if (fileData !== undefined && field.key in fileData) {
    return { value: fileData[field.key], label: `${input.file!.path} at $.${field.key}`, json: true };
  }
  return undefined;
}

function fromText(field: Field, texts: (string | boolean)[], label: string): Found {
  const strings = texts.map(String);
  try {
    switch (field.kind) {
      case "text":
        return { value: strings[0], label, json: false };
      case "int":
        return { value: textToInt(strings[0]!), label, json: false };
      case "bool":
        return { value: textToBool(texts[0]!), label, json: false };
      case "list":
        return { value: strings.flatMap((s) => s.split(",")), label, json: false };
      case "shards":
        return { value: strings.map(shardSpec), label, json: false };
      case "peers":
        return { value: parsePeers(strings[0]!), label, json: false };
    }
  } catch (e) {
    if (e instanceof SpecError) throw new ConfigError(`${label} ${e.message}`);
    throw e;
  }
}

/** A shard spec is long and --shard repeats: an error names the spec it is about. */
function shardSpec(text: string) {
  try {
    return parseShardSpec(text);
  } catch (e) {
    if (e instanceof SpecError) throw new SpecError(`${JSON.stringify(text)}: ${e.message}`);
    throw e;
  }
}

/** Decimal integer text becomes a number; anything else (or beyond 2^53) stays text for the error. */
function textToInt(text: string): unknown {
  const n = /^-?[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  return Number.isSafeInteger(n) ? n : text;
}

function textToBool(text: string | boolean): unknown {
  if (typeof text === "boolean") return text;
  if (text === "true" || text === "1") return true;
  if (text === "false" || text === "0") return false;
  return text;
}

function checkFileKeys(fields: readonly Field[], file: ConfigInput["file"]) {
  if (file === undefined) return undefined;
  const data = file.data;
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(`${file.path} must hold a JSON object, got ${JSON.stringify(data)}`);
  }
  const allowed = fields.map((f) => f.key);
  for (const key of Object.keys(data)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(
        `${file.path} has unknown key "${key}" at $.${key} (allowed: ${allowed.join(", ")})`,
      );
    }
  }
  return data as Record<string, unknown>;
}

function describeIssue(issue: Zod.core.$ZodIssue, found: Found): string {
  let value: unknown = found.value;
  for (const step of issue.path) value = (value as Record<PropertyKey, unknown>)?.[step];
  const where = found.json ? found.label + renderPath(issue.path) : withTextPath(found, issue.path);
  const got = value === undefined || typeof value === "object" ? "" : `, got ${JSON.stringify(value)}`;
  const detail = (issue as { params?: { detail?: string } }).params?.detail;
  return `${where} ${issue.message}${got}${detail === undefined ? "" : ` (${detail})`}`;
}

function withTextPath(found: Found, path: readonly PropertyKey[]): string {
  // A list item is identified by the value shown after "got"; a field inside a shard spec
  // needs its name: `--shard members[1].address must be …`.
  const named = path.findIndex((p) => typeof p === "string");
  return named < 0 ? found.label : `${found.label} ${renderPath(path.slice(named)).slice(1)}`;
}

function renderPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
}
