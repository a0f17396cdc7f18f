/**
 * Where a CLI call's start-up CPU goes, for `npm run bench -- cli` (docs/performance.md): with
 * LONGBOAT_TRACE_STARTUP=1 in its environment, the process prints one JSON line on stderr before
 * it exits, the CPU time (user + system, ms) it had used at each phase it reached:
 * `{"startupCpuMs":{"main":38.2,"table":47.9,"flags":48.6,"config":55.1,"command":71.0,"done":84.3}}`
 * (main: the runtime and main.ts loaded; table: the subcommand table; flags: read; config:
 * resolved; command: the command's modules loaded; done: the command ran).
 */
const marks: [string, number][] | null = process.env.LONGBOAT_TRACE_STARTUP === "1" ? [] : null;

/** Records the CPU used so far under `phase` (nothing unless tracing). */
export function mark(phase: string): void {
  if (marks === null) return;
  const { user, system } = process.cpuUsage();
  marks.push([phase, Math.round((user + system) / 100) / 10]);
}

/** Prints the phases recorded (nothing unless tracing). */
export function printTrace(): void {
  if (marks !== null) console.error(JSON.stringify({ startupCpuMs: Object.fromEntries(marks) }));
}
