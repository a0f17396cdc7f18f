// Builds etcd's own Go benchmark tool (tools/benchmark) for the `etcd` suite's honesty check
// (`npm run bench -- etcd --etcd-tool <binary>`), offline, from Debian packages: Debian's Go
// (golang-go) and etcd's sources (golang-etcd-server-dev, GOPATH layout in /usr/share/gocode).
// Debian does not package tools/benchmark itself, so its source comes from an etcd checkout at
// the tag of Debian's etcd-server (v3.4.23 on bookworm); nothing of it is copied into this repo.
//
//   bun scripts/bench/etcd-tool.ts --etcd-source <etcd checkout at the tag> [--out <binary>]
//
// Installs golang-go and golang-etcd-server-dev with apt-get when they are missing (needs root).
// Prints the path of the built binary.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { arg } from "./api.ts";

const GOCODE = "/usr/share/gocode";

function ensurePackages(): void {
  const missing = ["golang-go", "golang-etcd-server-dev"].filter(
    (p) => spawnSync("dpkg", ["-s", p], { stdio: "ignore" }).status !== 0,
  );
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(
      `missing Debian packages ${missing.join(", ")}: run apt-get install -y ${missing.join(" ")}`,
    );
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const r = spawnSync("apt-get", ["install", "-y", ...missing], { stdio: "inherit", env });
  if (r.status !== 0) throw new Error(`apt-get install -y ${missing.join(" ")} failed (exit ${r.status})`);
}

const source = arg("etcd-source", "");
if (source === "") {
  console.error(
    "usage: bun scripts/bench/etcd-tool.ts --etcd-source <etcd checkout at v3.4.23> [--out <binary>]",
  );
  process.exit(2);
}
const toolDir = join(resolve(source), "tools", "benchmark");
if (!existsSync(join(toolDir, "main.go"))) {
  console.error(
    `${toolDir}/main.go not found: --etcd-source must be an etcd source tree (git checkout v3.4.23)`,
  );
  process.exit(2);
}
ensurePackages();
const gopath = mkdtempSync(join(tmpdir(), "longboat-etcd-tool-"));
const pkgDir = join(gopath, "src", "go.etcd.io", "etcd", "tools", "benchmark");
mkdirSync(pkgDir, { recursive: true });
cpSync(toolDir, pkgDir, { recursive: true });
const out = resolve(arg("out", join(gopath, "benchmark")));
// GOPATH mode: go.etcd.io/etcd/tools/benchmark from the copy, everything else from Debian's tree.
const r = spawnSync("go", ["build", "-o", out, "go.etcd.io/etcd/tools/benchmark"], {
  stdio: "inherit",
  env: { ...process.env, GO111MODULE: "off", GOPATH: `${gopath}:${GOCODE}`, GOFLAGS: "" },
});
if (r.status !== 0) {
  console.error(`go build failed (exit ${r.status})`);
  process.exit(1);
}
console.log(out);
