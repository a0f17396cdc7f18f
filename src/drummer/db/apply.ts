/**
 * Applying one DrummerDB update: the operator's updates here, the scheduler's step in
 * apply-step.ts. Every input is checked and a bad one is refused with a result that says why;
 * nothing here throws for any input, because every replica applies the same entry and a throw
 * would stop them all at it (reference §11.8).
 */
import type { DbUpdate } from "./codec.ts";
import { DbCode, type DbResult, invalid, ok, precondition } from "./result.ts";
import { applyStep } from "./apply-step.ts";
import { DB_LIMITS, type DbState } from "./state.ts";
import { checkAddress, checkApp, checkId, checkRegions } from "../validate.ts";
import type { ShardDefinition } from "../types.ts";

/** Applies u to s (in place) and says what happened. `null`: the entry did not decode. */
export function applyUpdate(s: DbState, u: DbUpdate | null): DbResult {
  if (u === null) return invalid("the entry is not a DrummerUpdate (undecodable, or no update set)");
  switch (u.kind) {
    case "setDeployment":
      return setDeployment(s, u.deploymentId);
    case "createShard":
      return createShard(s, u.shard);
    case "setRegions":
      return setRegions(s, u.shardId, u.regions);
    case "bootstrap":
      if (s.bootstrapped) return precondition("the deployment is already bootstrapped");
      s.bootstrapped = true;
      return ok(`bootstrapped with ${s.shards.size} shards`);
    case "registerDrummer": {
      const d = u.drummer;
      const bad =
        checkId("drummer.drummerId", d.drummerId) ?? checkAddress("drummer.apiAddress", d.apiAddress);
      if (bad) return invalid(bad);
      if (!s.drummers.has(d.drummerId) && s.drummers.size >= DB_LIMITS.drummers) {
        return precondition(`at most ${DB_LIMITS.drummers} drummers can register`);
      }
      s.drummers.set(d.drummerId, { drummerId: d.drummerId, apiAddress: d.apiAddress });
      return ok();
    }
    case "leaderStarted": {
      const bad = checkId("leaderTerm", u.leaderTerm) ?? checkId("drummerId", u.drummerId);
      if (bad) return invalid(bad);
      if (u.leaderTerm <= s.leaderTerm) {
        return precondition(`leader term ${u.leaderTerm} is not after the current term ${s.leaderTerm}`);
      }
      s.leaderTerm = u.leaderTerm;
      s.leaderDrummerId = u.drummerId;
      return ok();
    }
    case "schedulerStep":
      return applyStep(s, u.step);
  }
}

function setDeployment(s: DbState, deploymentId: number): DbResult {
  const bad = checkId("deploymentId", deploymentId);
  if (bad) return invalid(bad);
  if (s.deploymentId === deploymentId) return ok("unchanged");
  if (s.deploymentId !== 0) {
    return precondition(
      `the deployment ID is ${s.deploymentId} already and never changes (asked: ${deploymentId})`,
    );
  }
  s.deploymentId = deploymentId;
  return ok();
}

/** The problem with a shard definition, or null. */
export function checkDefinition(d: ShardDefinition): string | null {
  return (
    checkId("shard.shardId", d.shardId) ??
    checkApp("shard.app", d.app) ??
    (Number.isSafeInteger(d.replicaCount) && d.replicaCount >= 1 && d.replicaCount <= DB_LIMITS.replicaCount
      ? null
      : `shard.replicaCount must be an integer in 1..${DB_LIMITS.replicaCount}, got ${d.replicaCount}`) ??
    checkRegions("shard.regions", d.regions, d.replicaCount)
  );
}

function createShard(s: DbState, d: ShardDefinition): DbResult {
  const bad = checkDefinition(d);
  if (bad) return invalid(bad);
  const have = s.shards.get(d.shardId);
  if (have) {
    return {
      code: DbCode.Exists,
      message: `shard ${d.shardId} is already defined (app ${have.app}, ${have.replicaCount} replicas)`,
    };
  }
  if (s.shards.size >= DB_LIMITS.shards)
    return precondition(`at most ${DB_LIMITS.shards} shards can be defined`);
  s.shards.set(d.shardId, {
    shardId: d.shardId,
    app: d.app,
    replicaCount: d.replicaCount,
    regions: d.regions.map((r) => ({ region: r.region, count: r.count })),
  });
  return ok();
}

function setRegions(s: DbState, shardId: number, regions: ShardDefinition["regions"]): DbResult {
  const badId = checkId("shardId", shardId);
  if (badId) return invalid(badId);
  const d = s.shards.get(shardId);
  if (!d) return precondition(`shard ${shardId} is not defined`);
  const bad = checkRegions("regions", regions, d.replicaCount);
  if (bad) return invalid(bad);
  d.regions = regions.map((r) => ({ region: r.region, count: r.count }));
  return ok(
    s.views.has(shardId) ? "placed replicas stay where they are; replacements follow the new regions" : "",
  );
}
