// A minimal HTTP/2 client over a raw TCP socket (Bun.connect) for the load generator: unary POST
// requests, many streams in flight per connection, nothing else. node:http2 in Bun spent about
// 150 µs of client CPU per request (streams, events, timers), twice what etcd's Go benchmark
// tool spends, so on a busy 2-core machine the client and not the server set the figure.
//
// What it does: connection preface and SETTINGS (large receive windows, so the server never
// waits for us), a HEADERS frame (HPACK literals without indexing, built once per path) and a
// DATA frame per request, written in one batch per event-loop turn; SETTINGS and PING are
// acknowledged, received DATA is credited back, the server's send window is respected.
// What it does not: decode response headers. HPACK needs no decoder state for that because
// the answer is judged without one: `:status: 200` is HPACK static-table entry 8, which every
// encoder sends as the single byte 0x88 at the start of the block, and a gRPC failure comes
// as a trailers-only response (no DATA frame), so "status byte 0x88 and, for gRPC, a DATA
// frame" means success. Any other first byte is reported as a failure with the raw bytes.

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_PING = 0x6;
const FRAME_GOAWAY = 0x7;
const FRAME_WINDOW_UPDATE = 0x8;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const HPACK_STATUS_200 = 0x88;
const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** Our receive window per stream and for the connection (the maximum HTTP/2 allows). */
const WINDOW_MAX = 2 ** 31 - 1;
/** Credit received DATA back to the server once this much was consumed on the connection. */
const WINDOW_REFILL_BYTES = 16 * 1024 * 1024;

export interface RawAnswer {
  ok: boolean;
  /** Why it failed (empty when ok). */
  error: string;
  body: Uint8Array;
}

interface Pending {
  resolve: (a: RawAnswer) => void;
  startedMs: number;
  statusOk: boolean | null;
  firstByte: number;
  chunks: Uint8Array[];
  grpc: boolean;
}

function frameHeader(
  out: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  stream: number,
) {
  out[at] = (length >>> 16) & 0xff;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  new DataView(out.buffer, out.byteOffset + at + 5, 4).setUint32(0, stream & 0x7fffffff);
}

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.byteLength);
  frameHeader(out, 0, payload.byteLength, type, flags, stream);
  out.set(payload, 9);
  return out;
}

/** HPACK string literal, no Huffman (7-bit length prefix). */
function hpackString(bytes: number[], s: string): void {
  const b = new TextEncoder().encode(s);
  hpackInt(bytes, b.byteLength, 7, 0);
  bytes.push(...b);
}

function hpackInt(bytes: number[], value: number, prefixBits: number, first: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    bytes.push(first | value);
    return;
  }
  bytes.push(first | max);
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
}

/**
 * The header block of a POST: `:method POST` and `:scheme http` fully indexed (static 3 and 6),
 * `:path`, `:authority`, `content-type` as literals without indexing of static names 4, 1, 31,
 * plus `te: trailers` for gRPC. No dynamic table is touched, so the block can be reused.
 */
export function postHeaderBlock(authority: string, path: string, contentType: string): Uint8Array {
  const bytes: number[] = [0x83, 0x86];
  hpackInt(bytes, 4, 4, 0);
  hpackString(bytes, path);
  hpackInt(bytes, 1, 4, 0);
  hpackString(bytes, authority);
  hpackInt(bytes, 31, 4, 0);
  hpackString(bytes, contentType);
  if (contentType === "application/grpc") {
    bytes.push(0);
    hpackString(bytes, "te");
    hpackString(bytes, "trailers");
  }
  return new Uint8Array(bytes);
}

/** One HTTP/2 connection carrying many concurrent unary POSTs. */
export class RawH2Connection {
  private socket: Awaited<ReturnType<typeof Bun.connect>> | null = null;
  private nextStream = 1;
  private readonly pending = new Map<number, Pending>();
  private inbuf: Uint8Array = new Uint8Array(0);
  private outQueue: Uint8Array[] = [];
  private flushScheduled = false;
  private unsent: Uint8Array | null = null;
  /** The server's window for our DATA on the connection, and per stream (initial). */
  private sendWindow = 65535;
  private streamWindowInitial = 65535;
  private waitingForWindow: { stream: number; headers: Uint8Array; body: Uint8Array }[] = [];
  private consumed = 0;
  /** Why the connection is unusable (null while it works). */
  dead: string | null = null;

