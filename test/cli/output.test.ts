// The short-lived commands write through src/cli/output.ts (complete writes), never through
// process.stdout/process.stderr: main.ts does not drain those after them (src/cli/output.ts).
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SUBCOMMANDS } from "../../src/cli/subcommands.ts";

const COMMANDS = join(import.meta.dir, "../../src/cli/commands");

test("only cmd and version are marked as writing completely", () => {
  const marked = Object.entries(SUBCOMMANDS)
    .filter(([, sub]) => sub.completeWrites === true)
    .map(([name]) => name);
  expect(marked).toEqual(["cmd", "version"]);
});

test("the modules of cmd and version never use process.stdout or process.stderr", () => {
  const files = readdirSync(COMMANDS).filter(
    (f) => f.startsWith("cmd") || f === "watch.ts" || f === "version.ts",
  );
  expect(files).toContain("cmd.ts");
  const offenders = files.filter((f) =>
    /process\.std(out|err)/.test(readFileSync(join(COMMANDS, f), "utf8")),
  );
  expect(offenders).toEqual([]);
});
