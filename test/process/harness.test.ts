// The process harness itself: a cluster whose host cannot listen starts again on fresh ports.
import { beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { PROCESS_TEST_WALL_MS } from "../support/limits.ts";
import { freePort } from "../support/ports.ts";
import { ensureBinary, ProcessCluster } from "./harness.ts";

setDefaultTimeout(PROCESS_TEST_WALL_MS);
beforeAll(() => ensureBinary());

/** A cluster whose first port choice gives host 2 a raft port something else listens on. */
class UnluckyCluster extends ProcessCluster {
  inits = 0;
  constructor(private readonly takenPort: number) {
    super(1);
  }
  override async init(): Promise<void> {
    await super.init();
    if (this.inits++ === 0) this.hosts[1]!.raft = `127.0.0.1:${this.takenPort}`;
  }
}

test("a host that cannot listen (its port taken after the allocator's check) makes the cluster start again on fresh ports", async () => {
  const squatter = Bun.listen({ hostname: "127.0.0.1", port: freePort(), socket: { data() {} } });
  try {
    const cluster = new UnluckyCluster(squatter.port);
    await cluster.init();
    await cluster.startAll();
    expect(cluster.inits).toBe(2);
    expect(cluster.hosts.map((h) => h.raft)).not.toContain(`127.0.0.1:${squatter.port}`);
    expect(await cluster.waitLeader(1)).toBeGreaterThan(0);
    await cluster.stop();
  } finally {
    squatter.stop(true);
  }
});
