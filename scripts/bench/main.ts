// npm run bench -- <suite> [options]: runs one benchmark suite.
const suites: Record<string, string> = {
  api: "api.ts",
  cli: "cli.ts",
  drummer: "drummer.ts",
  engine: "engine.ts",
  etcd: "etcd.ts",
  logdb: "logdb.ts",
  "logdb-bytes": "logdb-bytes.ts",
  scale: "scale.ts",
  "snapshot-stall": "snapshot-stall.ts",
  transport: "transport.ts",
};
const suite = process.argv[2];
if (!suite || !(suite in suites)) {
  console.error(`usage: npm run bench -- <suite> [options]\nsuites: ${Object.keys(suites).join(", ")}`);
  process.exit(2);
}
const proc = Bun.spawn(["bun", `${import.meta.dir}/${suites[suite]}`, ...process.argv.slice(3)], {
  stdio: ["inherit", "inherit", "inherit"],
});
process.exit(await proc.exited);
