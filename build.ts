/**
 * Compiles src/cli/main.ts into one self-contained executable, dist/longboat, with the git
 * commit baked in (`longboat version`) and the dashboard's browser script. Run: `npm run build`.
 */
import packageJson from "./package.json" with { type: "json" };
import { bundleClientScript } from "./src/ui/bundle.ts";

const root = import.meta.dir;
const outfile = `${root}/dist/longboat`;

function gitCommit(): string {
  const git = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: root, stderr: "ignore" });
  const commit = git.stdout.toString().trim();
  return git.exitCode === 0 && commit !== "" ? commit : "unknown";
}

const commit = gitCommit();
// The dashboard's browser script (src/ui/client.tsx), bundled for browsers and baked in.
const uiScript = await bundleClientScript();
const result = await Bun.build({
  // The log writer runs as a Worker: it must be an entrypoint of the binary too, and
  // src/logdb/sqlite.ts finds it at its path relative to the entrypoints' common folder (src/).
  entrypoints: [`${root}/src/cli/main.ts`, `${root}/src/logdb/sqlite-writer.ts`],
  compile: { outfile },
  // Start-up time (docs/performance.md): each subcommand's modules are a chunk of their own,
  // loaded when it runs (src/cli/subcommands.ts imports them lazily), and every chunk is
  // compiled to bytecode at build time so the binary does not parse its JavaScript at start.
  splitting: true,
  bytecode: true,
  format: "esm",
  // LONGBOAT_PRODUCTION turns src/engine/bugs.ts's plantedBugOption() into `return null`: the
  // simulator's planted bugs can never be switched on in the binary. NODE_ENV=production is
  // for the dependencies.
  define: {
    LONGBOAT_COMMIT: JSON.stringify(commit),
    LONGBOAT_PRODUCTION: "true",
    LONGBOAT_UI_SCRIPT: JSON.stringify(uiScript),
    "process.env.NODE_ENV": JSON.stringify("production"),
  },
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.log(`built ${outfile} (longboat ${packageJson.version}, commit ${commit})`);
