import { describe, expect, test } from "bun:test";
import { RAFT_CONFIG_DEFAULTS, RaftConfigError, validateRaftConfig } from "../../src/raft/config.ts";

const base = { shardId: 1, replicaId: 1 };

function rejects(input: Record<string, unknown>, message: string): void {
  expect(() => validateRaftConfig({ ...base, ...input } as never)).toThrow(RaftConfigError);
  expect(() => validateRaftConfig({ ...base, ...input } as never)).toThrow(message);
}

describe("config validation", () => {
  test("defaults are filled in", () => {
    const c = validateRaftConfig(base);
    expect(c).toEqual({ ...RAFT_CONFIG_DEFAULTS, ...base });
    expect(c.checkQuorum).toBe(true);
    expect(c.preVote).toBe(true);
    expect(c.maxInflightMsgs).toBe(256);
    expect(c.maxInflightBytes).toBe(32 * 1024 * 1024);
  });

  test("undefined fields take their defaults", () => {
    expect(validateRaftConfig({ ...base, electionRtt: undefined }).electionRtt).toBe(10);
  });

  test("replicaId must be positive", () =>
    rejects({ replicaId: 0 }, "replicaId must be a positive integer, got 0"));
  test("shardId must not be negative", () =>
    rejects({ shardId: -1 }, "shardId must be a non-negative integer"));
  test("electionRtt must be positive", () =>
    rejects({ electionRtt: 0 }, "electionRtt must be a positive integer"));
  test("heartbeatRtt must be positive", () =>
    rejects({ heartbeatRtt: 0 }, "heartbeatRtt must be a positive integer"));
  test("electionRtt must be an integer", () =>
    rejects({ electionRtt: 10.5 }, "electionRtt must be a positive integer"));

  test("electionRtt must exceed twice heartbeatRtt", () =>
    rejects({ electionRtt: 2, heartbeatRtt: 1 }, "electionRtt must be > 2 × heartbeatRtt, got 2 and 1"));

  test("electionRtt just above twice heartbeatRtt is accepted", () => {
    expect(validateRaftConfig({ ...base, electionRtt: 5, heartbeatRtt: 2 }).electionRtt).toBe(5);
  });

  test("a replica cannot be both non-voting and witness", () =>
    rejects({ isNonVoting: true, isWitness: true }, "isNonVoting and isWitness cannot both be true"));

  test("maxInMemLogSizeBytes below one header plus one byte is refused", () =>
    rejects({ maxInMemLogSizeBytes: 128 }, "maxInMemLogSizeBytes must be 0 (unlimited) or ≥ 129, got 128"));

  test("maxInMemLogSizeBytes of exactly 129 is accepted", () => {
    expect(validateRaftConfig({ ...base, maxInMemLogSizeBytes: 129 }).maxInMemLogSizeBytes).toBe(129);
  });

  test("maxInflightMsgs must be positive", () =>
    rejects({ maxInflightMsgs: 0 }, "maxInflightMsgs must be a positive integer"));
  test("maxInflightBytes must be positive", () =>
    rejects({ maxInflightBytes: 0 }, "maxInflightBytes must be a positive integer"));
  test("maxEntryBytesPerMessage must be positive", () =>
    rejects({ maxEntryBytesPerMessage: -5 }, "maxEntryBytesPerMessage must be a positive integer"));
  test("maxApplyBytes must be positive", () =>
    rejects({ maxApplyBytes: 0 }, "maxApplyBytes must be a positive integer"));
  test("checkQuorum must be a boolean", () =>
    rejects({ checkQuorum: "yes" }, "checkQuorum must be a boolean"));
  test("quiesce must be a boolean", () => rejects({ quiesce: 1 }, "quiesce must be a boolean"));
});
