/**
 * A process started by `longboat dev` dies with it, even when dev itself is killed with
 * `kill -9`: dev gives each child a pipe as its standard input and never writes to it. The
 * kernel closes the pipe when dev exits, however it exits, so the child reads end-of-file and
 * stops as on SIGTERM (with a hard exit if that stop hangs).
 *
 * Only a child started with LONGBOAT_EXIT_WITH_PARENT=1 watches its input this way; dev sets it.
 */

/** The environment variable dev sets on its children. */
export const EXIT_WITH_PARENT_ENV = "LONGBOAT_EXIT_WITH_PARENT";
/** How long the stop started by the parent's exit may take before the child exits anyway. */
export const ORPHAN_STOP_MS = 10_000;

/** Installs the watch when the environment asks for it. */
export function exitWithParent(env: Record<string, string | undefined>): void {
  if (env[EXIT_WITH_PARENT_ENV] !== "1") return;
  // Not passed on: a hook command this process runs is not watched this way.
  delete env[EXIT_WITH_PARENT_ENV];
  void (async () => {
    try {
      for await (const _ of Bun.stdin.stream()) {
        // dev never writes: anything read is ignored, only the end matters
      }
    } catch {
      // a read error means the pipe is gone as well
    }
    process.stderr.write(
      `${JSON.stringify({ level: "warn", event: "parent-exited", detail: "the longboat dev that started this process has exited; stopping" })}\n`,
    );
    setTimeout(() => process.exit(1), ORPHAN_STOP_MS).unref();
    process.kill(process.pid, "SIGTERM");
  })();
}
