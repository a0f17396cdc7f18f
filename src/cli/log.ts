/** Structured log lines on stderr: one JSON object per line with level, time and the event's fields. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * A logger writing lines at minLevel and above; `base` fields (the host's raft address as
 * `host`) go on every line after level and time, so lines of several hosts merged into one
 * stream still say whose they are.
 */
export function jsonLogger(
  minLevel: LogLevel,
  write: (line: string) => void = (l) => process.stderr.write(l),
  base: Record<string, unknown> = {},
): (event: Record<string, unknown>) => void {
  return (event) => {
    const level = (
      typeof event.level === "string" && event.level in RANK ? event.level : "debug"
    ) as LogLevel;
    if (RANK[level] < RANK[minLevel]) return;
    write(`${JSON.stringify({ level, time: new Date().toISOString(), ...base, ...event })}\n`);
  };
}
