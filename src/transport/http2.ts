import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import type { TimerHandle } from "../env.ts";
import { LOCAL_MESSAGE_TYPES, type Message } from "../raft/types.ts";
import { BATCH_OVERHEAD_BYTES_MAX, encodeBatch } from "./codec.ts";
import { TransportCore } from "./core.ts";
import { FrameError, TransportConfigError } from "./errors.ts";
import { encodeFrame, FrameDecoder } from "./frame.ts";
import { Peer } from "./peer.ts";
import { backoffMs, type ResolvedOptions, resolveOptions, type TransportOptions } from "./options.ts";
import { clearIncoming, SnapshotAssembler, SnapshotChunker, type TransportFaults } from "./snapshot.ts";
import { emptyStats, type Transport, type TransportHandler, type TransportStats } from "./types.ts";

/** Request path of the long-lived stream carrying MessageBatch frames. */
export const MESSAGES_PATH = "/longboat.raft.v1/messages";
/** Request path of one snapshot stream (SnapshotChunk frames). */
export const SNAPSHOT_PATH = "/longboat.raft.v1/snapshot";

/** PEM files for mutual TLS: every peer must present a certificate signed by caFile. */
export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface Http2TransportOptions extends TransportOptions {
  /** Mutual TLS when given; cleartext HTTP/2 otherwise. */
  tls?: TlsFiles | undefined;
  /** Gives up a connection attempt after this long. Default 5000 ms. */
  connectTimeoutMs?: number;
}

interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Per-stream HTTP/2 flow-control window: large, so one stream can fill a loopback link. */
const STREAM_WINDOW_BYTES = 16 * 1024 * 1024;
// Not raising the session window with setLocalWindowSize: on Bun 1.4 a server session that does
// so stops granting connection-level window after the first 16 MiB (a stream stalls for good).
const H2_SETTINGS: http2.Settings = {
  initialWindowSize: STREAM_WINDOW_BYTES,
  maxFrameSize: 1024 * 1024,
  maxConcurrentStreams: 1024,
};

/**
 * Raft messages and snapshots over HTTP/2 (node:http2): one connection per remote NodeHost,
 * one long-lived request stream of length-prefixed, checksummed MessageBatch frames, and a
 * separate stream per snapshot. Mutual TLS when `tls` is given.
 * @example
 * const t = new Http2Transport({ address: "127.0.0.1:7001", deploymentId: 1, registry,
 *   env: realEnv(), snapshotDir: "/data/incoming" });
 * await t.start(handler);
 * t.send(message); t.flush();
 */
export class Http2Transport implements Transport {
  /** Test-only fault injection. */
  readonly faults: TransportFaults = { corruptSnapshotChunkIndex: -1 };
  private readonly o: ResolvedOptions;
  private readonly core: TransportCore;
  private readonly tls: TlsMaterial | null;
  private readonly connectTimeoutMs: number;
  private readonly peers = new Map<string, Peer>();
  private readonly dirty = new Set<Peer>();
  private readonly serverSessions = new Set<http2.ServerHttp2Session>();
  private readonly assemblers = new Set<SnapshotAssembler>();
  private server: http2.Http2Server | http2.Http2SecureServer | null = null;
  private boundAddress: string;
  private flushScheduled = false;
  private stopped = false;
  private snapshotsIn = 0;
  private snapshotsOut = 0;
  private snapshotSeq = 0;

  constructor(options: Http2TransportOptions) {
    this.o = resolveOptions(options);
    this.core = new TransportCore(this.o, emptyStats());
    this.boundAddress = this.o.address;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.tls = options.tls ? loadTls(options.tls) : null;
  }

  get address(): string {
    return this.boundAddress;
  }

  stats(): TransportStats {
    return { ...this.core.stats };
  }

  /** True when address has failed downAfterFailures times in a row and not connected since. */
  isDown(address: string): boolean {
    return this.peers.get(address)?.down ?? false;
  }

