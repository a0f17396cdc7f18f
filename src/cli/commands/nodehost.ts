import type { NodeHostConfig } from "../config.ts";

/** Runs `longboat nodehost` with validated options; returns the exit code. Not wired to the engine yet. */
export async function run(_config: NodeHostConfig): Promise<number> {
  process.stderr.write("longboat nodehost: not available yet in this build\n");
  return 1;
}
