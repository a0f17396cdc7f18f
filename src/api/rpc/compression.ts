/**
 * Request decompression: identity and gzip (what gRPC and Connect clients send when asked to
 * compress). Output is capped, so a small gzip bomb cannot grow into a large allocation.
 */
import { gunzipSync } from "node:zlib";
import { ConnectError } from "../errors.ts";

/** Encodings a request may use; advertised in grpc-accept-encoding / connect-accept-encoding. */
export const ACCEPTED_ENCODINGS = "gzip";

/** Whether encoding (a content-encoding style header value) names no compression. */
export function isIdentity(encoding: string | null): boolean {
  return encoding === null || encoding === "" || encoding === "identity";
}

/** Checks an encoding before any byte is read: unimplemented when it is not identity or gzip. */
export function checkEncoding(encoding: string | null, header: string): void {
  if (isIdentity(encoding) || encoding === "gzip") return;
  throw new ConnectError("unimplemented", `${header} "${encoding}" is not supported; send identity or gzip`);
}

/** data decoded from encoding, at most maxBytes long (resource_exhausted beyond). */
export function decompress(encoding: string | null, data: Uint8Array, maxBytes: number): Uint8Array {
  if (isIdentity(encoding)) return data;
  checkEncoding(encoding, "encoding");
  try {
    return new Uint8Array(gunzipSync(data, { maxOutputLength: maxBytes }));
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError) {
      throw new ConnectError(
        "resource_exhausted",
        `a gzip message decompresses to more than the limit of ${maxBytes} bytes`,
      );
    }
    throw new ConnectError("invalid_argument", `a gzip message is corrupt: ${(error as Error).message}`);
  }
}