  async start(handler: TransportHandler): Promise<void> {
    if (this.server !== null || this.stopped) throw new Error(`transport ${this.address} already started`);
    this.core.handler = handler;
    clearIncoming(this.o.fs, this.o.snapshotDir);
    const server = this.tls
      ? http2.createSecureServer({
          ...this.tls,
          requestCert: true,
          rejectUnauthorized: true,
          settings: H2_SETTINGS,
        })
      : http2.createServer({ settings: H2_SETTINGS });
    this.server = server;
    server.on("session", (s: http2.ServerHttp2Session) => this.onServerSession(s));
    server.on("stream", (stream, headers) => this.onServerStream(stream as http2.ServerHttp2Stream, headers));
    server.on("sessionError", () => {});
    server.on("tlsClientError", (e: Error) => {
      this.core.logOnce.emit(`tls-refused:${String(e.message)}`, {
        event: "tls-client-refused",
        error: e.message,
      });
    });
    const [host, port] = splitAddress(this.o.address);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (e: Error) => this.o.log?.({ event: "server-error", error: e.message }));
    const bound = server.address();
    if (bound !== null && typeof bound === "object") this.boundAddress = `${host}:${bound.port}`;
  }

  send(m: Message): boolean {
    if (LOCAL_MESSAGE_TYPES.has(m.type)) throw new Error(`send: message type ${m.type} is local, never sent`);
    if (this.stopped) return false;
    const peer = this.peerFor(m.shardId, m.to);
    if (peer === null) return false;
    if (!this.ready(peer)) {
      this.core.dropUnreachable([m]);
      return false;
    }
    const sizeBytes = this.core.sizeOf(m);
    if (sizeBytes > this.o.maxMessageBytes) {
      this.core.stats.messagesDroppedTooLarge++;
      this.core.logOnce.emit(`too-large:${peer.address}`, {
        event: "message-too-large",
        target: peer.address,
        sizeBytes,
      });
      this.core.reportUnreachable(m.shardId, m.to);
      return false;
    }
    if (!peer.queue.push(m, sizeBytes)) {
      this.core.stats.messagesDroppedQueueFull++;
      this.core.logOnce.emit(`queue-full:${peer.address}`, {
        event: "send-queue-full",
        target: peer.address,
      });
      this.core.reportUnreachable(m.shardId, m.to);
      return false;
    }
    this.dirty.add(peer);
    this.scheduleFlush();
    return true;
  }

  flush(): void {
    for (const peer of this.dirty) {
      this.flushPeer(peer);
      if (peer.queue.length === 0) this.dirty.delete(peer);
    }
  }

  sendSnapshot(m: Message): boolean {
    if (this.stopped || this.snapshotsOut >= this.o.maxSnapshotStreamsOut) return false;
    const peer = this.peerFor(m.shardId, m.to);
    if (peer === null || !this.ready(peer) || peer.session === null) return false;
    let chunker: SnapshotChunker;
    try {
      chunker = new SnapshotChunker(this.o.fs, m, this.header(), this.o.snapshotChunkBytes, this.faults);
    } catch (e) {
      this.o.log?.({ event: "snapshot-send-refused", target: peer.address, error: String(e) });
      return false;
    }
    this.snapshotsOut++;
    void this.pumpSnapshot(peer.session, chunker).then((ok) => {
      this.snapshotsOut--;
      if (ok) this.core.stats.snapshotsSent++;
      else this.core.stats.snapshotsSendFailed++;
      const h = this.core.handler;
      if (h !== null) this.core.guard("onSnapshotStatus", () => h.onSnapshotStatus(m.shardId, m.to, !ok));
    });
    return true;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const peer of this.peers.values()) this.closePeer(peer);
    this.peers.clear();
    this.dirty.clear();
    for (const a of this.assemblers) a.abort();
    this.assemblers.clear();
    const server = this.server;
    if (server === null) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.serverSessions) s.destroy();
    await closed;
  }

  private header() {
    return { deploymentId: this.o.deploymentId, sourceAddress: this.boundAddress };
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private peerFor(shardId: number, replicaId: number): Peer | null {
    const address = this.o.registry.resolve(shardId, replicaId);
    if (address === undefined) return null;
    let peer = this.peers.get(address);
    if (peer === undefined) {
      if (this.peers.size >= this.o.maxPeers) {
        this.core.logOnce.emit("max-peers", { event: "max-peers-reached", maxPeers: this.o.maxPeers });
        return null;
      }
      peer = new Peer(address, this.o.maxSendQueueMessages, this.o.maxSendQueueBytes);
      this.peers.set(address, peer);
    }
    return peer;
  }

  /** Connects peer when idle or its backoff expired; false while it must fail fast. */
  private ready(peer: Peer): boolean {
    if (peer.state === "backoff") {
      if (this.o.env.nowMs() < peer.retryAtMs) return false;
      this.connect(peer);
    } else if (peer.state === "idle") {
      this.connect(peer);
    }
    return true;
  }

  private flushPeer(peer: Peer): void {
    const budgetBytes = this.o.maxFrameBytes - BATCH_OVERHEAD_BYTES_MAX;
    while (peer.state === "up" && peer.writable && peer.queue.length > 0) {
      const batch = peer.queue.take(budgetBytes);
      const payload = encodeBatch(this.header(), batch);
      if (payload.byteLength > this.o.maxFrameBytes) {
        throw new Error(
          `encoded batch of ${payload.byteLength} bytes exceeds maxFrameBytes despite size bounds`,
        );
      }
      const s = this.core.stats;
      s.batchesSent++;
      s.messagesSent += batch.length;
      s.bytesSent += payload.byteLength;
      peer.writable = peer.stream!.write(encodeFrame(payload));
    }
  }

  private connect(peer: Peer): void {
    const scheme = this.tls ? "https" : "http";
    const session = http2.connect(`${scheme}://${peer.address}`, {
      settings: H2_SETTINGS,
      ...(this.tls ?? {}),
    });
    peer.session = session;
    peer.state = "connecting";
    peer.writable = true;
    const timer: TimerHandle = this.o.env.setTimer(this.connectTimeoutMs, () => {
      if (peer.session === session && peer.state === "connecting")
        this.fail(peer, session, "connect timeout");
    });
    session.on("error", (e: Error) => this.fail(peer, session, e.message));
    session.on("close", () => this.fail(peer, session, "connection closed"));
    session.on("goaway", () => this.fail(peer, session, "goaway"));
    session.on("connect", () => {
      if (peer.session === session) this.openMessageStream(peer, session, timer);
    });
  }

  /**
   * Opens the long-lived message stream. The connection counts as established only when the
   * receiver answers it with 200 (after TLS verified both sides); messages wait queued until then.
   */
  private openMessageStream(peer: Peer, session: http2.ClientHttp2Session, timer: TimerHandle): void {
    const stream = session.request({ ":method": "POST", ":path": MESSAGES_PATH }, { endStream: false });
    stream.on("error", () => {});
    stream.on("close", () => this.fail(peer, session, "message stream closed"));
    stream.on("drain", () => {
      if (peer.stream !== stream) return;
      peer.writable = true;
      this.flushPeer(peer);
    });
    stream.on("response", (headers) => {
      timer.cancel();
      if (peer.session !== session) return;
      if (headers[":status"] !== 200)
        return this.fail(peer, session, `message stream refused: ${headers[":status"]}`);
      peer.stream = stream;
      peer.state = "up";
      if (peer.down) this.o.log?.({ event: "peer-up", target: peer.address });
      peer.failures = 0;
      peer.down = false;
      this.core.logOnce.reset(`down:${peer.address}`);
      this.flushPeer(peer);
    });
  }

  /** Tears a connection down: queued messages are dropped and reported, backoff begins. */
  private fail(peer: Peer, session: http2.ClientHttp2Session, reason: string): void {
    if (peer.session !== session || this.stopped) return;
    const wasUp = peer.state === "up";
    this.closePeer(peer);
    if (!wasUp) this.core.stats.connectFailures++;
    this.core.dropUnreachable(peer.queue.drain());
    this.dirty.delete(peer);
    peer.failures++;
    peer.state = "backoff";
    peer.retryAtMs = this.o.env.nowMs() + backoffMs(this.o, peer.failures);
    if (peer.failures >= this.o.downAfterFailures && !peer.down) {
      peer.down = true;
      this.core.logOnce.emit(`down:${peer.address}`, { event: "peer-down", target: peer.address, reason });
    }
  }

  private closePeer(peer: Peer): void {
    const session = peer.session;
    peer.session = null;
    peer.stream = null;
    peer.state = "idle";
    if (session !== null && !session.destroyed) session.destroy();
  }

  private async pumpSnapshot(session: http2.ClientHttp2Session, chunker: SnapshotChunker): Promise<boolean> {
    let status = 0;
    const stream = session.request({ ":method": "POST", ":path": SNAPSHOT_PATH }, { endStream: false });
    const closed = new Promise<void>((resolve) => stream.on("close", resolve));
    stream.on("error", () => {});
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    try {
      for (;;) {
        if (stream.destroyed || status !== 0) break;
        const payload = chunker.next();
        if (payload === null) {
          stream.end();
          break;
        }
        if (!stream.write(encodeFrame(payload))) {
          await new Promise<void>((resolve) => {
            stream.once("drain", resolve);
            void closed.then(resolve);
          });
        }
      }
    } catch (e) {
      this.o.log?.({ event: "snapshot-send-failed", error: String(e) });
      stream.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      chunker.close();
    }
    // Refused early (the receiver answered before the last chunk): stop our half too.
    if (status !== 0 && !stream.destroyed && !stream.writableEnded)
      stream.close(http2.constants.NGHTTP2_CANCEL);
    await closed;
    return status === 200;
  }

  private onServerSession(s: http2.ServerHttp2Session): void {
    this.serverSessions.add(s);
    s.on("error", () => {});
    s.on("close", () => this.serverSessions.delete(s));
  }

  private onServerStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => {});
    if (this.stopped) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const path = headers[":path"];
    if (path === MESSAGES_PATH) this.serveMessages(stream);
    else if (path === SNAPSHOT_PATH) this.serveSnapshot(stream);
    else stream.respond({ ":status": 404 }, { endStream: true });
  }

  private remoteOf(stream: http2.ServerHttp2Stream): string {
    return stream.session?.socket?.remoteAddress ?? "unknown";
  }

  private serveMessages(stream: http2.ServerHttp2Stream): void {
    stream.respond({ ":status": 200 });
    const decoder = new FrameDecoder(this.o.maxFrameBytes);
    const remote = this.remoteOf(stream);
    let dead = false;
    stream.on("data", (chunk: Uint8Array) => {
      if (dead) return;
      try {
        for (const payload of decoder.push(chunk)) this.core.receiveBatch(payload, remote);
      } catch (e) {
        dead = true;
        this.refuseFrame(e, remote);
        stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      }
    });
    // The sender finished its half (it is shutting down): finish ours so the stream closes.
    stream.on("end", () => {
      if (!dead && !stream.destroyed) stream.end();
    });
  }

  private refuseFrame(e: unknown, remote: string): void {
    if (!(e instanceof FrameError)) throw e;
    this.core.stats.framesRefused++;
    this.core.logOnce.emit(`frame:${e.kind}:${remote}`, { event: "frame-refused", remote, error: e.message });
  }

  private serveSnapshot(stream: http2.ServerHttp2Stream): void {
    const remote = this.remoteOf(stream);
    if (this.snapshotsIn >= this.o.maxSnapshotStreamsIn) {
      this.core.stats.snapshotsRefused++;
      this.core.logOnce.emit(`snapshot-limit:${remote}`, {
        event: "snapshot-refused",
        remote,
        reason: "limit",
      });
      stream.respond({ ":status": 503 }, { endStream: true });
      return;
    }
    this.snapshotsIn++;
    const asm = new SnapshotAssembler(
      {
        fs: this.o.fs,
        dir: this.o.snapshotDir,
        deploymentId: this.o.deploymentId,
        maxFileBytes: this.o.maxSnapshotFileBytes,
      },
      this.snapshotName(),
    );
    this.assemblers.add(asm);
    const decoder = new FrameDecoder(this.o.maxFrameBytes);
    let result: Message | null = null;
    let dead = false;
    const refuse = (e: unknown) => {
      dead = true;
      asm.abort();
      this.core.stats.snapshotsRefused++;
      if (e instanceof FrameError) this.refuseFrame(e, remote);
      this.core.logOnce.emit(`snapshot-refused:${remote}`, {
        event: "snapshot-refused",
        remote,
        error: String(e),
      });
      if (!stream.headersSent && !stream.destroyed) stream.respond({ ":status": 400 }, { endStream: true });
      else stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    };
    stream.on("data", (chunk: Uint8Array) => {
      this.core.stats.snapshotBytesReceived += chunk.byteLength;
      if (dead) return;
      try {
        for (const payload of decoder.push(chunk)) {
          if (result !== null) throw new Error("data after the last snapshot chunk");
          result = asm.push(payload);
        }
      } catch (e) {
        refuse(e);
      }
    });
    stream.on("end", () => {
      if (dead) return;
      if (result === null) return refuse(new Error("snapshot stream ended before its last chunk"));
      dead = true;
      const message: Message = result;
      stream.respond({ ":status": 200 }, { endStream: true });
      this.core.stats.snapshotsReceived++;
      const h = this.core.handler;
      if (h !== null) this.core.guard("onSnapshotReceived", () => h.onSnapshotReceived(message));
    });
    stream.on("close", () => {
      this.snapshotsIn--;
      this.assemblers.delete(asm);
      if (result === null) asm.abort();
    });
  }

  private snapshotName(): string {
    const tag = Math.floor(this.o.env.random() * 2 ** 32).toString(36);
    return `snapshot-${process.pid}-${++this.snapshotSeq}-${tag}`;
  }
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

function loadTls(files: TlsFiles): TlsMaterial {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new TransportConfigError(`cannot read TLS ${what} file ${path}: ${(e as Error).message}`);
    }
  };
  return {
    ca: read("CA", files.caFile),
    cert: read("certificate", files.certFile),
    key: read("key", files.keyFile),
  };
}
