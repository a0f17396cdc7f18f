import type { ClientHttp2Session, ClientHttp2Stream } from "node:http2";
import { SendQueue } from "./core.ts";

/**
 * One remote NodeHost as seen by the HTTP/2 sender: idle → connecting → up; a failure moves
 * it to backoff (sends fail fast until retryAtMs), and after downAfterFailures consecutive
 * failures it is marked down until a connection succeeds.
 */
export class Peer {
  state: "idle" | "connecting" | "up" | "backoff" = "idle";
  session: ClientHttp2Session | null = null;
  stream: ClientHttp2Stream | null = null;
  /** False after a write hit HTTP/2 backpressure, until the stream drains. */
  writable = true;
  failures = 0;
  down = false;
  retryAtMs = 0;
  readonly queue: SendQueue;

  constructor(
    readonly address: string,
    maxMessages: number,
    maxBytes: number,
  ) {
    this.queue = new SendQueue(maxMessages, maxBytes);
  }
}