  static async open(host: string, port: number): Promise<RawH2Connection> {
    const c = new RawH2Connection();
    await c.connect(host, port);
    return c;
  }

  private async connect(host: string, port: number): Promise<void> {
    this.socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_s, data) => this.onData(data),
        drain: () => this.flush(),
        close: () => this.fail("connection closed"),
        error: (_s, e) => this.fail(`socket error: ${e.message}`),
      },
    });
    this.socket.setNoDelay(true);
    // SETTINGS: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE max; then the connection window to the max.
    const settings = new Uint8Array(12);
    const dv = new DataView(settings.buffer);
    dv.setUint16(0, 0x2);
    dv.setUint32(2, 0);
    dv.setUint16(6, 0x4);
    dv.setUint32(8, WINDOW_MAX);
    const inc = new Uint8Array(4);
    new DataView(inc.buffer).setUint32(0, WINDOW_MAX - 65535);
    this.enqueue(PREFACE);
    this.enqueue(frame(FRAME_SETTINGS, 0, 0, settings));
    this.enqueue(frame(FRAME_WINDOW_UPDATE, 0, 0, inc));
    this.flush();
  }

  /** Sends a POST with a prebuilt header block; resolves with the answer (never rejects). */
  post(headerBlock: Uint8Array, body: Uint8Array, grpc: boolean): Promise<RawAnswer> {
    if (this.dead !== null) return Promise.resolve({ ok: false, error: this.dead, body: new Uint8Array(0) });
    const stream = this.nextStream;
    this.nextStream += 2;
    return new Promise((resolve) => {
      this.pending.set(stream, {
        resolve,
        startedMs: performance.now(),
        statusOk: null,
        firstByte: -1,
        chunks: [],
        grpc,
      });
      if (this.waitingForWindow.length > 0 || body.byteLength > this.sendWindow) {
        this.waitingForWindow.push({ stream, headers: headerBlock, body });
        return;
      }
      this.write(stream, headerBlock, body);
    });
  }

  private write(stream: number, headers: Uint8Array, body: Uint8Array): void {
    if (body.byteLength > this.streamWindowInitial)
      throw new Error(`request body of ${body.byteLength} bytes exceeds the stream window`);
    this.sendWindow -= body.byteLength;
    const out = new Uint8Array(18 + headers.byteLength + body.byteLength);
    frameHeader(out, 0, headers.byteLength, FRAME_HEADERS, FLAG_END_HEADERS, stream);
    out.set(headers, 9);
    frameHeader(out, 9 + headers.byteLength, body.byteLength, FRAME_DATA, FLAG_END_STREAM, stream);
    out.set(body, 18 + headers.byteLength);
    this.enqueue(out);
  }

  private enqueue(bytes: Uint8Array): void {
    this.outQueue.push(bytes);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Writes what is queued in one socket write; what the kernel refused waits for drain. */
  private flush(): void {
    if (this.socket === null) return;
    let data: Uint8Array;
    if (this.unsent !== null || this.outQueue.length > 0) {
      const parts = this.unsent !== null ? [this.unsent, ...this.outQueue] : this.outQueue;
      const size = parts.reduce((a, p) => a + p.byteLength, 0);
      data = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        data.set(p, at);
        at += p.byteLength;
      }
      this.outQueue = [];
    } else return;
    const written = this.socket.write(data);
    this.unsent = written < data.byteLength ? data.subarray(Math.max(0, written)) : null;
  }

  private onData(data: Uint8Array): void {
    let buf: Uint8Array;
    if (this.inbuf.byteLength === 0) buf = data;
    else {
      buf = new Uint8Array(this.inbuf.byteLength + data.byteLength);
      buf.set(this.inbuf, 0);
      buf.set(data, this.inbuf.byteLength);
    }
    let at = 0;
    while (buf.byteLength - at >= 9) {
      const length = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
      if (buf.byteLength - at < 9 + length) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const stream = new DataView(buf.buffer, buf.byteOffset + at + 5, 4).getUint32(0) & 0x7fffffff;
      this.onFrame(type, flags, stream, buf.subarray(at + 9, at + 9 + length));
      at += 9 + length;
    }
    this.inbuf = at === buf.byteLength ? new Uint8Array(0) : buf.slice(at);
  }

  private onFrame(type: number, flags: number, stream: number, payload: Uint8Array): void {
    switch (type) {
      case FRAME_DATA: {
        this.consumed += payload.byteLength;
        if (this.consumed >= WINDOW_REFILL_BYTES) this.refill();
        const p = this.pending.get(stream);
        if (p === undefined) return;
        const pad = flags & FLAG_PADDED ? payload[0]! : 0;
        const data = flags & FLAG_PADDED ? payload.subarray(1, payload.byteLength - pad) : payload;
        if (data.byteLength > 0) p.chunks.push(data.slice());
        if (flags & FLAG_END_STREAM) this.finish(stream, p);
        return;
      }
      case FRAME_HEADERS:
      case FRAME_CONTINUATION: {
        const p = this.pending.get(stream);
        if (p === undefined) return;
        if (type === FRAME_HEADERS && p.statusOk === null) {
          let skip = flags & FLAG_PADDED ? 1 : 0;
          if (flags & FLAG_PRIORITY) skip += 5;
          p.firstByte = payload[skip] ?? -1;
          p.statusOk = p.firstByte === HPACK_STATUS_200;
        }
        if (flags & FLAG_END_STREAM) this.finish(stream, p);
        return;
      }
      case FRAME_RST_STREAM: {
        const p = this.pending.get(stream);
        if (p === undefined) return;
        this.pending.delete(stream);
        const code = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
        p.resolve({ ok: false, error: `stream reset by the server (code ${code})`, body: new Uint8Array(0) });
        return;
      }
      case FRAME_SETTINGS: {
        if (flags & FLAG_ACK) return;
        const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        for (let i = 0; i + 6 <= payload.byteLength; i += 6) {
          if (dv.getUint16(i) === 0x4) this.streamWindowInitial = dv.getUint32(i + 2);
        }
        this.enqueue(frame(FRAME_SETTINGS, FLAG_ACK, 0, new Uint8Array(0)));
        return;
      }
      case FRAME_PING:
        if (!(flags & FLAG_ACK)) this.enqueue(frame(FRAME_PING, FLAG_ACK, 0, payload.slice()));
        return;
      case FRAME_WINDOW_UPDATE: {
        if (stream !== 0) return; // stream windows: one small body each, never near the limit
        this.sendWindow += new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0) & 0x7fffffff;
        while (
          this.waitingForWindow.length > 0 &&
          this.waitingForWindow[0]!.body.byteLength <= this.sendWindow
        ) {
          const w = this.waitingForWindow.shift()!;
          this.write(w.stream, w.headers, w.body);
        }
        return;
      }
      case FRAME_GOAWAY:
        this.fail("the server sent GOAWAY");
        return;
    }
  }

  /** Answers every request older than timeoutMs as failed (one sweep instead of a timer each). */
  expire(timeoutMs: number): void {
    const now = performance.now();
    for (const [stream, p] of this.pending) {
      if (now - p.startedMs < timeoutMs) continue;
      this.pending.delete(stream);
      p.resolve({ ok: false, error: `no answer within ${timeoutMs} ms`, body: new Uint8Array(0) });
    }
  }

  private refill(): void {
    const inc = new Uint8Array(4);
    new DataView(inc.buffer).setUint32(0, this.consumed);
    this.consumed = 0;
    this.enqueue(frame(FRAME_WINDOW_UPDATE, 0, 0, inc));
  }

  private finish(stream: number, p: Pending): void {
    this.pending.delete(stream);
    const body = p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks);
    if (!p.statusOk) {
      const text = new TextDecoder().decode(body).slice(0, 200);
      p.resolve({
        ok: false,
        error: `HTTP status not 200 (header byte 0x${p.firstByte.toString(16)}): ${text}`,
        body,
      });
    } else if (p.grpc && body.byteLength < 5) {
      p.resolve({ ok: false, error: "gRPC error (trailers-only response)", body });
    } else p.resolve({ ok: true, error: "", body });
  }

  private fail(why: string): void {
    if (this.dead !== null) return;
    this.dead = why;
    for (const [, p] of this.pending) p.resolve({ ok: false, error: why, body: new Uint8Array(0) });
    this.pending.clear();
    for (const w of this.waitingForWindow) this.pending.delete(w.stream);
    this.waitingForWindow = [];
  }

  close(): void {
    this.socket?.end();
    this.socket = null;
  }
}
