// Fault behaviours of the simulated network (beyond the shared conformance suite).
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualEnv } from "../../src/env.ts";
import { MapRegistry } from "../../src/transport/registry.ts";
import { SimNetwork } from "../../src/transport/sim.ts";
import { Recorder, replicate } from "./helpers.ts";

const A = "10.0.0.1:7001";
const B = "10.0.0.2:7001";

async function world(seed = 1) {
  const env = new ManualEnv(seed);
  const net = new SimNetwork(env, { snapshotDir: mkdtempSync(join(tmpdir(), "longboat-simnet-")) });
  const registry = new MapRegistry();
  registry.add(1, 1, A);
  registry.add(1, 2, B);
  const ra = new Recorder();
  const rb = new Recorder();
  const a = net.transport(A, 1, registry);
  const b = net.transport(B, 1, registry);
  await a.start(ra);
  await b.start(rb);
  const run = async (ms: number) => {
    await Promise.resolve();
    env.advance(ms);
  };
  const sendAB = (n: number) => {
    for (let i = 1; i <= n; i++) {
      a.send(replicate(2, i));
      a.flush();
    }
  };
  return { env, net, a, b, ra, rb, run, sendAB };
}

test("a one-way partition drops a → b but still carries b → a", async () => {
  const w = await world();
  w.net.partition(A, B, true);
  w.sendAB(3);
  w.b.send({ ...replicate(1, 9), from: 2 });
  w.b.flush();
  await w.run(10);
  expect(w.rb.messages.length).toBe(0);
  expect(w.ra.messages.length).toBe(1);
});

test("heal restores a symmetric partition", async () => {
  const w = await world();
  w.net.partition(A, B);
  w.sendAB(1);
  await w.run(10);
  expect(w.rb.messages.length).toBe(0);
  w.net.heal();
  w.sendAB(1);
  await w.run(10);
  expect(w.rb.messages.length).toBe(1);
});

test("an isolated NodeHost neither sends nor receives", async () => {
  const w = await world();
  w.net.isolate(B);
  w.sendAB(2);
  await w.run(10);
  expect(w.rb.messages.length).toBe(0);
});

test("unisolate ends one isolation and leaves the others", async () => {
  const w = await world();
  w.net.isolate(A);
  w.net.isolate(B);
  w.net.unisolate(A);
  w.sendAB(1);
  await w.run(10);
  expect(w.rb.messages.length).toBe(0);
  w.net.unisolate(B);
  w.sendAB(1);
  await w.run(10);
  expect(w.rb.messages.length).toBe(1);
});

test("loseInFlight drops what a host sent and nobody received yet, not what it sends afterwards", async () => {
  const w = await world();
  w.net.setDefaultLink({ delayMsMin: 5, delayMsMax: 5 });
  w.sendAB(3);
  w.net.clog(B);
  w.sendAB(2); // held by the clog
  w.net.loseInFlight(A);
  w.net.unclog(B);
  await w.run(20);
  expect(w.rb.messages.length).toBe(0);
  w.sendAB(1);
  await w.run(20);
  expect(w.rb.messages.length).toBe(1);
});

test("loseInFlight of one host leaves the frames of another in flight", async () => {
  const w = await world();
  w.net.setDefaultLink({ delayMsMin: 5, delayMsMax: 5 });
  w.b.send({ ...replicate(1, 9), from: 2 });
  w.b.flush();
  w.net.loseInFlight(A);
  await w.run(20);
  expect(w.ra.messages.length).toBe(1);
});

test("a clogged link holds frames and delivers them in order on unclog", async () => {
  const w = await world();
  w.net.clog(B);
  w.sendAB(5);
  await w.run(1000);
  expect(w.rb.messages.length).toBe(0);
  w.net.unclog(B);
  await w.run(10);
  expect(w.rb.messages.map((x) => x.message.hint)).toEqual([1, 2, 3, 4, 5]);
});

test("loss rate 1 drops every frame", async () => {
  const w = await world();
  w.net.setLink(A, B, { lossRate: 1 });
  w.sendAB(20);
  await w.run(10);
  expect(w.rb.messages.length).toBe(0);
});

test("duplicate rate 1 delivers every frame twice", async () => {
  const w = await world();
  w.net.setLink(A, B, { duplicateRate: 1 });
  w.sendAB(3);
  await w.run(10);
  expect(w.rb.messages.length).toBe(6);
});

test("a reordering link can deliver out of send order; a FIFO link never does", async () => {
  const w = await world(3);
  w.net.setLink(A, B, { delayMsMin: 1, delayMsMax: 50, reorder: true });
  w.sendAB(50);
  await w.run(100);
  const hints = w.rb.messages.map((x) => x.message.hint);
  expect(hints.length).toBe(50);
  expect(hints).not.toEqual([...hints].sort((x, y) => x - y));
  const f = await world(3);
  f.net.setLink(A, B, { delayMsMin: 1, delayMsMax: 50, reorder: false });
  f.sendAB(50);
  await f.run(100);
  expect(f.rb.messages.map((x) => x.message.hint)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
});

test("the same seed replays the same delivery order", async () => {
  const order = async () => {
    const w = await world(42);
    w.net.setLink(A, B, { delayMsMin: 0, delayMsMax: 30, reorder: true, lossRate: 0.2, duplicateRate: 0.1 });
    w.sendAB(100);
    await w.run(100);
    return w.rb.messages.map((x) => x.message.hint);
  };
  expect(await order()).toEqual(await order());
});

test("invalid link settings are refused with the rule broken", async () => {
  const w = await world();
  expect(() => w.net.setLink(A, B, { lossRate: 2 })).toThrow("lossRate 2 must be in [0, 1]");
  expect(() => w.net.setLink(A, B, { delayMsMin: 5, delayMsMax: 1 })).toThrow("delayMsMax");
});

test("a second running transport at the same address is refused", async () => {
  const w = await world();
  expect(() => w.net.transport(A, 1, new MapRegistry())).toThrow("already in use");
});
