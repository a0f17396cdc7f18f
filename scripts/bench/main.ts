// npm run bench -- <suite> [options]: runs one benchmark suite.
const suites: Record<string, string> = {
  engine: "engine.ts",
  logdb: "logdb.ts",
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
