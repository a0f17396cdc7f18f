import packageJson from "../../../package.json" with { type: "json" };

import { printLine } from "../output.ts";

// build.ts defines LONGBOAT_COMMIT; when run from source it is not defined.
declare const LONGBOAT_COMMIT: string | undefined;

/** `longboat 0.1.0 (commit abc1234, bun 1.4.5)`: the commit is "unknown" when not built from a git checkout. */
export function versionLine(): string {
  const commit = typeof LONGBOAT_COMMIT === "string" ? LONGBOAT_COMMIT : "unknown";
  return `longboat ${packageJson.version} (commit ${commit}, bun ${Bun.version})`;
}

/** Prints the version line; returns the exit code. */
export async function run(): Promise<number> {
  printLine(versionLine());
  return 0;
}
