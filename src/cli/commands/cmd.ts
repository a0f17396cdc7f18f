import type { CmdConfig } from "../config.ts";

/** Runs `longboat cmd` with validated options; returns the exit code. Not wired to the engine yet. */
export async function run(_config: CmdConfig): Promise<number> {
  process.stderr.write("longboat cmd: not available yet in this build\n");
  return 1;
}
