import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeNoopCount, NoopStateMachine } from "../../src/statemachine/noop.ts";
import {
  AppRegistry,
  builtinApps,
  loadPlugin,
  PluginError,
  UnknownAppError,
} from "../../src/statemachine/registry.ts";

const dir = mkdtempSync(join(tmpdir(), "longboat-plugin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pluginFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const GOOD_SM = `{
  update: (es) => es.map((e) => ({ value: e.cmd.length, data: new Uint8Array(0) })),
  lookup: () => new Uint8Array([7]),
  saveSnapshot: () => {},
  recoverFromSnapshot: () => {},
  hash: () => "h",
  close: () => {},
}`;

describe("app registry", () => {
  test("builtin apps are kv and noop", () => {
    expect(builtinApps().names()).toEqual(["kv", "noop"]);
  });

  test("an unknown app name throws UnknownAppError listing the known names", () => {
    const r = builtinApps();
    expect(() => r.get("redis")).toThrow(UnknownAppError);
    expect(() => r.get("redis")).toThrow(/unknown app "redis" \(known: kv, noop/);
  });

  test("registering a name twice throws", () => {
    const r = new AppRegistry();
    r.register("a", () => new NoopStateMachine());
    expect(() => r.register("a", () => new NoopStateMachine())).toThrow(/already registered/);
  });

  test("a malformed app name is refused", () => {
    expect(() => new AppRegistry().register("bad name!", () => new NoopStateMachine())).toThrow(/invalid/);
  });

  test("noop counts updates and lookup returns the count", () => {
    const sm = builtinApps().get("noop")(1, 1);
    const rs = sm.update([
      { index: 1, cmd: new Uint8Array([1]) },
      { index: 2, cmd: new Uint8Array([2]) },
    ]);
    expect(rs.map((r) => r.value)).toEqual([1, 2]);
    expect(decodeNoopCount(sm.lookup(new Uint8Array(0)))).toBe(2);
  });
});

describe("plugin loading", () => {
  test("a good plugin registers its app and the factory works", async () => {
    const path = pluginFile("good.ts", `export default { name: "counter", create: (s, r) => (${GOOD_SM}) };`);
    const r = builtinApps();
    expect(await loadPlugin(path, r)).toEqual(["counter"]);
    const sm = r.get("counter")(1, 2);
    expect(sm.lookup(new Uint8Array(0))).toEqual(new Uint8Array([7]));
  });

  test("a plugin exporting an array registers every app", async () => {
    const path = pluginFile(
      "many.js",
      `export default [{ name: "p1", create: () => (${GOOD_SM}) }, { name: "p2", create: () => (${GOOD_SM}) }];`,
    );
    const r = new AppRegistry();
    expect(await loadPlugin(path, r)).toEqual(["p1", "p2"]);
    expect(r.names()).toEqual(["p1", "p2"]);
  });

  test("a plugin without a default export is refused naming the file", async () => {
    const path = pluginFile("nodefault.ts", `export const app = { name: "x", create: () => null };`);
    const err = await loadPlugin(path, new AppRegistry()).catch((e) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toContain(path);
    expect(err.message).toContain("has no default export");
  });

  test("a plugin whose create is not a function is refused saying which field", async () => {
    const path = pluginFile("badcreate.ts", `export default { name: "x", create: 42 };`);
    const err = await loadPlugin(path, new AppRegistry()).catch((e) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toMatch(/default export\.create: must be a function/);
  });

  test("a plugin with a bad name is refused saying which field", async () => {
    const path = pluginFile("badname.ts", `export default { name: "has space", create: () => null };`);
    const err = await loadPlugin(path, new AppRegistry()).catch((e) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toContain("default export.name");
  });

  test("a plugin that fails to import is refused with the cause", async () => {
    const path = pluginFile("throws.ts", `throw new Error("boom at load"); export default {};`);
    const err = await loadPlugin(path, new AppRegistry()).catch((e) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toMatch(/cannot be imported: boom at load/);
  });

  test("a missing plugin file is refused naming the file", async () => {
    const err = await loadPlugin(join(dir, "absent.ts"), new AppRegistry()).catch((e) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toContain("absent.ts");
  });

  test("a plugin app clashing with a registered name registers nothing", async () => {
    const path = pluginFile(
      "clash.ts",
      `export default [{ name: "fresh", create: () => null }, { name: "kv", create: () => null }];`,
    );
    const r = builtinApps();
    const err = await loadPlugin(path, r).catch((e) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toContain(`app "kv" is already registered`);
    expect(r.has("fresh")).toBe(false);
  });
});
