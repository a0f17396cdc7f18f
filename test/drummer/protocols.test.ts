/**
 * The Drummer API speaks every protocol the NodeHost API does (it is served by the same RPC
 * layer): Connect, gRPC and gRPC-Web, called by clients we did not write.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, ConnectError as ClientError, createClient } from "@connectrpc/connect";
import type { ApiServer } from "../../src/api/server.ts";
import { CLIENT_KINDS, service } from "../api/clients.ts";
import { serveOnTestPort } from "../api/serve.ts";
import { DrummerGroup } from "./group.ts";

const g = new DrummerGroup(8, 3, { deadTimeoutMs: 2000, reportIntervalMs: 500, passIntervalMs: 50 });
let server: ApiServer;

beforeAll(async () => {
  await g.startAll();
  await g.until(() => g.leader() !== undefined, 5000, "a drummer leader");
  server = await serveOnTestPort(g.leader()!.api());
});

afterAll(async () => {
  await server.stop();
  await g.close();
});

/** Waits for p while the group's virtual clock runs (the handlers wait on Raft). */
async function settle<T>(p: Promise<T>): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 2000 && !done; i++) await g.run(5);
  return p;
}

describe("Drummer API protocols", () => {
  for (const kind of CLIENT_KINDS) {
    test(`${kind.name}: GetDeployment answers, a bad CreateShard is invalid_argument naming the field`, async () => {
      const client = createClient(
        service("longboat.drummer.v1.DrummerService"),
        kind.transport(`http://127.0.0.1:${server.port}`),
      ) as unknown as {
        getDeployment(req: object): Promise<{ deploymentId: bigint }>;
        createShard(req: object): Promise<object>;
      };
      const dep = await settle(client.getDeployment({}));
      expect(Number(dep.deploymentId)).toBe(1);
      const bad = await settle(client.createShard({ shardId: 9n, app: "kv", replicaCount: 12 })).catch(
        (e) => e,
      );
      expect(bad).toBeInstanceOf(ClientError);
      expect((bad as ClientError).code).toBe(Code.InvalidArgument);
      expect((bad as ClientError).rawMessage).toMatch(/replicaCount must be an integer in 1..9, got 12/);
    });
  }
});
