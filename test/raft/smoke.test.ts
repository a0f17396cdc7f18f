import { expect, test } from "bun:test";
import { Network } from "./network.ts";

test("three replicas elect a leader and commit a proposal", () => {
  const net = Network.bootstrap([1, 2, 3]);
  net.tickAll(30);
  expect(net.leaders().length).toBe(1);
  const l = net.leaders()[0]!;
  net.propose(l, "hello");
  for (const id of [1, 2, 3]) expect(net.node(id).appliedData()).toEqual(["hello"]);
});
