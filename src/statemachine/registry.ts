import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { KvStateMachine } from "./kv.ts";
import { NoopStateMachine } from "./noop.ts";
import type { CreateStateMachine } from "./types.ts";

/** App names: what `--app` and the bootstrap record carry. */
export const APP_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export class UnknownAppError extends Error {
  override readonly name = "UnknownAppError";
  constructor(
    readonly app: string,
    readonly known: string[],
  ) {
    super(
      `unknown app "${app}" (known: ${known.join(", ") || "none"}; load a plugin with --plugin <file> to add one)`,
    );
  }
}

/** A plugin file that cannot be imported or does not export what it must. */
export class PluginError extends Error {
  override readonly name = "PluginError";
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`plugin ${file}: ${problem}`);
  }
}

/**
 * Apps by name.
 * @example const apps = builtinApps(); const create = apps.get("kv"); const sm = create(1, 1);
 */
export class AppRegistry {
  private readonly apps = new Map<string, CreateStateMachine>();

  /** @throws Error when the name is malformed or already registered. */
  register(name: string, factory: CreateStateMachine): void {
    if (!APP_NAME_PATTERN.test(name)) {
      throw new Error(`app name "${name}" is invalid: use 1-64 letters, digits, '_', '.' or '-'`);
    }
    if (typeof factory !== "function") throw new Error(`app "${name}": factory is not a function`);
    if (this.apps.has(name)) throw new Error(`app "${name}" is already registered`);
    this.apps.set(name, factory);
  }

  /** @throws UnknownAppError listing the known names. */
  get(name: string): CreateStateMachine {
    const f = this.apps.get(name);
    if (f === undefined) throw new UnknownAppError(name, this.names());
    return f;
  }

  has(name: string): boolean {
    return this.apps.has(name);
  }

  names(): string[] {
    return [...this.apps.keys()].sort();
  }
}

/** A registry holding the built-in apps `kv` and `noop`. */
export function builtinApps(): AppRegistry {
  const r = new AppRegistry();
  r.register("kv", () => new KvStateMachine());
  r.register("noop", () => new NoopStateMachine());
  return r;
}

const pluginApp = z.object({
  name: z.string().regex(APP_NAME_PATTERN, "must be 1-64 letters, digits, '_', '.' or '-'"),
  create: z.custom<CreateStateMachine>(
    (v) => typeof v === "function",
    "must be a function (shardId, replicaId) => state machine",
  ),
});
const pluginApps = z.array(pluginApp).min(1, "the array of apps is empty");

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map(
      (i) =>
        `${i.path.length > 0 ? `default export.${i.path.map(String).join(".")}` : "default export"}: ${i.message}`,
    )
    .join("; ");
}

/**
 * Imports a TS/JS plugin file whose default export is `{ name, create }` or an array of them,
 * validates it and registers its apps; returns their names.
 * @throws PluginError naming the file and the problem; nothing is registered then.
 * @example await loadPlugin("./myapp.ts", registry) // → ["myapp"]
 */
export async function loadPlugin(path: string, registry: AppRegistry): Promise<string[]> {
  const file = resolve(path);
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (error) {
    throw new PluginError(file, `cannot be imported: ${(error as Error).message}`);
  }
  if (mod.default === undefined) {
    throw new PluginError(file, "has no default export (expected `export default { name, create }`)");
  }
  // Validated per shape (not as a union) so the error names the field that is wrong.
  const parsed = Array.isArray(mod.default)
    ? pluginApps.safeParse(mod.default)
    : pluginApp.transform((a) => [a]).safeParse(mod.default);
  if (!parsed.success) throw new PluginError(file, describeIssues(parsed.error));
  const apps = parsed.data;
  const seen = new Set<string>();
  for (const app of apps) {
    if (registry.has(app.name) || seen.has(app.name)) {
      throw new PluginError(file, `app "${app.name}" is already registered`);
    }
    seen.add(app.name);
  }
  for (const app of apps) registry.register(app.name, app.create);
  return apps.map((a) => a.name);
}
