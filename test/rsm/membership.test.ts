import { describe, expect, test } from "bun:test";
import { MembershipManager } from "../../src/rsm/membership.ts";
import { type ConfigChange, ConfigChangeType, emptyMembership } from "../../src/raft/types.ts";

const { AddNode, RemoveNode, AddNonVoting, AddWitness } = ConfigChangeType;

/** A manager with full members 1 (a1) and 2 (a2), non-voting 3 (a3), witness 4 (a4), at ccid 4. */
function setup(ordered = true): MembershipManager {
  const m = new MembershipManager(emptyMembership(), ordered);
  let index = 0;
  const boot = (type: ConfigChange["type"], id: number) =>
    m.apply({ configChangeId: 0, type, replicaId: id, address: `a${id}`, initialize: true }, ++index);
  boot(AddNode, 1);
  boot(AddNode, 2);
  boot(AddNonVoting, 3);
  boot(AddWitness, 4);
  return m;
}

function cc(
  type: ConfigChange["type"],
  replicaId: number,
  address: string,
  configChangeId = 4,
): ConfigChange {
  return { configChangeId, type, replicaId, address, initialize: false };
}

function expectRejected(m: MembershipManager, change: ConfigChange, reason: RegExp): void {
  const before = m.get();
  const d = m.apply(change, 10);
  expect(d.accepted).toBe(false);
  expect(d.reason).toMatch(reason);
  expect(m.get()).toEqual(before);
}

describe("membership: accepted changes", () => {
  test("bootstrap changes build the membership and set configChangeId to the last index", () => {
    const m = setup().get();
    expect(m.addresses).toEqual([
      { replicaId: 1, address: "a1" },
      { replicaId: 2, address: "a2" },
    ]);
    expect(m.nonVotings).toEqual([{ replicaId: 3, address: "a3" }]);
    expect(m.witnesses).toEqual([{ replicaId: 4, address: "a4" }]);
    expect(m.configChangeId).toBe(4);
  });

  test("adding a new full member quoting the current ccid is accepted", () => {
    const m = setup();
    expect(m.apply(cc(AddNode, 5, "a5"), 10).accepted).toBe(true);
    expect(m.get().addresses.map((x) => x.replicaId)).toEqual([1, 2, 5]);
    expect(m.get().configChangeId).toBe(10);
  });

  test("promoting a non-voting member with the same address moves it to the full members", () => {
    const m = setup();
    expect(m.apply(cc(AddNode, 3, "a3"), 10).accepted).toBe(true);
    expect(m.get().nonVotings).toEqual([]);
    expect(m.get().addresses.map((x) => x.replicaId)).toEqual([1, 2, 3]);
  });

  test("removing a member takes it out of every role and remembers it", () => {
    const m = setup();
    expect(m.apply(cc(RemoveNode, 4, ""), 10).accepted).toBe(true);
    expect(m.get().witnesses).toEqual([]);
    expect(m.get().removed).toEqual([4]);
  });

  test("with ordered config change off a stale ccid is accepted", () => {
    expect(setup(false).apply(cc(AddNode, 5, "a5", 1), 10).accepted).toBe(true);
  });
});

describe("membership: rejection rules", () => {
  test("a stale configChangeId is rejected", () => {
    expectRejected(setup(), cc(AddNode, 5, "a5", 3), /config change id 3 is stale, the membership is at 4/);
  });

  test("re-adding a removed replica is rejected", () => {
    const m = setup();
    m.apply(cc(RemoveNode, 2, ""), 10);
    const d = m.apply(cc(AddNode, 2, "a9", 10), 11);
    expect(d.accepted).toBe(false);
    expect(d.reason).toMatch(/was removed and can never return/);
  });

  test("re-adding a removed replica as non-voting is rejected too", () => {
    const m = setup();
    m.apply(cc(RemoveNode, 2, ""), 10);
    expect(m.apply(cc(AddNonVoting, 2, "a9", 10), 11).accepted).toBe(false);
  });

  test("adding a full member that is already one is rejected", () => {
    expectRejected(setup(), cc(AddNode, 1, "a1"), /already a full member/);
  });

  test("adding a non-voting member that is already one is rejected", () => {
    expectRejected(setup(), cc(AddNonVoting, 3, "a3"), /already a non-voting member/);
  });

  test("adding a witness that is already one is rejected", () => {
    expectRejected(setup(), cc(AddWitness, 4, "a4"), /already a witness/);
  });

  test("adding with an address another member uses is rejected", () => {
    expectRejected(setup(), cc(AddNode, 5, "a2"), /address a2 is already used by replica 2/);
  });

  test("turning a full member into a non-voting member is rejected", () => {
    expectRejected(setup(), cc(AddNonVoting, 1, "a1"), /a full member cannot become non-voting/);
  });

  test("turning a full member into a witness is rejected", () => {
    expectRejected(setup(), cc(AddWitness, 1, "a1"), /a full member cannot become a witness/);
  });

  test("turning a witness into a full member is rejected", () => {
    expectRejected(setup(), cc(AddNode, 4, "a4"), /a witness cannot become a full member/);
  });

  test("turning a witness into a non-voting member is rejected", () => {
    expectRejected(setup(), cc(AddNonVoting, 4, "a4"), /a witness cannot become non-voting/);
  });

  test("turning a non-voting member into a witness is rejected", () => {
    expectRejected(setup(), cc(AddWitness, 3, "a3"), /a non-voting member cannot become a witness/);
  });

  test("promoting a non-voting member with another address is rejected", () => {
    expectRejected(setup(), cc(AddNode, 3, "elsewhere"), /with another address/);
  });

  test("removing the only full member is rejected", () => {
    const m = setup();
    m.apply(cc(RemoveNode, 2, ""), 10);
    const d = m.apply(cc(RemoveNode, 1, "", 10), 11);
    expect(d.accepted).toBe(false);
    expect(d.reason).toMatch(/only full member/);
  });

  test("replica id 0 is rejected", () => {
    expectRejected(setup(), cc(AddNode, 0, "a0"), /replica id must be a positive integer/);
  });

  test("an empty address on an add is rejected", () => {
    expectRejected(setup(), cc(AddNode, 5, ""), /address is empty/);
  });

  test("an unknown change type is rejected", () => {
    expectRejected(setup(), cc(9 as ConfigChange["type"], 5, "a5"), /unknown config change type 9/);
  });

  test("a change at an index not above the last config change is a caller bug and throws", () => {
    expect(() => setup().apply(cc(AddNode, 5, "a5"), 4)).toThrow(/does not follow/);
  });
});
