import { buildInfo } from "../../build-info.ts";
import { printLine } from "../output.ts";

/** `longboat 0.1.0 (commit abc1234, bun 1.4.5)`: the commit is "unknown" when not built from a git checkout. */
export function versionLine(): string {
  const b = buildInfo();
  return `longboat ${b.version} (commit ${b.commit}, bun ${b.bun})`;
}

/** Prints the version line; returns the exit code. */
export async function run(): Promise<number> {
  printLine(versionLine());
  return 0;
}
