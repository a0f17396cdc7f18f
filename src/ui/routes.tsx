/**
 * `GET /` (the dashboard page) and `GET /ui/app.js` (its script) on an API server's routes. The
 * page is rendered on the server from the API's own Connect JSON answers, called in process
 * through the server's handler (so the same auth, limits and code path as `longboat cmd`); when
 * the API wants a token the browser has not given yet, the page is served without data and the
 * script asks for the token. Both paths are open (they carry no data); the data calls are not.
 *
 * ```ts
 * mountDashboard(app, { kind: "nodehost", title: "NodeHost h1:7001", tokenRequired, api: (r) => handler.fetch(r) });
 * ```
 */
import type { Hono } from "hono";
import { clientScript } from "./bundle.ts";
import { Page } from "./components.tsx";
import {
  connectJsonCaller,
  type DeploymentView,
  loadDeployment,
  loadNodeHost,
  type NodeHostView,
} from "./model.ts";
import { uiFromQuery } from "./state.ts";
import { CSS } from "./style.ts";

/** The paths the dashboard serves, open without a token (the page and script hold no data). */
export const DASHBOARD_PATHS = ["/", "/ui/app.js"] as const;

export const DEFAULT_REFRESH_SECONDS = 2;

export interface DashboardOptions {
  kind: "nodehost" | "deployment";
  /** The page's title, e.g. "Longboat NodeHost h1:7001". */
  title: string | (() => string);
  /** Whether the API needs a bearer token (the page then loads its data in the browser only). */
  tokenRequired: boolean;
  /** Answers a Request in process: the API server's own handler. */
  api: (request: Request) => Promise<Response>;
  /** Seconds between the page's refreshes (?refresh=N overrides). Default 2. */
  refreshSeconds?: number;
}

/** A refresh interval from a query (?refresh=5): 1..3600 seconds, else the default. */
export function refreshOf(query: string | undefined, fallback: number): number {
  const n = Number(query);
  return query !== undefined && /^\d+(\.\d+)?$/.test(query) && n >= 0.5 && n <= 3600 ? n : fallback;
}

/** Adds the dashboard's routes to `app` (call before its notFound handler matters). */
export function mountDashboard(app: Hono, opts: DashboardOptions): void {
  const defaultRefresh = opts.refreshSeconds ?? DEFAULT_REFRESH_SECONDS;
  if (!(defaultRefresh >= 0.5 && defaultRefresh <= 3600)) {
    throw new Error(`the dashboard's refresh must be 0.5..3600 seconds, got ${defaultRefresh}`);
  }
  const call = connectJsonCaller(
    (url, init) => opts.api(new Request(`http://localhost${url}`, init)),
    "",
    undefined,
  );
  app.get("/", async (c) => {
    const script = await clientScript();
    let view: NodeHostView | DeploymentView | undefined;
    let problem: string | undefined;
    if (!opts.tokenRequired) {
      try {
        view = opts.kind === "nodehost" ? await loadNodeHost(call) : await loadDeployment(call);
      } catch (error) {
        problem = error instanceof Error ? error.message : String(error);
      }
    }
    const page = (
      <Page
        kind={opts.kind}
        title={typeof opts.title === "string" ? opts.title : opts.title()}
        refreshSeconds={refreshOf(c.req.query("refresh"), defaultRefresh)}
        tokenRequired={opts.tokenRequired}
        view={view}
        problem={problem}
        ui={uiFromQuery(new URL(c.req.url).searchParams)}
        css={CSS}
        scriptUrl={`/ui/app.js?v=${script.hash}`}
      />
    );
    return c.html(`<!doctype html>${String(page)}`, 200, {
      "cache-control": "no-store",
      "content-security-policy":
        "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    });
  });
  app.get("/ui/app.js", async (c) => {
    const script = await clientScript();
    return c.body(script.code, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": c.req.query("v") === script.hash ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
    });
  });
}
