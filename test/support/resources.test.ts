import { expect, test } from "bun:test";
import { currentTest, enterTest, liveResources, parkIfEnded, stopAll, track } from "./resources.ts";

// These tests drive the registry by hand (as the preload does around every test), so each
// one leaves it as the preload expects: nothing of its own registered.

test("stopAll('test') stops what the test registered, newest first, and keeps the file's", async () => {
  const stopped: string[] = [];
  await stopAll("test"); // as after a test: what is registered now belongs to the file
  const fileLevel = track("file-level", () => stopped.push("file-level"));
  enterTest();
  track("first", () => stopped.push("first"));
  track("second", async () => {
    await Bun.sleep(1);
    stopped.push("second");
  });
  expect(await stopAll("test")).toEqual([]);
  expect(stopped).toEqual(["second", "first"]);
  expect(liveResources()).toContain("file-level");
  fileLevel.release();
  enterTest();
});

test("a released resource is not stopped again", async () => {
  let stops = 0;
  track("released", () => stops++).release();
  expect(await stopAll("test")).toEqual([]);
  expect(stops).toBe(0);
  enterTest();
});

test("a resource still busy when its test ends is reported with what it was doing", async () => {
  let stopped = false;
  track("SimCluster(seed 3)", () => (stopped = true), { busy: () => "in until(x) at simulated 120 ms" });
  const problems = await stopAll("test");
  expect(problems).toEqual([
    "the test ended while SimCluster(seed 3) was in until(x) at simulated 120 ms; it was stopped",
  ]);
  expect(stopped).toBe(true);
  enterTest();
});

test("a stop that throws is reported and the others still stop", async () => {
  let other = false;
  track("other", () => (other = true));
  track("broken", () => {
    throw new Error("disk gone");
  });
  expect(await stopAll("test")).toEqual(["stopping broken failed: disk gone"]);
  expect(other).toBe(true);
  expect(liveResources()).not.toContain("other");
  enterTest();
});

test("a loop started by a test stops at its next step once that test has ended", async () => {
  const token = currentTest();
  let steps = 0;
  const loop = (async () => {
    for (;;) {
      steps++;
      await Bun.sleep(1);
      await parkIfEnded(token);
    }
  })();
  await Bun.sleep(20);
  expect(steps).toBeGreaterThan(1);
  await stopAll("test"); // the test "ends"
  await Bun.sleep(10);
  const after = steps;
  await Bun.sleep(30);
  expect(steps).toBe(after);
  expect(currentTest()).toBe(token + 1);
  void loop;
  enterTest();
});
