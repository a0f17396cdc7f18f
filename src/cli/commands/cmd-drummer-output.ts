/**
 * What `longboat cmd` prints for the drummer ops: tables for people, one JSON object with
 * --json, and the health verdict `status` and `wait --healthy` share. Pure functions of a
 * Snapshot (cmd-drummer-client.ts), so they are tested without a deployment.
 */
import { table } from "./cmd-output.ts";
import type {
  DecisionView,
  DrummerView,
  MemberView,
  NodeHostView,
  ShardView,
  Snapshot,
} from "./cmd-drummer-client.ts";

export interface Verdict {
  /** Every drummer answers, the leader's live view is settled, every shard is ok. */
  healthy: boolean;
  /** Why not, one phrase each (empty when healthy). */
  problems: string[];
  /** Worth knowing without being a problem (a dead NodeHost that holds no member). */
  notes: string[];
}

/** The health of the deployment: exit 0 of `status` and the goal of `wait --healthy`. */
export function assess(snap: Snapshot): Verdict {
  const problems: string[] = [...snap.errors];
  const notes: string[] = [];
  for (const d of snap.drummers) {
    if (!d.healthy)
      problems.push(`drummer ${d.id || d.apiAddress} does not answer (${d.error ?? "unknown"})`);
  }
  if (snap.drummers.length > 0 && !snap.drummers.some((d) => d.leader)) {
    problems.push("the drummers have no leader");
  }
  if (snap.errors.length === 0 && !snap.fromLeader) {
    problems.push("the leader's live view could not be read (only committed records are shown)");
  }
  if (snap.listening) {
    problems.push("the drummer leader is new and still listening for NodeHosts (states are provisional)");
  }
  for (const sh of snap.shards) {
    if (sh.health !== "ok") problems.push(`shard ${sh.id} ${sh.health}${sh.reason ? `: ${sh.reason}` : ""}`);
  }
  const members = new Set(snap.shards.flatMap((sh) => sh.members.map((m) => m.raftAddress)));
  for (const h of snap.nodehosts) {
    if (h.state === "dead" && !members.has(h.raftAddress)) {
      notes.push(`NodeHost ${h.raftAddress} is dead and holds no member of any shard`);
    }
  }
  return { healthy: problems.length === 0, problems, notes };
}

