import type { DevConfig } from "../config.ts";

/** Runs `longboat dev` with validated options; returns the exit code. Not wired to the engine yet. */
export async function run(_config: DevConfig): Promise<number> {
  process.stderr.write("longboat dev: not available yet in this build\n");
  return 1;
}
