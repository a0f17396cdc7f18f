import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DevConfig } from "../config.ts";

const HOSTS = [1, 2, 3];
/** A host that exits unexpectedly is restarted at most this many times. */
const MAX_RESTARTS = 5;
const RESTART_DELAY_MS = 2000;

/** The command line that runs this same longboat (compiled binary, or bun + the entry script). */
function self(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs") || Bun.main.includes("~BUN");
  return compiled ? [process.execPath] : [process.execPath, Bun.main];
}

/**
 * Runs `longboat dev`: three NodeHost processes on 127.0.0.1 sharing `shards` kv shards, data
 * under dataDir. Ctrl-C stops them all. A host that dies is restarted after a pause, so killing
 * one shows the deployment surviving and the host catching up.
 */
export async function run(config: DevConfig): Promise<number> {
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const raft = (i: number) => `127.0.0.1:${config.basePort + i}`;
  const api = (i: number) => `127.0.0.1:${config.basePort + 10 + i}`;
  const members = HOSTS.map((i) => `${i}@${raft(i)}`).join(";");
  const args = (i: number) => {
    const a = [
      "nodehost",
      "--data-dir",
      join(dataDir, `host-${i}`),
      "--raft-address",
      raft(i),
      "--api-address",
      api(i),
    ];
    for (let s = 1; s <= config.shards; s++)
      a.push("--shard", `id=${s},app=kv,replica=${i},members=${members}`);
    return a;
  };
  let stopping = false;
  const procs = new Map<number, ReturnType<typeof Bun.spawn>>();
  const restarts = new Map<number, number>();
  const start = (i: number) => {
    const proc = Bun.spawn([...self(), ...args(i)], { stdio: ["ignore", "inherit", "inherit"] });
    procs.set(i, proc);
    proc.exited.then((code) => {
      if (stopping) return;
      const n = (restarts.get(i) ?? 0) + 1;
      restarts.set(i, n);
      if (n > MAX_RESTARTS) {
        process.stderr.write(`longboat dev: host ${i} exited (code ${code}) ${n} times; giving up on it\n`);
        return;
      }
      process.stderr.write(
        `longboat dev: host ${i} exited (code ${code}); restarting it in ${RESTART_DELAY_MS} ms\n`,
      );
      setTimeout(() => {
        if (!stopping) start(i);
      }, RESTART_DELAY_MS);
    });
  };
  for (const i of HOSTS) start(i);
  const first = api(1);
  process.stdout.write(
    [
      `longboat dev: 3 NodeHosts, ${config.shards} kv shards replicated on all three, data in ${dataDir}`,
      ...HOSTS.map((i) => `  host ${i}: raft ${raft(i)}  API http://${api(i)}`),
      "try, from another terminal:",
      `  dist/longboat cmd put --nodehost ${first} --shard 1 greeting hello`,
      `  dist/longboat cmd get --nodehost ${api(2)} --shard 1 greeting`,
      `  dist/longboat cmd status --nodehost ${first}`,
      "Ctrl-C stops all three.",
      "",
    ].join("\n"),
  );
  await new Promise<void>((done) => {
    process.once("SIGINT", () => done());
    process.once("SIGTERM", () => done());
  });
  stopping = true;
  process.stderr.write("longboat dev: stopping the three hosts…\n");
  for (const p of procs.values()) p.kill("SIGTERM");
  await Promise.all([...procs.values()].map((p) => p.exited));
  return 0;
}
