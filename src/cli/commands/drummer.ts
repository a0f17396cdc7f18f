import type { DrummerConfig } from "../config.ts";

/** Runs `longboat drummer` with validated options; returns the exit code. Not wired to the engine yet. */
export async function run(_config: DrummerConfig): Promise<number> {
  process.stderr.write("longboat drummer: not available yet in this build\n");
  return 1;
}
