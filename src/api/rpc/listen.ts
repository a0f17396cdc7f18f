/**
 * The API's listening socket: HTTP/1.1 and HTTP/2 on one port, cleartext or TLS, each
 * request handed to an RpcHandler as an Exchange. This is the runtime-specific adapter
 * (node:net, node:tls, node:http, node:http2 as Bun implements them); see docs/api.md for
 * why not Bun.serve (no HTTP/2 trailers, which gRPC needs).
 *
 * Cleartext: the first bytes of a connection decide — the HTTP/2 preface ("PRI * HTTP/2.0")
 * means h2c with prior knowledge, anything else HTTP/1.1. TLS: ALPN decides ("h2" or
 * "http/1.1"); with a CA, clients must present a certificate it signed.
 *
 * ```ts
 * const server = await listen({ hostname: "127.0.0.1", port: 8001, handler });
 * await server.stop();
 * ```
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { Env, TimerHandle } from "../../env.ts";
import type { Exchange, HeaderReader } from "./exchange.ts";
import type { RpcHandler } from "./router.ts";

/** TLS material of the API (PEM contents). */
export interface ApiTlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
  /** When given, clients must present a certificate signed by this CA (mutual TLS). */
  ca?: string | Buffer;
}

export interface ListenOptions {
  hostname: string;
  port: number;
  handler: RpcHandler;
  tls?: ApiTlsMaterial;
  env: Pick<Env, "setTimer">;
  log?: (event: Record<string, unknown>) => void;
}

