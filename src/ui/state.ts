/**
 * The dashboard's view state kept in the browser (sort column, filters, selected host) and the
 * pure functions that apply it to a view's rows. Runs in the browser too: imports only types.
 */
import type { HostView, ReplicaView, ShardView } from "./model.ts";

export interface UiState {
  /** Column key to sort by, e.g. "shardId". */
  sort: string;
  desc: boolean;
  /** Shard id filter: "", one id, or a list such as "1,3,5-9". */
  id: string;
  /** Substring of the app name. */
  app: string;
  /** "" or one health (deployment) / role (NodeHost). */
  health: string;
  /** "" or a NodeHost's raft address: the shards with a member there, and that host's view. */
  host: string;
}

export const DEFAULT_UI: UiState = { sort: "shardId", desc: false, id: "", app: "", health: "", host: "" };

/** The UI state in a URL's query (?sort=term&desc=1&app=kv): links keep the view. */
export function uiFromQuery(query: URLSearchParams): UiState {
  const get = (k: string) => (query.get(k) ?? "").slice(0, 200);
  return {
    sort: /^[a-zA-Z]{1,30}$/.test(get("sort")) ? get("sort") : DEFAULT_UI.sort,
    desc: get("desc") === "1",
    id: get("id"),
    app: get("app"),
    health: get("health"),
    host: get("host"),
  };
}

export function uiToQuery(ui: UiState): string {
  const q = new URLSearchParams();
  if (ui.sort !== DEFAULT_UI.sort) q.set("sort", ui.sort);
  if (ui.desc) q.set("desc", "1");
  for (const k of ["id", "app", "health", "host"] as const) if (ui[k] !== "") q.set(k, ui[k]);
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}

/** Whether `id` is in an id filter such as "1,3,5-9" (an empty or unreadable filter takes all). */
export function idMatches(filter: string, id: number): boolean {
  const parts = filter
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (parts.length === 0) return true;
  let readable = false;
  for (const p of parts) {
    const range = /^(\d+)\s*-\s*(\d+)$/.exec(p);
    if (range) {
      readable = true;
      if (id >= Number(range[1]) && id <= Number(range[2])) return true;
    } else if (/^\d+$/.test(p)) {
      readable = true;
      if (id === Number(p)) return true;
    }
  }
  return !readable;
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (a === undefined) return b === undefined ? 0 : 1;
  if (b === undefined) return -1;
  return String(a).localeCompare(String(b));
}

function sorted<T>(
  rows: T[],
  ui: UiState,
  keyOf: (row: T, key: string) => unknown,
  tie: (r: T) => number,
): T[] {
  const dir = ui.desc ? -1 : 1;
  return [...rows].sort((x, y) => dir * compare(keyOf(x, ui.sort), keyOf(y, ui.sort)) || tie(x) - tie(y));
}

/** The shards of a deployment view the filters keep, in the chosen order. */
export function shardRows(shards: ShardView[], ui: UiState): ShardView[] {
  const app = ui.app.trim().toLowerCase();
  const kept = shards.filter(
    (s) =>
      idMatches(ui.id, s.shardId) &&
      (app === "" || s.app.toLowerCase().includes(app)) &&
      (ui.health === "" || s.health === ui.health) &&
      (ui.host === "" || s.members.some((m) => m.raftAddress === ui.host)),
  );
  return sorted(
    kept,
    ui,
    (s, key) => {
      switch (key) {
        case "members":
          return s.members.length;
        case "leader":
          return s.leaderReplicaId;
        case "lag":
          return Math.max(0, ...s.members.map((m) => m.lag ?? 0));
        default:
          return (s as unknown as Record<string, unknown>)[key];
      }
    },
    (s) => s.shardId,
  );
}

/** The replicas of a NodeHost view the filters keep (health filters the role), in the chosen order. */
export function replicaRows(replicas: ReplicaView[], ui: UiState): ReplicaView[] {
  const app = ui.app.trim().toLowerCase();
  const kept = replicas.filter(
    (r) =>
      idMatches(ui.id, r.shardId) &&
      (app === "" || r.app.toLowerCase().includes(app)) &&
      (ui.health === "" || r.role === ui.health),
  );
  return sorted(
    kept,
    ui,
    (r, key) => (key === "members" ? r.members.length : (r as unknown as Record<string, unknown>)[key]),
    (r) => r.shardId,
  );
}

/** NodeHosts grouped by region, regions in name order ("" is shown as "(no region)"). */
export function hostsByRegion(hosts: HostView[]): [string, HostView[]][] {
  const groups = new Map<string, HostView[]>();
  for (const h of hosts) groups.set(h.region, [...(groups.get(h.region) ?? []), h]);
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
}
