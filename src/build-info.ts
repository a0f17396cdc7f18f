/** What this build is: the package version, the git commit build.ts stamped, the Bun version. */
import packageJson from "../package.json" with { type: "json" };

// build.ts defines LONGBOAT_COMMIT; when run from source it is not defined.
declare const LONGBOAT_COMMIT: string | undefined;

export interface BuildInfo {
  version: string;
  /** Short git commit, or "unknown" when not built from a git checkout. */
  commit: string;
  bun: string;
}

export function buildInfo(): BuildInfo {
  const commit = typeof LONGBOAT_COMMIT === "string" ? LONGBOAT_COMMIT : "unknown";
  return { version: packageJson.version, commit, bun: Bun.version };
}
