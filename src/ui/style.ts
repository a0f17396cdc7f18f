/** The dashboard's stylesheet, inlined in the page (no network at run time). Contrast ≥ 4.5:1. */
export const CSS = `
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #ffffff; --muted: #4a5360; --line: #d0d7de;
  --ok: #116329; --okbg: #dafbe1; --bad: #a40e26; --badbg: #ffebe9; --mid: #7a4700; --midbg: #fff8c5;
  --info: #0a3069; --infobg: #ddf4ff; --sel: #f3f7fc; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #a6b0bb; --line: #30363d;
  --ok: #7ee787; --okbg: #12261e; --bad: #ffa198; --badbg: #3c1618; --mid: #f2cc60; --midbg: #2e2a17;
  --info: #a5d6ff; --infobg: #10243e; --sel: #161b22; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 80rem; padding: 0.75rem; font: 15px/1.45 system-ui, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 1rem; }
h1 { font-size: 1.3rem; margin: 0.2rem 0; }
h2 { font-size: 1.1rem; margin: 1.2rem 0 0.4rem; }
#status { color: var(--muted); margin: 0; font-size: 0.9rem; }
#status.stale { color: var(--bad); font-weight: 600; }
.facts { display: flex; flex-wrap: wrap; gap: 0.2rem 1.2rem; margin: 0.3rem 0; }
.facts dt { color: var(--muted); } .facts dd { margin: 0 0 0 0.3rem; font-weight: 600; }
.facts div { display: flex; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 0.3rem 0 0.8rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: 0.2rem 0; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
tr.selected td { background: var(--sel); }
button.sort, button.link { font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer;
  text-decoration: underline dotted; }
button.link { text-decoration: underline; color: var(--info); }
.badge { display: inline-block; padding: 0 0.45rem; border-radius: 0.8rem; font-size: 0.82rem; font-weight: 600;
  border: 1px solid currentColor; color: var(--muted); margin-left: 0.2rem; }
.b-ok, .b-alive, .b-leader, .b-done { color: var(--ok); background: var(--okbg); }
.b-dead, .b-lost, .b-no-quorum, .b-failed, .b-unplaced { color: var(--bad); background: var(--badbg); }
.b-under-replicated, .b-repairing, .b-placing, .b-starting, .b-in-flight, .b-candidate, .b-pre-vote-candidate,
.b-repair, .b-stopped { color: var(--mid); background: var(--midbg); }
.b-follower, .b-non-voting, .b-witness { color: var(--info); background: var(--infobg); }
.warn { color: var(--bad); font-weight: 600; }
.note { color: var(--muted); font-size: 0.88rem; }
ul.members, ul.drummers, ul.counts { list-style: none; padding: 0; margin: 0; }
ul.drummers, ul.counts { display: flex; flex-wrap: wrap; gap: 0.3rem 1.2rem; margin: 0.3rem 0; }
.filters, .login { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; align-items: center; margin: 0.6rem 0;
  padding: 0.5rem; border: 1px solid var(--line); border-radius: 0.4rem; }
.login[hidden] { display: none; }
input, select, button[type=submit] { font: inherit; color: inherit; background: var(--bg);
  border: 1px solid var(--line); border-radius: 0.3rem; padding: 0.15rem 0.35rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
.chart { margin: 0; color: var(--info); } .chart figcaption { color: var(--fg); font-size: 0.9rem; }
.chart svg { display: block; border-bottom: 1px solid var(--line); }
.host-charts { border: 1px solid var(--line); padding: 0.5rem; } .host-charts h3 { margin: 0 0 0.3rem; font-size: 0.95rem; }
.host-charts .row { display: flex; flex-wrap: wrap; gap: 1rem; }
@media (max-width: 40rem) { body { font-size: 14px; padding: 0.4rem; } th, td { padding: 0.25rem 0.3rem; } }
`;
