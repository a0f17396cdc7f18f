import { describe, expect, test } from "bun:test";
import { ManualEnv } from "../../src/env.ts";
import { mkdirDurable, publishFile } from "../../src/fs/durable.ts";
import type { Rng } from "../../src/raft/storage.ts";
import { SimDisk } from "./disk.ts";

const text = (s: string) => new TextEncoder().encode(s);
const read = (disk: SimDisk, path: string) => new TextDecoder().decode(disk.readFile(path));

/** An rng that counts its draws. */
function counting(seed: number): Rng & { draws: number } {
  const env = new ManualEnv(seed);
  const r = {
    draws: 0,
    nextInt(n: number): number {
      r.draws++;
      return env.nextInt(n);
    },
  };
  return r;
}

/** Runs setup on a fresh disk per seed, then a power loss; returns what check says about each. */
function outcomes(
  seeds: number,
  setup: (disk: SimDisk) => void,
  check: (disk: SimDisk) => string,
): Set<string> {
  const seen = new Set<string>();
  for (let seed = 1; seed <= seeds; seed++) {
    const disk = new SimDisk(new ManualEnv(seed));
    setup(disk);
    disk.powerLoss();
    seen.add(check(disk));
  }
  return seen;
}

function writeFile(disk: SimDisk, path: string, data: string, sync: boolean): void {
  const h = disk.open(path, "create");
  h.write(text(data));
  if (sync) h.sync();
  h.close();
}

describe("the simulated disk", () => {
  test("reads back what was written, lists, stats, renames and removes like a file system", () => {
    const disk = new SimDisk(new ManualEnv(1));
    disk.mkdir("/d");
    writeFile(disk, "/d/a", "hello", false);
    expect(read(disk, "/d/a")).toBe("hello");
    expect(disk.stat("/d/a")).toEqual({ isDirectory: false, sizeBytes: 5 });
    expect(disk.stat("/d")?.isDirectory).toBe(true);
    expect(disk.stat("/d/none")).toBeNull();
    disk.rename("/d/a", "/d/b");
    expect(disk.list("/d")).toEqual(["b"]);
    const h = disk.open("/d/b", "read");
    const into = new Uint8Array(3);
    expect(h.read(into, 2)).toBe(3);
    expect(new TextDecoder().decode(into)).toBe("llo");
    expect(() => disk.open("/d/b", "createNew")).toThrow(/EEXIST/);
    expect(() => disk.open("/d/none", "read")).toThrow(/ENOENT/);
    expect(() => disk.mkdir("/x/y")).toThrow(/ENOENT/);
    disk.remove("/d/b");
    disk.remove("/d/b");
    expect(disk.list("/d")).toEqual([]);
    disk.removeTree("/d");
    expect(disk.stat("/d")).toBeNull();
  });

  test("a process crash loses nothing: only powerLoss does", () => {
    const disk = new SimDisk(new ManualEnv(1));
    disk.mkdir("/d");
    writeFile(disk, "/d/a", "unsynced", false);
    expect(read(disk, "/d/a")).toBe("unsynced");
  });

  test("synced data under a synced name survives every power loss", () => {
    const seen = outcomes(
      50,
      (disk) => {
        mkdirDurable(disk, "/d");
        writeFile(disk, "/d/a", "durable", true);
        disk.syncDir("/d");
      },
      (disk) => read(disk, "/d/a"),
    );
    expect([...seen]).toEqual(["durable"]);
  });

  test("an unsynced file keeps its synced part and a random part of the rest (empty, torn or whole)", () => {
    const seen = outcomes(
      200,
      (disk) => {
        mkdirDurable(disk, "/d");
        const h = disk.open("/d/a", "create");
        h.write(text("abc"));
        h.sync();
        h.write(text("defgh"));
        h.close();
        disk.syncDir("/d");
      },
      (disk) => read(disk, "/d/a"),
    );
    expect(seen.has("abc")).toBe(true);
    expect(seen.has("abcdefgh")).toBe(true);
    expect([...seen].some((s) => s.length > 3 && s.length < 8)).toBe(true);
    for (const s of seen) expect(s.startsWith("abc")).toBe(true);
  });

  test("a rename whose directory was not synced may be undone", () => {
    const seen = outcomes(
      50,
      (disk) => {
        mkdirDurable(disk, "/d");
        writeFile(disk, "/d/a.tmp", "x", true);
        disk.syncDir("/d");
        disk.rename("/d/a.tmp", "/d/a");
      },
      (disk) => disk.list("/d").join(","),
    );
    expect([...seen].sort()).toEqual(["a", "a.tmp"]);
  });

  test("a new directory whose parent was not synced may vanish; mkdirDurable's never does", () => {
    const plain = outcomes(
      50,
      (disk) => disk.mkdir("/d"),
      (disk) => String(disk.stat("/d") !== null),
    );
    expect([...plain].sort()).toEqual(["false", "true"]);
    const durable = outcomes(
      50,
      (disk) => mkdirDurable(disk, "/d/e"),
      (disk) => String(disk.stat("/d/e") !== null),
    );
    expect([...durable]).toEqual(["true"]);
  });

  test("publishFile's order survives every power loss; a rename and directory fsync without the file's fsync does not", () => {
    const write = (disk: SimDisk) => {
      mkdirDurable(disk, "/in");
      mkdirDurable(disk, "/snap");
      writeFile(disk, "/in/r.snap", "snapshot bytes", false);
    };
    const published = outcomes(
      50,
      (disk) => {
        write(disk);
        publishFile(disk, "/in/r.snap", "/snap/s");
      },
      (disk) => read(disk, "/snap/s"),
    );
    expect([...published]).toEqual(["snapshot bytes"]);
    const unsynced = outcomes(
      50,
      (disk) => {
        write(disk);
        disk.rename("/in/r.snap", "/snap/s");
        disk.syncDir("/snap");
      },
      (disk) => read(disk, "/snap/s"),
    );
    expect(unsynced.size).toBeGreaterThan(1);
    expect(unsynced.has("")).toBe(true);
  });

  test("handles opened before a power loss are dead", () => {
    const disk = new SimDisk(new ManualEnv(1));
    disk.mkdir("/d");
    const h = disk.open("/d/a", "create");
    disk.powerLoss();
    expect(() => h.write(text("x"))).toThrow(/before a power loss/);
  });

  test("a power loss draws no randomness when everything is synced", () => {
    const rng = counting(3);
    const disk = new SimDisk(rng);
    mkdirDurable(disk, "/d/e");
    writeFile(disk, "/d/e/a", "x", true);
    disk.syncDir("/d/e");
    disk.powerLoss();
    expect(rng.draws).toBe(0);
    writeFile(disk, "/d/e/b", "y", false);
    disk.powerLoss();
    expect(rng.draws).toBeGreaterThan(0);
  });
});
