/**
 * The dashboard's markup: Hono JSX components, pure functions of a view (src/ui/model.ts) and
 * the UI state (src/ui/state.ts). The server renders them into the first page; the browser
 * script renders the same components to a string on every refresh. Runs in the browser too.
 */
import type { Child } from "hono/jsx";
import type {
  DecisionView,
  DeploymentView,
  DrummerView,
  HostView,
  NodeHostView,
  ReplicaView,
  ShardView,
} from "./model.ts";
import { SHARD_HEALTHS } from "./model.ts";
import { hostsByRegion, replicaRows, shardRows, type UiState } from "./state.ts";

export interface Column {
  key: string;
  label: string;
  /** Not sortable when false. */
  sortable?: boolean;
}

/** A column header that sorts the table: a button, with aria-sort on the header cell. */
function SortHeader(props: { col: Column; ui: UiState }) {
  const { col, ui } = props;
  if (col.sortable === false) return <th scope="col">{col.label}</th>;
  const active = ui.sort === col.key;
  const dir = active ? (ui.desc ? "descending" : "ascending") : "none";
  return (
    <th scope="col" aria-sort={dir}>
      <button type="button" class="sort" data-sort={col.key}>
        {col.label}
        <span aria-hidden="true">{active ? (ui.desc ? " ▾" : " ▴") : ""}</span>
      </button>
    </th>
  );
}

export function Badge(props: { value: string; title?: string }) {
  return (
    <span class={`badge b-${props.value}`} title={props.title}>
      {props.value}
    </span>
  );
}

/** "850 ms", "12.3 s", "4 min". */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** A wall-clock millisecond time as "HH:MM:SS" UTC (a small number is a time since start). */
export function formatTime(ms: number): string {
  if (ms <= 0) return "-";
  if (ms < 1e12) return `+${formatAge(ms)}`;
  return new Date(ms).toISOString().slice(11, 19);
}

// ---------------------------------------------------------------------------------------------
// NodeHost page

export const REPLICA_COLUMNS: Column[] = [
  { key: "shardId", label: "Shard" },
  { key: "replicaId", label: "Replica" },
  { key: "app", label: "App" },
  { key: "role", label: "Role" },
  { key: "leaderId", label: "Leader" },
  { key: "term", label: "Term" },
  { key: "commitIndex", label: "Commit" },
  { key: "appliedIndex", label: "Applied" },
  { key: "members", label: "Members" },
];

function ReplicaRow(props: { r: ReplicaView }) {
  const r = props.r;
  return (
    <tr data-shard={String(r.shardId)}>
      <td>{r.shardId}</td>
      <td>{r.replicaId}</td>
      <td>{r.app}</td>
      <td>
        <Badge value={r.role} />
        {r.quiesced ? <span class="note"> quiesced</span> : null}
      </td>
      <td>{r.leaderId > 0 ? r.leaderId : <span class="warn">none</span>}</td>
      <td>{r.term}</td>
      <td>{r.commitIndex}</td>
      <td>{r.appliedIndex}</td>
      <td>
        {r.members.map((m, i) => (
          <span title={`${m.kind} at ${m.address}`}>
            {i > 0 ? ", " : ""}
            {m.replicaId === r.leaderId ? <strong>{m.replicaId}★</strong> : m.replicaId}
            {m.kind === "voter" ? "" : ` (${m.kind})`}
          </span>
        ))}
      </td>
    </tr>
  );
}

