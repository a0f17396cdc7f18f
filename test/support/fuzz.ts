/**
 * What the API fuzz tests (test/api/fuzz.test.ts for the NodeHost API, test/drummer/fuzz.test.ts
 * for the Drummer API) share: a small seeded generator, so a run replays from
 * LONGBOAT_API_FUZZ_SEED, and the requests that are junk whatever the service (framing that
 * does not fit, content types nobody serves, JSON that is not an object).
 */
import { encodeEnvelope } from "../../src/api/rpc/envelope.ts";

export interface FuzzRequest {
  path: string;
  contentType: string;
  body: Uint8Array | string;
}

/** A linear congruential generator seeded from LONGBOAT_API_FUZZ_SEED (default 1). */
export class FuzzRandom {
  private seed = Number(process.env.LONGBOAT_API_FUZZ_SEED ?? 1) >>> 0;

  /** An integer in [0, n). */
  int(n: number): number {
    this.seed = (this.seed * 1664525 + 1013904223) >>> 0;
    return this.seed % n;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** Up to max - 1 random bytes. */
  bytes(max: number): Uint8Array {
    return Uint8Array.from({ length: this.int(max) }, () => this.int(256));
  }

  /**
   * A request to path that no service can take (kind is the caller's draw; 3: a framed body
   * under a framed content type, 4: an unserved content type, other: broken or non-object
   * JSON, with extraJson added to the candidates).
   */
  junk(path: string, kind: number, extraJson: readonly string[] = []): FuzzRequest {
    if (kind === 3) {
      return {
        path,
        contentType: this.pick(["application/grpc-web+proto", "application/connect+proto"]),
        body: encodeEnvelope(this.int(4), this.bytes(100)),
      };
    }
    if (kind === 4) {
      return {
        path,
        contentType: this.pick(["text/plain", "application/xml", "", "application/grpc-web-text"]),
        body: this.bytes(80),
      };
    }
    return {
      path,
      contentType: "application/json",
      body: this.pick(["{", "[]", "null", "1", '{"shardId":', '"x"', "{}", ...extraJson]),
    };
  }
}