/** Milliseconds as a short age: 0.4s, 12s, 3m10s, 2h5m. */
export function age(ms: number | null): string {
  if (ms === null) return "never";
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const sec = Math.floor(ms / 1000);
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${sec % 60 > 0 ? `${sec % 60}s` : ""}`;
  const min = Math.floor(sec / 60);
  return `${Math.floor(min / 60)}h${min % 60 > 0 ? `${min % 60}m` : ""}`;
}

/** `2@h2:7001*` for the leader, `3@h3:7001(dead)` for a member that does not run. */
export function member(m: MemberView): string {
  return `${m.replicaId}@${m.raftAddress}${m.leader ? "*" : ""}${m.state === "ok" ? "" : `(${m.state})`}`;
}

const orNone = (rows: Record<string, unknown>[], none: string) => (rows.length === 0 ? none : table(rows));

export function drummersTable(ds: DrummerView[]): string {
  return orNone(
    ds.map((d) => ({
      id: d.id || "?",
      api: d.apiAddress || "-",
      raft: d.raftAddress || "-",
      leader: d.leader ? "yes" : "",
      healthy: d.healthy ? "yes" : `NO: ${d.error ?? "?"}`,
    })),
    "(no drummers)",
  );
}

export function nodeHostsTable(hs: NodeHostView[]): string {
  return orNone(
    hs.map((h) => ({
      raft: h.raftAddress,
      api: h.apiAddress || "-",
      region: h.region || "-",
      state: h.state,
      "last report": h.lastReportAgeMs === null ? "never" : `${age(h.lastReportAgeMs)} ago`,
      replicas: h.replicas,
    })),
    "(no NodeHost has reported yet: start them with --master and these drummers' API addresses)",
  );
}

export function shardsTable(ss: ShardView[]): string {
  return orNone(
    ss.map((sh) => ({
      shard: sh.id,
      app: sh.app,
      replicas: sh.replicas,
      regions: sh.regions.map((r) => `${r.region}=${r.count}`).join(",") || "-",
      leader: sh.leaderReplicaId || "-",
      health: sh.health,
      members: sh.members.map(member).join(" ") || "-",
    })),
    "(no shards defined: longboat cmd create-shard --id 1 --app kv --replicas 3)",
  );
}

export function decisionsTable(ds: DecisionView[]): string {
  return orNone(
    ds.map((d) => ({
      decision: d.id,
      shard: d.shardId,
      kind: d.kind,
      replica: d.replicaId || "-",
      at: d.replicaAddress || "-",
      by: d.executorAddress || "-",
      repair: d.repair ? "yes" : "",
      reason: d.reason,
    })),
    "(none)",
  );
}

/** A count by value: `2 ok, 1 repairing`. */
function tally(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].map(([v, c]) => `${c} ${v}`).join(", ");
}

/** The whole `cmd status` screen. */
export function statusText(snap: Snapshot, v: Verdict): string {
  const dep = snap.deployment;
  const leader = snap.drummers.find((d) => d.leader);
  const head = dep
    ? `deployment ${dep.id}, ${dep.bootstrapped ? "bootstrapped" : "NOT bootstrapped (longboat cmd bootstrap)"}, leader drummer ${leader ? `${leader.id} (${leader.apiAddress})` : "none"}`
    : "deployment unknown: no drummer answered";
  const repairs = snap.repairs
    ? `; repairs so far: ${snap.repairs.started} started, ${snap.repairs.done} done, ${snap.repairs.failed} failed`
    : "";
  const sections = [
    head,
    "",
    `DRUMMERS (${snap.drummers.length})`,
    drummersTable(snap.drummers),
    "",
    `NODEHOSTS (${snap.nodehosts.length}${snap.nodehosts.length > 0 ? `: ${tally(snap.nodehosts.map((h) => h.state))}` : ""})`,
    nodeHostsTable(snap.nodehosts),
    "",
    `SHARDS (${snap.shards.length}${snap.shards.length > 0 ? `: ${tally(snap.shards.map((x) => x.health))}` : ""})`,
    shardsTable(snap.shards),
    "",
    `DECISIONS IN FLIGHT (${snap.inFlight.length}${repairs})`,
    decisionsTable(snap.inFlight),
    "",
    verdictText(v),
  ];
  return sections.join("\n");
}

export function verdictText(v: Verdict): string {
  const notes = v.notes.map((x) => `note: ${x}`);
  if (v.healthy) return ["healthy", ...notes].join("\n");
  return [`NOT healthy:`, ...v.problems.map((p) => `  - ${p}`), ...notes].join("\n");
}

/** `cmd status --json`: one object. */
export function statusJson(snap: Snapshot, v: Verdict): Record<string, unknown> {
  return {
    ok: true,
    healthy: v.healthy,
    problems: v.problems,
    notes: v.notes,
    deployment: snap.deployment,
    drummers: snap.drummers,
    nodehosts: snap.nodehosts,
    shards: snap.shards,
    unknownShardIds: snap.unknownShardIds,
    inFlight: snap.inFlight,
    repairs: snap.repairs,
    fromLeader: snap.fromLeader,
    listening: snap.listening,
  };
}

/** One progress line of `wait --healthy`: what is left, and for how long it has waited. */
export function progressText(snap: Snapshot, v: Verdict, waitedMs: number, timeoutMs: number): string {
  const shards = snap.shards.length > 0 ? `shards: ${tally(snap.shards.map((x) => x.health))}` : "no shards";
  const drummers = `drummers: ${snap.drummers.filter((d) => d.healthy).length}/${snap.drummers.length} answer`;
  const hosts = `NodeHosts: ${snap.nodehosts.filter((h) => h.state === "alive").length} alive`;
  const first = v.problems[0];
  const waiting = v.healthy
    ? "healthy"
    : `waiting (${first ?? "?"}${v.problems.length > 1 ? ` +${v.problems.length - 1} more` : ""})`;
  return `[${age(waitedMs)} of ${age(timeoutMs)}] ${drummers}; ${hosts}; ${shards}; ${waiting}`;
}
