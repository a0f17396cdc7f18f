/**
 * The client side of WatchEvents (src/api/watch.ts): one Connect server-streaming call over
 * fetch, yielding each WatchEventsResponse as a plain object (proto3 JSON, camelCase).
 *
 * ```ts
 * for await (const e of watchEventsCall("127.0.0.1:8001", { shardId: 1 }, { signal })) console.log(e);
 * ```
 */
import { ApiError } from "./client.ts";
import { EnvelopeReader, encodeEnvelope, FLAG_CONNECT_END_STREAM } from "./rpc/envelope.ts";
import { KEEPALIVE_MS } from "./watch.ts";

/** Largest event message accepted (a membership of many replicas stays far below it). */
const MESSAGE_BYTES_MAX = 4 * 1024 * 1024;

export interface WatchCallOptions {
  token?: string;
  signal?: AbortSignal;
  /** Give up on a stream silent for this long (the server sends a keepalive every KEEPALIVE_MS). */
  idleMs?: number;
}

/** Thrown when the stream went silent past idleMs (a stopped or unreachable server). */
export class WatchIdleError extends Error {
  override name = "WatchIdleError";
}

export async function* watchEventsCall(
  address: string,
  req: { shardId?: number; kinds?: string[] },
  opts: WatchCallOptions = {},
): AsyncGenerator<Record<string, unknown>> {
  const idleMs = opts.idleMs ?? 3 * KEEPALIVE_MS;
  const abort = new AbortController();
  const onAbort = () => abort.abort();
  opts.signal?.addEventListener("abort", onAbort);
  let idle: ReturnType<typeof setTimeout> | undefined;
  let idled = false;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      idled = true;
      abort.abort();
    }, idleMs);
  };
  try {
    arm();
    const headers: Record<string, string> = {
      "content-type": "application/connect+json",
      "connect-protocol-version": "1",
    };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const body = encodeEnvelope(
      0,
      new TextEncoder().encode(JSON.stringify({ shardId: req.shardId ?? 0, kinds: req.kinds ?? [] })),
    );
    let res: Response;
    try {
      res = await fetch(`http://${address}/longboat.nodehost.v1.NodeHostService/WatchEvents`, {
        method: "POST",
        headers,
        body,
        signal: abort.signal,
      });
    } catch (error) {
      if (idled) throw new WatchIdleError(`no answer from ${address} within ${idleMs} ms`);
      throw error;
    }
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => "");
      let message = text;
      let code = "unknown";
      try {
        const parsed = JSON.parse(text) as { code?: string; message?: string };
        code = parsed.code ?? code;
        message = parsed.message ?? text;
      } catch {
        // not a Connect error body
      }
      throw new ApiError(code, message || `HTTP ${res.status}`, address);
    }
    const frames = new EnvelopeReader(res.body, {
      maxMessageBytes: MESSAGE_BYTES_MAX,
      what: `WatchEvents from ${address}`,
    });
    try {
      for await (const f of frames) {
        arm();
        const json = JSON.parse(new TextDecoder().decode(f.data)) as Record<string, unknown>;
        if ((f.flags & FLAG_CONNECT_END_STREAM) !== 0) {
          const error = json.error as { code?: string; message?: string } | undefined;
          if (error) throw new ApiError(error.code ?? "unknown", error.message ?? "", address);
          return;
        }
        yield json;
      }
    } catch (error) {
      if (idled) throw new WatchIdleError(`${address} sent nothing for ${idleMs} ms`);
      throw error;
    }
    throw new Error(`${address} ended the stream without an end-of-stream message`);
  } finally {
    clearTimeout(idle);
    opts.signal?.removeEventListener("abort", onAbort);
    abort.abort();
  }
}
