/**
 * A progress line for long transfers (backup, restore) on stderr: on a terminal one line
 * rewritten at most every REDRAW_MS; otherwise (a log, a pipe) a line at 0, 25, 50, 75 and 100 %.
 */
const REDRAW_MS = 200;
const STEP_PERCENT = 25;

export interface ProgressLine {
  update(doneBytes: number, totalBytes: number): void;
  /** Ends the line (on a terminal). */
  end(): void;
}

export function progressLine(
  stream: { write(text: string): unknown; isTTY?: boolean },
  label: string,
): ProgressLine {
  const tty = stream.isTTY === true;
  let lastMs = 0;
  let lastStep = -1;
  let drawn = false;
  const text = (done: number, total: number, percent: number) =>
    `${label}: ${mib(done)} of ${mib(total)} MiB (${percent}%)`;
  return {
    update(doneBytes, totalBytes) {
      const percent = totalBytes <= 0 ? 100 : Math.floor((doneBytes * 100) / totalBytes);
      if (tty) {
        const nowMs = Date.now();
        if (nowMs - lastMs < REDRAW_MS && doneBytes < totalBytes) return;
        lastMs = nowMs;
        stream.write(`\r${text(doneBytes, totalBytes, percent)}`);
        drawn = true;
        return;
      }
      const step = Math.floor(percent / STEP_PERCENT) * STEP_PERCENT;
      if (step === lastStep) return;
      lastStep = step;
      stream.write(`${text(doneBytes, totalBytes, percent)}\n`);
    },
    end() {
      if (tty && drawn) stream.write("\n");
    },
  };
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
