/**
 * Little-endian binary writer/reader for snapshot payloads. Integers are JS numbers up to
 * 2^53 − 1 written as u64; the reader throws BytesFormatError naming the field that does
 * not fit, so a corrupt payload never turns into silently wrong state.
 */

export class BytesFormatError extends Error {
  override readonly name = "BytesFormatError";
}

/** First buffer of a ByteWriter; it doubles up to chunkBytes (a small save allocates little). */
const FIRST_BUFFER_BYTES = 512;

/** Collects chunks; flushes to sink whenever chunkBytes are buffered (bounds memory on save). */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private used = 0;

  constructor(
    private readonly sink: (chunk: Uint8Array) => void,
    private readonly chunkBytes = 64 * 1024,
  ) {
    this.buf = new Uint8Array(Math.min(chunkBytes, FIRST_BUFFER_BYTES));
    this.view = new DataView(this.buf.buffer);
  }

  u32(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`u32 out of range: ${n}`);
    this.room(4);
    this.view.setUint32(this.used, n, true);
    this.used += 4;
  }

  u64(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64 out of range: ${n}`);
    this.room(8);
    this.view.setUint32(this.used, n % 2 ** 32, true);
    this.view.setUint32(this.used + 4, Math.floor(n / 2 ** 32), true);
    this.used += 8;
  }

  f64(n: number): void {
    this.room(8);
    this.view.setFloat64(this.used, n, true);
    this.used += 8;
  }

  /** u32 length then the bytes. */
  bytes(b: Uint8Array): void {
    this.u32(b.byteLength);
    this.raw(b);
  }

  raw(b: Uint8Array): void {
    if (b.byteLength >= this.chunkBytes) {
      this.flush();
      this.sink(b.slice());
      return;
    }
    this.room(b.byteLength);
    this.buf.set(b, this.used);
    this.used += b.byteLength;
  }

  flush(): void {
    if (this.used === 0) return;
    this.sink(this.buf.slice(0, this.used));
    this.used = 0;
  }

  private room(n: number): void {
    if (this.used + n > this.chunkBytes) this.flush();
    if (this.used + n <= this.buf.byteLength) return;
    let size = this.buf.byteLength;
    while (size < this.used + n) size *= 2;
    const grown = new Uint8Array(Math.min(size, this.chunkBytes));
    grown.set(this.buf.subarray(0, this.used));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
}

/** Concatenates chunks (collecting a sink's output in memory). */
export function concatChunks(chunks: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

export class ByteReader {
  private off = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly where: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  remaining(): number {
    return this.buf.byteLength - this.off;
  }

  u32(field: string): number {
    this.need(4, field);
    const n = this.view.getUint32(this.off, true);
    this.off += 4;
    return n;
  }

  u64(field: string): number {
    this.need(8, field);
    const lo = this.view.getUint32(this.off, true);
    const hi = this.view.getUint32(this.off + 4, true);
    this.off += 8;
    const n = hi * 2 ** 32 + lo;
    if (!Number.isSafeInteger(n)) throw new BytesFormatError(`${this.where}: ${field} ${n} exceeds 2^53 - 1`);
    return n;
  }

  f64(field: string): number {
    this.need(8, field);
    const n = this.view.getFloat64(this.off, true);
    this.off += 8;
    return n;
  }

  /** u32 length then that many bytes (a view into the buffer). */
  bytes(field: string): Uint8Array {
    const n = this.u32(`${field} length`);
    return this.raw(n, field);
  }

  raw(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }

  rest(): Uint8Array {
    const out = this.buf.subarray(this.off);
    this.off = this.buf.byteLength;
    return out;
  }

  end(): void {
    if (this.off !== this.buf.byteLength) {
      throw new BytesFormatError(`${this.where}: ${this.buf.byteLength - this.off} trailing bytes`);
    }
  }

  private need(n: number, field: string): void {
    if (this.off + n > this.buf.byteLength) {
      throw new BytesFormatError(
        `${this.where}: truncated at ${field} (needs ${n} bytes at offset ${this.off}, ${this.buf.byteLength - this.off} left)`,
      );
    }
  }
}