export interface ApiServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Open connections now. */
  connectionCount(): number;
  /** Stops accepting, lets calls in progress finish for up to graceMs (default 2000), then closes everything. */
  stop(graceMs?: number): Promise<void>;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export async function listen(opts: ListenOptions): Promise<ApiServer> {
  const { handler } = opts;
  const limits = handler.limits;
  const log = opts.log ?? (() => {});
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();

  // HTTP/1.1 connections: one request at a time; between requests (and before the first) the
  // headers must arrive within headersTimeoutMs. req.socket is the socket handed over.
  const h1 = http.createServer({ maxHeaderSize: limits.maxHeaderBytes }, (req, res) => {
    const socket = req.socket; // Bun sets req.socket to null once the response closed
    const state = socketState(socket);
    state.active += 1;
    state.headersTimer?.cancel();
    res.once("close", () => {
      state.active -= 1;
      if (state.active === 0 && !socket.destroyed) armHeadersTimer(socket);
    });
    void handler.handle(http1Exchange(req, res, opts.tls !== undefined));
  });
  h1.on("clientError", (error: Error & { code?: string }, socket: net.Socket) => {
    const tooLarge = error.code === "HPE_HEADER_OVERFLOW";
    if (tooLarge) handler.refused("headers");
    if (socket.writable) {
      socket.end(
        tooLarge
          ? "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
          : "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
      );
    }
    socket.destroy();
  });

  // HTTP/2 sessions: the stream limit and header list size are SETTINGS the peer must keep;
  // a session with no open stream for idleTimeoutMs is closed. (session.socket is a proxy in
  // Bun, not the socket handed over, so sessions keep their own state.)
  const h2 = http2.createServer({
    maxSessionMemory: 64,
    settings: {
      maxConcurrentStreams: limits.maxStreamsPerConnection,
      maxHeaderListSize: limits.maxHeaderBytes,
    },
  });
  const sessionStates = new WeakMap<http2.ServerHttp2Session, { active: number; idleTimer?: TimerHandle }>();
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    const state: { active: number; idleTimer?: TimerHandle } = { active: 0 };
    sessionStates.set(session, state);
    session.on("close", () => {
      sessions.delete(session);
      state.idleTimer?.cancel();
    });
    session.on("error", () => {});
    armIdle(session, state);
  });
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on("error", () => {});
    const session = stream.session as http2.ServerHttp2Session;
    const state = sessionStates.get(session) ?? { active: 0 };
    state.active += 1;
    state.idleTimer?.cancel();
    stream.once("close", () => {
      state.active -= 1;
      if (state.active === 0 && !session.destroyed) armIdle(session, state);
    });
    void handler.handle(http2Exchange(stream, headers, opts.tls !== undefined));
  });
  h2.on("sessionError", () => {});

  function armIdle(session: http2.ServerHttp2Session, state: { active: number; idleTimer?: TimerHandle }) {
    state.idleTimer?.cancel();
    state.idleTimer = opts.env.setTimer(limits.idleTimeoutMs, () => {
      if (state.active === 0 && !session.destroyed) session.close();
    });
  }

  interface SocketState {
    active: number;
    headersTimer?: TimerHandle;
    /** Handed to HTTP/2: its session manages it from then on. */
    http2: boolean;
  }
  const socketStates = new WeakMap<net.Socket, SocketState>();
  function socketState(socket: net.Socket): SocketState {
    let s = socketStates.get(socket);
    if (!s) {
      s = { active: 0, http2: false };
      socketStates.set(socket, s);
    }
    return s;
  }
  /** A connection must bring its (next) request's headers within headersTimeoutMs. */
  function armHeadersTimer(socket: net.Socket): void {
    const state = socketState(socket);
    state.headersTimer?.cancel();
    state.headersTimer = opts.env.setTimer(limits.headersTimeoutMs, () => {
      if (state.active === 0 && !state.http2) socket.destroy();
    });
  }

  function track(socket: net.Socket): void {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => {
      sockets.delete(socket);
      socketStates.get(socket)?.headersTimer?.cancel();
    });
    armHeadersTimer(socket);
  }

  function handOver(socket: net.Socket, toHttp2: boolean): void {
    if (toHttp2) {
      const state = socketState(socket);
      state.http2 = true;
      state.headersTimer?.cancel();
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
    }
  }

  /** Cleartext: peek at the first bytes, then hand the socket to HTTP/2 or HTTP/1.1. */
  function onPlain(socket: net.Socket): void {
    track(socket);
    let seen = Buffer.alloc(0);
    const onData = () => {
      let chunk: Buffer | null;
      // biome-ignore lint/suspicious/noAssignInExpressions: the usual read loop
      while ((chunk = socket.read() as Buffer | null) !== null) seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const h2c = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (h2c && seen.length < PREFACE.length) return; // wait for the whole preface
      socket.off("readable", onData);
      socket.unshift(seen);
      handOver(socket, h2c);
    };
    socket.on("readable", onData);
  }

  const server = opts.tls
    ? tls.createServer(
        {
          cert: opts.tls.cert,
          key: opts.tls.key,
          ALPNProtocols: ["h2", "http/1.1"],
          handshakeTimeout: limits.headersTimeoutMs,
          ...(opts.tls.ca ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
        },
        (socket: tls.TLSSocket) => {
          track(socket);
          handOver(socket, socket.alpnProtocol === "h2");
        },
      )
    : net.createServer(onPlain);
  server.maxConnections = limits.maxConnections;
  if (opts.tls) {
    server.on("tlsClientError", (error: Error) => {
      handler.refused("tls_handshake");
      log({ level: "debug", event: "api.tls_refused", error: error.message });
    });
  }
  server.on("error", (error) => log({ level: "error", event: "api.listen_error", error: String(error) }));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connectionCount: () => sockets.size,
    async stop(graceMs = 2000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      for (const socket of sockets) {
        const state = socketStates.get(socket);
        if (!state?.http2 && (state?.active ?? 0) === 0) socket.destroy();
      }
      await new Promise<void>((resolve) => {
        const deadline = opts.env.setTimer(graceMs, () => resolve());
        const poll = () => {
          if (handler.inFlight === 0) {
            deadline.cancel();
            resolve();
          } else opts.env.setTimer(10, poll);
        };
        poll();
      });
      for (const socket of sockets) socket.destroy();
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}

function peerOf(socket: net.Socket | undefined): string {
  if (!socket?.remoteAddress) return "";
  const host = socket.remoteAddress.includes(":") ? `[${socket.remoteAddress}]` : socket.remoteAddress;
  return `${host}:${socket.remotePort}`;
}

function http1Exchange(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): Exchange {
  const abort = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const headers: HeaderReader = {
    get: (name) => {
      const v = req.headers[name];
      return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
    },
  };
  const hasBody =
    req.headers["transfer-encoding"] !== undefined ||
    (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
  let closeAfter = false;
  const socket = req.socket;
  return {
    method: req.method ?? "GET",
    path: q < 0 ? url : url.slice(0, q),
    search: q < 0 ? "" : url.slice(q),
    headers,
    httpVersion: "1.1",
    supportsTrailers: false,
    peer: peerOf(socket),
    secure,
    body: req as AsyncIterable<Uint8Array>,
    signal: abort.signal,
    respond(status, headers, o) {
      if (closeAfter) headers = { ...headers, connection: "close" };
      res.writeHead(status, o?.endStream ? { ...headers, "content-length": "0" } : headers);
    },
    async write(chunk) {
      if (res.destroyed) throw new Error("the client went away");
      if (!res.write(chunk)) {
        await new Promise<void>((resolve) => {
          res.once("drain", resolve);
          res.once("close", resolve);
        });
      }
    },
    end() {
      res.end();
    },
    endWith(chunk) {
      if (res.destroyed) throw new Error("the client went away");
      res.end(chunk);
    },
    closeUnread() {
      if (req.complete || !hasBody) return;
      closeAfter = true;
      const cut = () => socket.destroy();
      if (res.writableFinished) cut();
      else res.once("finish", cut);
    },
  };
}

function http2Exchange(
  stream: http2.ServerHttp2Stream,
  h: http2.IncomingHttpHeaders,
  secure: boolean,
): Exchange {
  const abort = new AbortController();
  let ended = false;
  stream.once("close", () => {
    if (!ended) abort.abort();
  });
  const path = String(h[":path"] ?? "/");
  const q = path.indexOf("?");
  const headers: HeaderReader = {
    get: (name) => {
      const v = h[name];
      return v === undefined ? null : Array.isArray(v) ? v.join(", ") : String(v);
    },
  };
  let pendingTrailers: Record<string, string> | undefined;
  return {
    method: String(h[":method"] ?? "GET"),
    path: q < 0 ? path : path.slice(0, q),
    search: q < 0 ? "" : path.slice(q),
    headers,
    httpVersion: "2",
    supportsTrailers: true,
    peer: peerOf(stream.session?.socket as net.Socket | undefined),
    secure,
    body: stream as AsyncIterable<Uint8Array>,
    signal: abort.signal,
    respond(status, headers, o) {
      if (stream.destroyed) throw new Error("the client went away");
      if (o?.trailers) {
        stream.once("wantTrailers", () => stream.sendTrailers(pendingTrailers ?? {}));
      }
      stream.respond(
        { ":status": status, ...headers },
        { endStream: o?.endStream ?? false, waitForTrailers: o?.trailers ?? false },
      );
      if (o?.endStream) ended = true;
    },
    async write(chunk) {
      if (stream.destroyed) throw new Error("the client went away");
      if (!stream.write(chunk)) {
        await new Promise<void>((resolve) => {
          stream.once("drain", resolve);
          stream.once("close", resolve);
        });
      }
    },
    end(trailers) {
      ended = true;
      pendingTrailers = trailers;
      if (!stream.destroyed && !stream.writableEnded && stream.headersSent) stream.end();
    },
    endWith(chunk) {
      if (stream.destroyed) throw new Error("the client went away");
      ended = true;
      stream.end(chunk);
    },
    closeUnread() {
      if (stream.readableEnded || stream.destroyed) return;
      const cut = () => stream.close(http2.constants.NGHTTP2_NO_ERROR);
      if (stream.writableFinished || !stream.writable) cut();
      else stream.once("finish", cut);
    },
  };
}
