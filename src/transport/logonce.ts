/** A transport event for the NodeHost's log. */
export type TransportLog = (event: Record<string, unknown>) => void;

/** Most distinct (kind, source) keys remembered; beyond it new keys are counted but not logged. */
export const LOG_ONCE_KEYS_MAX = 4096;

/** Logs an event the first time its key is seen (once per source, not per message). */
export class LogOnce {
  private readonly seen = new Set<string>();
  constructor(private readonly log: TransportLog | undefined) {}

  emit(key: string, event: Record<string, unknown>): void {
    if (this.seen.has(key) || this.seen.size >= LOG_ONCE_KEYS_MAX) return;
    this.seen.add(key);
    this.log?.(event);
  }

  /** Forgets key so its next occurrence is logged again (e.g. after a peer recovers). */
  reset(key: string): void {
    this.seen.delete(key);
  }
}
