import { describe, expect, test } from "bun:test";
import { parsePeers, parseShardSpec } from "../../src/cli/specs.ts";

describe("parseShardSpec", () => {
  test("parses id, app, replica and members", () => {
    expect(parseShardSpec("id=1,app=kv,replica=2,members=1@h1:7001;2@h2:7001;3@h3:7001")).toEqual({
      shardId: 1,
      app: "kv",
      replicaId: 2,
      members: [
        { replicaId: 1, address: "h1:7001" },
        { replicaId: 2, address: "h2:7001" },
        { replicaId: 3, address: "h3:7001" },
      ],
    });
  });

  test("join=true makes members optional", () => {
    expect(parseShardSpec("id=4,app=kv,replica=4,join=true")).toEqual({
      shardId: 4,
      app: "kv",
      replicaId: 4,
      members: [],
      join: true,
    });
  });

  test("log settings: snapshot-entries, compaction-overhead, auto-compact", () => {
    expect(
      parseShardSpec(
        "id=4,app=kv,replica=4,join=true,snapshot-entries=1000,compaction-overhead=50,auto-compact=false",
      ),
    ).toEqual({
      shardId: 4,
      app: "kv",
      replicaId: 4,
      members: [],
      join: true,
      snapshotEntries: 1000,
      compactionOverhead: 50,
      autoCompact: false,
    });
  });

  const bad: [string, string][] = [
    ["id=1,app=kv,replica=1", '"members=" is missing'],
    [
      "id=1,app=kv,replica=1,members=1@h1:7001,size=3",
      'unknown key "size" (allowed: id, app, replica, members, join, snapshot-entries, compaction-overhead, auto-compact)',
    ],
    ["id=1,id=2,app=kv,replica=1,members=1@h1:7001", 'key "id" appears twice'],
    ["id=one,app=kv,replica=1,members=1@h1:7001", 'id must be a positive integer, got "one"'],
    ["id=1,app=kv,replica=0,members=1@h1:7001", 'replica must be a positive integer, got "0"'],
    ["id=1,app=kv,replica=1,members=h1:7001", 'member "h1:7001" is not replicaId@host:port'],
    ["id=1,app=kv,replica=1,join=yes", 'join must be true or false, got "yes"'],
    ["id=1,kv", '"kv" is not key=value'],
    [
      "id=1,app=kv,replica=1,join=true,snapshot-entries=-5",
      'snapshot-entries must be an integer ≥ 0, got "-5"',
    ],
    [
      "id=1,app=kv,replica=1,join=true,compaction-overhead=lots",
      'compaction-overhead must be an integer ≥ 0, got "lots"',
    ],
    ["id=1,app=kv,replica=1,join=true,auto-compact=no", 'auto-compact must be true or false, got "no"'],
  ];
  for (const [text, message] of bad) {
    test(`refuses "${text}"`, () => {
      expect(() => parseShardSpec(text)).toThrow(message);
    });
  }
});

describe("parsePeers", () => {
  test("parses id=host:port pairs", () => {
    expect(parsePeers("1=d1:9101,2=d2:9101")).toEqual([
      { id: 1, address: "d1:9101" },
      { id: 2, address: "d2:9101" },
    ]);
  });

  test("refuses a peer without an id", () => {
    expect(() => parsePeers("1=d1:9101,d2:9101")).toThrow('peer "d2:9101" is not id=host:port');
  });
});
