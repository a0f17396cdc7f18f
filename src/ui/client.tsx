/**
 * The dashboard's browser script (bundled by src/ui/bundle.ts into the binary): every
 * refreshSeconds it reads the Connect JSON API of the server that served the page — the same
 * calls `longboat cmd` makes — and re-renders the page's body with the components the server
 * rendered it with, keeping sort, filters and the selected host. It asks for the API token when
 * the API wants one and keeps it in sessionStorage (this tab only). On a NodeHost it also
 * charts proposals/s, p99 proposal latency and fsyncs/s from /metrics; on a drummer it charts
 * the same figures per NodeHost from what ListNodeHosts gives of each host's last report.
 */
import { Body, Charts, HostCharts, type Series } from "./components.tsx";
import { chartPoint, parsePrometheus, type Scrape } from "./metrics.ts";
import {
  ApiCallError,
  connectJsonCaller,
  type DeploymentView,
  loadDeployment,
  loadNodeHost,
  type NodeHostView,
} from "./model.ts";
import { type UiState, uiFromQuery, uiToQuery } from "./state.ts";

const TOKEN_KEY = "longboat.apiToken";
const CHART_POINTS = 60;

interface Config {
  kind: "nodehost" | "deployment";
  refreshSeconds: number;
  tokenRequired: boolean;
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const config = JSON.parse(byId("dashboard-config").textContent ?? "{}") as Config;
const status = byId<HTMLParagraphElement>("status");
const viewEl = byId<HTMLElement>("view");
const chartsEl = byId<HTMLElement>("charts");
const login = byId<HTMLFormElement>("login");
const loginError = byId<HTMLParagraphElement>("login-error");
const filters = byId<HTMLFormElement>("filters");

let ui: UiState = uiFromQuery(new URLSearchParams(location.search));
let token: string | undefined = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
let view: NodeHostView | DeploymentView | undefined;
let refreshes = 0;
let timer: ReturnType<typeof setTimeout> | undefined;
const scrapes: Scrape[] = [];
const newSeries = (): Series[] => [
  { id: "proposals", title: "Proposals/s", unit: "/s", points: [] },
  { id: "p99", title: "p99 proposal latency", unit: "ms", points: [] },
  { id: "fsyncs", title: "Log fsyncs/s", unit: "/s", points: [] },
];
const series = newSeries();
/** The drummers' page: each NodeHost's series and the number of the last figures charted. */
const hostSeries = new Map<string, { sample: number; series: Series[] }>();

function addPoint(to: Series[], values: (number | undefined)[]): void {
  to.forEach((s, i) => {
    s.points.push(values[i]);
    if (s.points.length > CHART_POINTS) s.points.shift();
  });
}

function html(node: unknown): string {
  return String(node);
}

function render(): void {
  if (!view) return;
  // Keep the focused control (a sort button) focused across the re-render.
  const focused = document.activeElement as HTMLElement | null;
  const focusKey = focused?.dataset?.sort ?? focused?.dataset?.selectHost;
  viewEl.innerHTML = html(<Body view={view} ui={ui} />);
  if (focusKey !== undefined && viewEl.contains(focused) === false) {
    const again = viewEl.querySelector<HTMLElement>(
      `[data-sort="${CSS.escape(focusKey)}"], [data-select-host="${CSS.escape(focusKey)}"]`,
    );
    again?.focus();
  }
  if (view.kind === "deployment") syncHostChoices(view);
}

/** The host filter lists the hosts of the latest view. */
function syncHostChoices(v: DeploymentView): void {
  const select = filters.elements.namedItem("host") as HTMLSelectElement | null;
  if (!select) return;
  const want = ["", ...v.nodehosts.map((h) => h.raftAddress)];
  const have = [...select.options].map((o) => o.value);
  if (want.join("\n") !== have.join("\n")) {
    select.replaceChildren(
      ...want.map((value) => {
        const o = document.createElement("option");
        o.value = value;
        o.textContent = value === "" ? "any" : value;
        return o;
      }),
    );
  }
  select.value = ui.host;
}

function setStatus(text: string, stale: boolean): void {
  status.textContent = text;
  status.classList.toggle("stale", stale);
}

function askForToken(message: string): void {
  login.hidden = false;
  loginError.textContent = message;
  (login.elements.namedItem("token") as HTMLInputElement).focus();
}

async function scrapeMetrics(): Promise<void> {
  if (config.kind !== "nodehost") return;
  const res = await fetch("/metrics", { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (res.status !== 200) return;
  scrapes.push({ atMs: performance.now(), samples: parsePrometheus(await res.text()) });
  if (scrapes.length > 2) scrapes.shift();
  if (scrapes.length < 2) return;
  const p = chartPoint(scrapes[0]!, scrapes[1]!);
  addPoint(series, [p.proposals ?? 0, p.p99ms, p.fsyncs ?? 0]);
  chartsEl.innerHTML = html(<Charts series={series} />);
}

/** A point for each NodeHost whose report brought new figures since the last refresh. */
function chartHosts(v: DeploymentView): void {
  const listed = new Set(v.nodehosts.map((h) => h.raftAddress));
  for (const address of hostSeries.keys()) if (!listed.has(address)) hostSeries.delete(address);
  for (const h of v.nodehosts) {
    const f = h.figures;
    if (!f) continue;
    let entry = hostSeries.get(h.raftAddress);
    if (!entry) {
      entry = { sample: -1, series: newSeries() };
      hostSeries.set(h.raftAddress, entry);
    }
    if (entry.sample === f.sample) continue;
    entry.sample = f.sample;
    addPoint(entry.series, [f.proposalsPerSecond, f.p99Ms, f.fsyncsPerSecond]);
  }
  renderHostCharts();
}

function renderHostCharts(): void {
  if (view?.kind !== "deployment") return;
  const hosts = view.nodehosts
    .filter((h) => hostSeries.has(h.raftAddress))
    .map((h) => ({
      raftAddress: h.raftAddress,
      state: h.state,
      series: hostSeries.get(h.raftAddress)!.series,
    }));
  chartsEl.innerHTML = html(<HostCharts hosts={hosts} selected={ui.host} />);
}

let refreshing = false;
let again = false;

/** One refresh, then the next is scheduled; a call while one runs runs once after it (one loop only). */
async function refresh(): Promise<void> {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    await refreshOnce();
  } finally {
    refreshing = false;
  }
  if (again) {
    again = false;
    await refresh();
  }
}

async function refreshOnce(): Promise<void> {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  const call = connectJsonCaller((url, init) => fetch(url, init), "", token);
  try {
    view = config.kind === "nodehost" ? await loadNodeHost(call) : await loadDeployment(call);
    login.hidden = true;
    render();
    if (view.kind === "deployment") chartHosts(view);
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    setStatus(`Updated ${new Date().toLocaleTimeString()} · every ${config.refreshSeconds} s`, false);
    await scrapeMetrics().catch(() => {});
  } catch (error) {
    if (error instanceof ApiCallError && error.code === "unauthenticated") {
      setStatus("Sign in to see this deployment.", true);
      askForToken(token ? "That token was refused." : "");
      return; // no refresh until a token is given
    }
    const why = error instanceof Error ? error.message : String(error);
    setStatus(
      `Cannot reach the API (${why}); showing the view of ${view ? "the last refresh" : "nothing yet"}.`,
      true,
    );
  }
  timer = setTimeout(() => void refresh(), config.refreshSeconds * 1000);
}

function readFilters(): void {
  const value = (name: string) => (filters.elements.namedItem(name) as HTMLInputElement | null)?.value ?? "";
  ui = { ...ui, id: value("id"), app: value("app"), health: value("health"), host: value("host") };
  history.replaceState(null, "", `${location.pathname}${uiToQuery(ui)}`);
  render();
  renderHostCharts();
}

filters.addEventListener("input", readFilters);
filters.addEventListener("change", readFilters);
filters.addEventListener("submit", (e) => e.preventDefault());

viewEl.addEventListener("click", (e) => {
  const target = (e.target as HTMLElement).closest<HTMLElement>("[data-sort], [data-select-host]");
  if (!target) return;
  const sort = target.dataset.sort;
  const host = target.dataset.selectHost;
  if (sort !== undefined) ui = { ...ui, desc: ui.sort === sort ? !ui.desc : false, sort };
  if (host !== undefined) ui = { ...ui, host: ui.host === host ? "" : host };
  history.replaceState(null, "", `${location.pathname}${uiToQuery(ui)}`);
  render();
  if (host !== undefined) renderHostCharts();
});

login.addEventListener("submit", (e) => {
  e.preventDefault();
  const input = login.elements.namedItem("token") as HTMLInputElement;
  token = input.value.trim() || undefined;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  input.value = "";
  loginError.textContent = "";
  void refresh();
});

void refresh();
