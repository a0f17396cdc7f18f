/**
 * One HTTP request and its response, whatever carried them (HTTP/1.1, HTTP/2, or an
 * in-process fetch Request). The protocol adapters (Connect, gRPC, gRPC-Web) and the router
 * only see this interface; listen.ts makes exchanges from node:http and node:http2.
 */

/** Read access to request headers; names are lower-case. */
export interface HeaderReader {
  get(name: string): string | null;
}

export interface Exchange {
  readonly method: string;
  /** The path without the query string. */
  readonly path: string;
  /** The query string with its "?" ("" when none). */
  readonly search: string;
  readonly headers: HeaderReader;
  readonly httpVersion: "1.1" | "2";
  /** Whether end() can send HTTP trailers (HTTP/2 only). */
  readonly supportsTrailers: boolean;
  /** The client's address as host:port ("" when unknown). */
  readonly peer: string;
  /** Whether the connection is TLS. */
  readonly secure: boolean;
  /** The request body, chunk by chunk. Read it at most once. */
  readonly body: AsyncIterable<Uint8Array>;
  /** Aborted when the client goes away before the response ended. */
  readonly signal: AbortSignal;
  /**
   * Starts the response. trailers: end() will send trailers (only when supportsTrailers).
   * endStream: no body and no trailers follow (a gRPC "trailers-only" response).
   */
  respond(
    status: number,
    headers: Record<string, string>,
    opts?: { trailers?: boolean; endStream?: boolean },
  ): void;
  /** Writes a body chunk; resolves when the transport can take more. */
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the response, with trailers if respond() announced them. */
  end(trailers?: Record<string, string>): void;
  /**
   * Writes chunk as the whole rest of the body and ends the response (no trailers), in one
   * step: over HTTP/2 one DATA frame flagged END_STREAM that leaves with the turn's other
   * writes, where write() then end() sends a DATA frame, an empty closing one and flushes the
   * socket for this response alone (a unary answer's cost, issue #16).
   */
  endWith(chunk: Uint8Array): void;
  /**
   * The request body will not be read to its end (refused, too large, too slow): once the
   * response is out, the HTTP/2 stream is reset and the HTTP/1.1 connection closed, so the
   * client stops sending and its unread bytes are never parsed as a request.
   */
  closeUnread(): void;
}

/**
 * An exchange over a fetch Request that resolves to a Response: used by `api.fetch` (tests,
 * in-process calls). It has no trailers, so gRPC (which needs them) is refused on it.
 */
export function fetchExchange(request: Request): { exchange: Exchange; response: Promise<Response> } {
  const url = new URL(request.url);
  const abort = new AbortController();
  request.signal.addEventListener("abort", () => abort.abort(), { once: true });
  let resolve!: (r: Response) => void;
  const response = new Promise<Response>((r) => {
    resolve = r;
  });
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let started = false;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  const empty = async function* () {};
  const exchange: Exchange = {
    method: request.method,
    path: url.pathname,
    search: url.search,
    headers: request.headers,
    httpVersion: "1.1",
    supportsTrailers: false,
    peer: "",
    secure: url.protocol === "https:",
    body: request.body ? iterateStream(request.body) : empty(),
    signal: abort.signal,
    respond(status, headers, opts) {
      if (started) throw new Error("respond() called twice");
      started = true;
      const nullBody = opts?.endStream || status === 204 || status === 304;
      if (nullBody) controller.close();
      resolve(new Response(nullBody ? null : body, { status, headers }));
    },
    async write(chunk) {
      controller.enqueue(chunk);
    },
    end() {
      try {
        controller.close();
      } catch {
        // already closed (endStream)
      }
    },
    endWith(chunk) {
      controller.enqueue(chunk);
      this.end();
    },
    closeUnread() {
      request.body?.cancel().catch(() => {});
    },
  };
  return { exchange, response };
}

/** A web ReadableStream as an async iterable of chunks. */
export async function* iterateStream(stream: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = stream.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    // A consumer that stops early (an error, a limit) cancels the rest of the body.
    if (!finished) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
