/**
 * Complete writes to stdout and stderr for the short-lived commands (`cmd`, `version`).
 *
 * Not process.stdout/process.stderr: Bun builds those Node streams on first use (about 25 ms
 * of CPU, a quarter of a `cmd get`), and what a pipe cannot take at once leaves them later,
 * so a process that exits right away loses it (a 120,000-byte `cmd get` arrived as 65,536
 * bytes). console.log and console.error hand Bun's writer the whole text and return once it
 * is written, waiting while a reader is slow; a single string argument is printed as it is
 * (no format directives). Commands that do use the Node streams (the long-running ones, whose
 * start-up does not matter) are drained by main.ts before the process exits.
 */

/** Prints text and a newline on stdout; returns once all of it is written. */
export function printLine(text: string): void {
  console.log(text);
}

/** Prints text and a newline on stderr; returns once all of it is written. */
export function printErrorLine(text: string): void {
  console.error(text);
}

/** Writes text (a part of a line, or several) on stdout; resolves once all of it is written. */
export async function write(text: string): Promise<void> {
  await Bun.write(Bun.stdout, text);
}

/** `printLine` or `printErrorLine` for text that ends with its own newline (or not). */
export function printText(text: string, to: "stdout" | "stderr"): void {
  const line = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (to === "stdout") printLine(line);
  else printErrorLine(line);
}