export function NodeHostBody(props: { view: NodeHostView; ui: UiState }) {
  const { view, ui } = props;
  const rows = replicaRows(view.replicas, ui);
  const leading = view.replicas.filter((r) => r.role === "leader").length;
  const leaderless = view.replicas.filter((r) => r.leaderId === 0).length;
  return (
    <>
      <section aria-labelledby="h-host" class="summary">
        <h2 id="h-host">NodeHost</h2>
        <dl class="facts">
          <dt>Raft address</dt>
          <dd data-fact="raftAddress">{view.raftAddress}</dd>
          <dt>API address</dt>
          <dd>{view.apiAddress || "-"}</dd>
          <dt>Region</dt>
          <dd>{view.region || "(none)"}</dd>
          <dt>Replicas</dt>
          <dd data-fact="replicas">{view.replicas.length}</dd>
          <dt>Leading</dt>
          <dd data-fact="leading">{leading}</dd>
          <dt>Without a leader</dt>
          <dd data-fact="leaderless" class={leaderless > 0 ? "warn" : ""}>
            {leaderless}
          </dd>
        </dl>
      </section>
      <section aria-labelledby="h-replicas">
        <h2 id="h-replicas">Replicas</h2>
        <div class="scroll">
          <table id="replicas">
            <caption>
              {rows.length} of {view.replicas.length} replicas on this NodeHost
            </caption>
            <thead>
              <tr>
                {REPLICA_COLUMNS.map((c) => (
                  <SortHeader col={c} ui={ui} />
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <ReplicaRow r={r} />
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// Drummer (deployment) page

export const SHARD_COLUMNS: Column[] = [
  { key: "shardId", label: "Shard" },
  { key: "app", label: "App" },
  { key: "health", label: "Health" },
  { key: "leader", label: "Leader" },
  { key: "term", label: "Term" },
  { key: "commitIndex", label: "Commit" },
  { key: "members", label: "Members (applied, lag)" },
  { key: "lag", label: "Max lag" },
  { key: "configChangeId", label: "Config" },
];

function Drummers(props: { drummers: DrummerView[] }) {
  return (
    <ul class="drummers" aria-label="Drummers">
      {props.drummers.map((d) => (
        <li data-drummer={String(d.drummerId)}>
          <strong>drummer {d.drummerId}</strong> {d.apiAddress || d.raftAddress}
          {d.isLeader ? <Badge value="leader" /> : null}
        </li>
      ))}
    </ul>
  );
}

function HostCard(props: { h: HostView; ui: UiState }) {
  const { h, ui } = props;
  const leading = h.replicas.filter((r) => r.isLeader).length;
  return (
    <tr data-host={h.raftAddress} data-state={h.state} class={ui.host === h.raftAddress ? "selected" : ""}>
      <td>
        <button type="button" class="link" data-select-host={h.raftAddress}>
          {h.raftAddress}
        </button>
      </td>
      <td>{h.apiAddress ? <a href={`//${h.apiAddress}/`}>{h.apiAddress}</a> : "-"}</td>
      <td>
        <Badge value={h.state} />
      </td>
      <td>{h.reported ? formatAge(h.lastReportAgeMs) : "never"}</td>
      <td>{h.replicas.length}</td>
      <td>{leading}</td>
    </tr>
  );
}

function Hosts(props: { view: DeploymentView; ui: UiState }) {
  const { view, ui } = props;
  const groups = hostsByRegion(view.nodehosts);
  return (
    <section aria-labelledby="h-hosts">
      <h2 id="h-hosts">NodeHosts</h2>
      {groups.length === 0 ? <p>No NodeHost has reported yet.</p> : null}
      {groups.map(([region, hosts]) => (
        <div class="scroll">
          <table class="hosts" data-region={region}>
            <caption>
              Region {region || "(no region)"}: {hosts.filter((h) => h.state === "alive").length} of{" "}
              {hosts.length} alive
            </caption>
            <thead>
              <tr>
                <th scope="col">Raft address</th>
                <th scope="col">API (its own page)</th>
                <th scope="col">State</th>
                <th scope="col">Last report</th>
                <th scope="col">Replicas</th>
                <th scope="col">Leading</th>
              </tr>
            </thead>
            <tbody>
              {hosts.map((h) => (
                <HostCard h={h} ui={ui} />
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </section>
  );
}

function HealthCounts(props: { view: DeploymentView }) {
  const { view } = props;
  return (
    <ul class="counts" aria-label="Shards by health">
      {SHARD_HEALTHS.filter((h) => h === "ok" || (view.healthCounts[h] ?? 0) > 0).map((h) => (
        <li data-health={h}>
          <Badge value={h} /> <span class="count">{view.healthCounts[h] ?? 0}</span>
        </li>
      ))}
    </ul>
  );
}

function ShardRow(props: { s: ShardView }) {
  const s = props.s;
  const maxLag = Math.max(0, ...s.members.map((m) => m.lag ?? 0));
  return (
    <tr data-shard={String(s.shardId)} data-health={s.health}>
      <td>{s.shardId}</td>
      <td>{s.app}</td>
      <td>
        <Badge value={s.health} title={s.reason} />
        {s.reason && s.health !== "ok" ? <div class="note">{s.reason}</div> : null}
      </td>
      <td>{s.leaderReplicaId > 0 ? s.leaderReplicaId : <span class="warn">none</span>}</td>
      <td data-col="term">{s.term > 0 ? s.term : "-"}</td>
      <td data-col="commit">{s.term > 0 ? s.commitIndex : "-"}</td>
      <td>
        <ul class="members">
          {s.members.map((m) => (
            <li data-replica={String(m.replicaId)} data-state={m.state}>
              {m.isLeader ? <strong>{m.replicaId}★</strong> : m.replicaId} {m.raftAddress}{" "}
              {m.state === "ok" ? null : <Badge value={m.state} />}
              <span class="note">
                {" "}
                {m.appliedIndex === undefined ? "" : `@${m.appliedIndex}`}
                {m.lag === undefined || m.isLeader ? "" : `, lag ${m.lag}`}
              </span>
            </li>
          ))}
        </ul>
      </td>
      <td>{maxLag}</td>
      <td>{s.configChangeId}</td>
    </tr>
  );
}

function Shards(props: { view: DeploymentView; ui: UiState }) {
  const { view, ui } = props;
  const rows = shardRows(view.shards, ui);
  return (
    <section aria-labelledby="h-shards">
      <h2 id="h-shards">Shards</h2>
      <div class="scroll">
        <table id="shards">
          <caption>
            {rows.length} of {view.shards.length} shards
          </caption>
          <thead>
            <tr>
              {SHARD_COLUMNS.map((c) => (
                <SortHeader col={c} ui={ui} />
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <ShardRow s={s} />
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function SelectedHost(props: { view: DeploymentView; ui: UiState }) {
  const { view, ui } = props;
  const host = view.nodehosts.find((h) => h.raftAddress === ui.host);
  if (!host) return null;
  return (
    <section aria-labelledby="h-selected" id="host-view">
      <h2 id="h-selected">
        Host {host.raftAddress} <Badge value={host.state} />
      </h2>
      <div class="scroll">
        <table>
          <caption>Replicas {host.raftAddress} last reported</caption>
          <thead>
            <tr>
              <th scope="col">Shard</th>
              <th scope="col">Replica</th>
              <th scope="col">App</th>
              <th scope="col">Role</th>
              <th scope="col">Term</th>
              <th scope="col">Commit</th>
              <th scope="col">Applied</th>
            </tr>
          </thead>
          <tbody>
            {host.replicas.map((r) => (
              <tr>
                <td>{r.shardId}</td>
                <td>{r.replicaId}</td>
                <td>{r.app}</td>
                <td>
                  <Badge value={r.pending ? "starting" : r.isLeader ? "leader" : "follower"} />
                </td>
                <td>{r.term || "-"}</td>
                <td>{r.term ? r.commitIndex : "-"}</td>
                <td>{r.appliedIndex}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function DecisionTable(props: { id: string; caption: string; decisions: DecisionView[]; finished: boolean }) {
  return (
    <div class="scroll">
      <table id={props.id}>
        <caption>{props.caption}</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">{props.finished ? "Ended" : "Started"}</th>
            <th scope="col">Kind</th>
            <th scope="col">Shard</th>
            <th scope="col">Replica</th>
            <th scope="col">Where</th>
            <th scope="col">Reason</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {props.decisions.map((d) => (
            <tr data-decision={String(d.decisionId)} data-repair={d.repair ? "1" : "0"}>
              <td>{d.decisionId}</td>
              <td>{formatTime(props.finished ? d.endedMs || d.createdMs : d.createdMs)}</td>
              <td>
                {d.kind}
                {d.repair ? <Badge value="repair" /> : null}
              </td>
              <td>{d.shardId}</td>
              <td>{d.replicaId || "-"}</td>
              <td>{d.replicaAddress || d.executorAddress || "-"}</td>
              <td>{d.reason}</td>
              <td>
                <Badge value={d.state} title={d.outcome} />
                {d.outcome && d.state === "failed" ? <div class="note">{d.outcome}</div> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Decisions(props: { view: DeploymentView }) {
  const { view } = props;
  return (
    <section aria-labelledby="h-decisions">
      <h2 id="h-decisions">Repairs and decisions</h2>
      <p class="note" data-fact="repairs">
        Repairs started {view.repairsStarted}, done {view.repairsDone}, failed {view.repairsFailed}.
      </p>
      <DecisionTable
        id="in-flight"
        caption={`${view.inFlight.length} decisions in flight`}
        decisions={view.inFlight}
        finished={false}
      />
      <DecisionTable
        id="finished"
        caption={`The last ${view.finished.length} finished decisions`}
        decisions={view.finished}
        finished={true}
      />
    </section>
  );
}

export function DeploymentBody(props: { view: DeploymentView; ui: UiState }) {
  const { view, ui } = props;
  const alive = view.nodehosts.filter((h) => h.state === "alive").length;
  return (
    <>
      <section aria-labelledby="h-deployment" class="summary">
        <h2 id="h-deployment">Deployment {view.deploymentId}</h2>
        {view.fromLeader ? null : (
          <p class="warn" role="status">
            This drummer could not reach the leader drummer: the view below may be old.
          </p>
        )}
        {view.bootstrapped ? null : <p class="warn">Not bootstrapped yet.</p>}
        <dl class="facts">
          <dt>Drummers</dt>
          <dd data-fact="drummers">{view.drummers.length}</dd>
          <dt>NodeHosts alive</dt>
          <dd data-fact="alive">
            {alive} of {view.nodehosts.length}
          </dd>
          <dt>Shards</dt>
          <dd data-fact="shards">{view.shards.length}</dd>
        </dl>
        <Drummers drummers={view.drummers} />
        <HealthCounts view={view} />
      </section>
      <Hosts view={view} ui={ui} />
      <SelectedHost view={view} ui={ui} />
      <Shards view={view} ui={ui} />
      <Decisions view={view} />
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// Charts

export interface Series {
  /** Stable id, e.g. "proposals". */
  id: string;
  title: string;
  unit: string;
  /** Oldest first; undefined where no sample could be computed. */
  points: (number | undefined)[];
}

export function Chart(props: { series: Series }) {
  const { series } = props;
  const values = series.points.filter((p): p is number => p !== undefined);
  const latest = series.points.at(-1);
  const width = 160;
  const height = 40;
  const max = Math.max(1e-9, ...values);
  const step = series.points.length > 1 ? width / (series.points.length - 1) : width;
  // A gap (no sample) lifts the pen: the next sample starts a new segment.
  let penDown = false;
  const path = series.points
    .map((p, i) => {
      if (p === undefined) {
        penDown = false;
        return "";
      }
      const move = penDown ? "L" : "M";
      penDown = true;
      return `${move}${(i * step).toFixed(1)},${(height - (p / max) * height).toFixed(1)}`;
    })
    .filter((x) => x !== "")
    .join(" ");
  const shown =
    latest === undefined ? "…" : `${latest < 10 ? latest.toFixed(2) : Math.round(latest)} ${series.unit}`;
  return (
    <figure class="chart" data-series={series.id}>
      <figcaption>
        {series.title}: <strong data-latest>{shown}</strong>
      </figcaption>
      <svg
        viewBox={`0 0 ${width} ${height}`}
        width={width}
        height={height}
        role="img"
        aria-label={`${series.title}, last ${values.length} samples, latest ${shown}`}
      >
        <path d={path} fill="none" stroke="currentColor" stroke-width="1.5" />
      </svg>
    </figure>
  );
}

export function Charts(props: { series: Series[] }) {
  return (
    <>
      {props.series.map((s) => (
        <Chart series={s} />
      ))}
    </>
  );
}

/** The drummers' page charts this many NodeHosts at most, unless one is chosen in the host filter. */
export const HOST_CHARTS_MAX = 12;

export interface HostSeries {
  raftAddress: string;
  state: string;
  series: Series[];
}

/**
 * The drummers' page: each NodeHost's charts from the figures its reports carry (the chosen
 * host's only, when the host filter names one).
 */
export function HostCharts(props: { hosts: HostSeries[]; selected: string }) {
  const { hosts, selected } = props;
  const chosen = selected ? hosts.filter((h) => h.raftAddress === selected) : hosts.slice(0, HOST_CHARTS_MAX);
  if (chosen.length === 0) {
    return <p class="note">Each NodeHost's charts start with its second report to the drummers.</p>;
  }
  return (
    <>
      {chosen.map((h) => (
        <section class="host-charts" data-host={h.raftAddress} aria-labelledby={`hc-${h.raftAddress}`}>
          <h3 id={`hc-${h.raftAddress}`}>
            {h.raftAddress} <Badge value={h.state} />
          </h3>
          <div class="row">
            <Charts series={h.series} />
          </div>
        </section>
      ))}
      {hosts.length > chosen.length ? (
        <p class="note">
          {hosts.length - chosen.length} more NodeHosts: choose one in the Host filter to see its charts.
        </p>
      ) : null}
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// The page

export interface PageProps {
  kind: "nodehost" | "deployment";
  title: string;
  /** Seconds between refreshes. */
  refreshSeconds: number;
  /** The API wants a bearer token: the page asks for it. */
  tokenRequired: boolean;
  /** The first view (absent when the token is required: the browser loads it). */
  view: NodeHostView | DeploymentView | undefined;
  /** Why the server could not load the first view (the browser keeps trying). */
  problem?: string | undefined;
  ui: UiState;
  /** Inline stylesheet. */
  css: string;
  /** The script's URL (its content hash in the query, so a new binary's script is fetched anew). */
  scriptUrl: string;
}

function Filters(props: { kind: PageProps["kind"]; ui: UiState; hosts: HostView[] }) {
  const { kind, ui } = props;
  const choices =
    kind === "deployment" ? SHARD_HEALTHS : ["leader", "follower", "candidate", "non-voting", "witness"];
  return (
    <form id="filters" class="filters" aria-label="Filter shards">
      <label>
        Shard ids <input name="id" value={ui.id} placeholder="1,3,5-9" size={10} inputmode="numeric" />
      </label>
      <label>
        App <input name="app" value={ui.app} size={8} />
      </label>
      <label>
        {kind === "deployment" ? "Health" : "Role"}{" "}
        <select name="health">
          <option value="">any</option>
          {choices.map((c) => (
            <option value={c} selected={ui.health === c}>
              {c}
            </option>
          ))}
        </select>
      </label>
      {kind === "deployment" ? (
        <label>
          Host{" "}
          <select name="host">
            <option value="">any</option>
            {props.hosts.map((h) => (
              <option value={h.raftAddress} selected={ui.host === h.raftAddress}>
                {h.raftAddress}
              </option>
            ))}
          </select>
        </label>
      ) : null}
    </form>
  );
}

export function Body(props: { view: NodeHostView | DeploymentView; ui: UiState }): Child {
  return props.view.kind === "nodehost" ? (
    <NodeHostBody view={props.view} ui={props.ui} />
  ) : (
    <DeploymentBody view={props.view} ui={props.ui} />
  );
}

export function Page(props: PageProps) {
  const { view, ui } = props;
  const hosts = view?.kind === "deployment" ? view.nodehosts : [];
  const config = JSON.stringify({
    kind: props.kind,
    refreshSeconds: props.refreshSeconds,
    tokenRequired: props.tokenRequired,
  }).replaceAll("<", "\\u003c");
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title}</title>
        <link rel="icon" href="data:," />
        <style dangerouslySetInnerHTML={{ __html: props.css }} />
      </head>
      <body data-kind={props.kind}>
        <header>
          <h1>{props.title}</h1>
          <p id="status" role="status" aria-live="polite">
            {view
              ? "Loaded by the server; refreshing…"
              : props.problem
                ? `Cannot load yet: ${props.problem}`
                : "Loading…"}
          </p>
        </header>
        <form id="login" class="login" hidden={!props.tokenRequired || view !== undefined}>
          <p>This API needs a token. It is kept in this browser tab only.</p>
          <input type="text" name="username" autocomplete="username" value="api token" hidden />
          <label>
            API token <input type="password" name="token" autocomplete="current-password" required />
          </label>
          <button type="submit">Sign in</button>
          <p id="login-error" class="warn" role="alert" />
        </form>
        <Filters kind={props.kind} ui={ui} hosts={hosts} />
        <main id="view">{view ? <Body view={view} ui={ui} /> : null}</main>
        <section aria-labelledby="h-charts">
          <h2 id="h-charts">Live</h2>
          <div id="charts" class="charts">
            <p class="note">
              {props.kind === "nodehost"
                ? "Charts appear after two samples of /metrics."
                : "Each NodeHost's proposals/s, p99 proposal latency and fsyncs/s, as its reports give them, appear here after its second report."}
            </p>
          </div>
        </section>
        <script id="dashboard-config" type="application/json" dangerouslySetInnerHTML={{ __html: config }} />
        <script src={props.scriptUrl} defer />
      </body>
    </html>
  );
}
