/**
 * The API server's limits: every one stated, defaulted, validated once, and enforced with a
 * clear answer (resource_exhausted, deadline_exceeded, 431) instead of memory growth.
 */
import type { Env, TimerHandle } from "../../env.ts";
import { ConnectError } from "../errors.ts";

export interface Limits {
  /** Largest request body (unary) or request message (streams), in bytes. */
  maxBodyBytes: number;
  /** Request body bytes held by all calls together; beyond it a call gets resource_exhausted. */
  maxBufferedBodyBytes: number;
  /** Calls in progress on the whole server; beyond it a call gets resource_exhausted at once. */
  maxConcurrentRequests: number;
  /** HTTP/2 streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS); HTTP/1.1 has one. */
  maxStreamsPerConnection: number;
  /** Open connections; the server stops accepting beyond it. */
  maxConnections: number;
  /** Request headers, in bytes (HTTP/1.1: 431 and close; HTTP/2: the stream is refused). */
  maxHeaderBytes: number;
  /** A request's whole body must arrive within this many ms of its headers (streams from clients excepted). */
  bodyTimeoutMs: number;
  /** A connection must deliver a request's headers (or, idle, its next request) within this many ms. */
  headersTimeoutMs: number;
  /** An HTTP/2 connection with no open stream for this many ms is closed (GOAWAY). */
  idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxBodyBytes: 16 * 1024 * 1024,
  maxBufferedBodyBytes: 256 * 1024 * 1024,
  maxConcurrentRequests: 1024,
  maxStreamsPerConnection: 128,
  maxConnections: 4096,
  maxHeaderBytes: 16 * 1024,
  bodyTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
};

/** The defaults overridden by given; throws naming every limit that is not a positive integer. */
export function resolveLimits(given: Partial<Limits> = {}): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS };
  const problems: string[] = [];
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(DEFAULT_LIMITS, key)) {
      problems.push(`unknown limit ${key}`);
      continue;
    }
    if (!Number.isSafeInteger(value) || value < 1) {
      problems.push(`${key} must be a positive integer, got ${value}`);
      continue;
    }
    limits[key as keyof Limits] = value;
  }
  if (limits.maxBufferedBodyBytes < limits.maxBodyBytes) {
    problems.push(
      `maxBufferedBodyBytes (${limits.maxBufferedBodyBytes}) must be at least maxBodyBytes (${limits.maxBodyBytes})`,
    );
  }
  if (problems.length > 0) throw new Error(`API limits: ${problems.join("; ")}`);
  return limits;
}

/** A shared budget of bytes (request bodies held in memory). */
export class ByteBudget {
  private usedBytes = 0;
  constructor(
    readonly capacityBytes: number,
    private readonly onRefuse: () => void = () => {},
  ) {}

  get used(): number {
    return this.usedBytes;
  }

  /** Takes n bytes, or throws resource_exhausted when they would exceed the capacity. */
  take(n: number): void {
    if (this.usedBytes + n > this.capacityBytes) {
      this.onRefuse();
      throw new ConnectError(
        "resource_exhausted",
        `the server holds ${this.usedBytes} bytes of request bodies, its limit is ${this.capacityBytes}; retry later`,
      );
    }
    this.usedBytes += n;
  }

  give(n: number): void {
    this.usedBytes -= n;
    if (this.usedBytes < 0) throw new Error(`ByteBudget: gave back more than was taken (${this.usedBytes})`);
  }
}

/**
 * A request body read under the limits: each chunk is charged to the shared budget (given
 * back by release() or close()), and when a deadline is set the body must end before it or
 * reading throws deadline_exceeded and `timedOut` is set.
 */
export class GuardedBody implements AsyncIterable<Uint8Array> {
  private heldBytes = 0;
  private closed = false;
  timedOut = false;
  /** Whether the source was read to its end. */
  complete = false;

  constructor(
    private readonly source: AsyncIterable<Uint8Array>,
    private readonly budget: ByteBudget,
    private readonly opts: { env: Pick<Env, "setTimer">; deadlineMs?: number },
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    const iterator = this.source[Symbol.asyncIterator]();
    let timer: TimerHandle | undefined;
    let expired!: Promise<never>;
    if (this.opts.deadlineMs !== undefined) {
      const deadlineMs = this.opts.deadlineMs;
      expired = new Promise<never>((_, reject) => {
        timer = this.opts.env.setTimer(deadlineMs, () => {
          this.timedOut = true;
          reject(
            new ConnectError(
              "deadline_exceeded",
              `the request body did not arrive within ${deadlineMs} ms; a client that sends this slowly is cut off`,
            ),
          );
        });
      });
      expired.catch(() => {});
    }
    try {
      for (;;) {
        const next = timer ? await Promise.race([iterator.next(), expired]) : await iterator.next();
        if (next.done) {
          this.complete = true;
          return;
        }
        if (this.closed) return;
        this.budget.take(next.value.byteLength);
        this.heldBytes += next.value.byteLength;
        yield next.value;
      }
    } finally {
      timer?.cancel();
      if (!this.complete) iterator.return?.().catch(() => {});
    }
  }

  /** Gives back n bytes of what this body holds (a stream decoded a message). */
  release(n: number): void {
    const give = Math.min(n, this.heldBytes);
    this.heldBytes -= give;
    this.budget.give(give);
  }

  /** Gives back everything; the call is over. */
  close(): void {
    this.closed = true;
    this.release(this.heldBytes);
  }
}
