// README and docs/architecture.md stand on their own: every link they make is to a file in this
// repository, and the architecture document links nowhere outside it.
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const ROOT = join(import.meta.dir, "../..");

/** Targets of markdown links [text](target) and of bare `docs/x.md` mentions in a document. */
function links(file: string): { target: string; resolved: string }[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const found: { target: string; resolved: string }[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!.split("#")[0]!;
    found.push({ target: m[1]!, resolved: target === "" ? "" : join(ROOT, dirname(file), target) });
  }
  for (const m of text.matchAll(/(?<![\w/.])(docs\/[\w.-]+\.md)/g))
    found.push({ target: m[1]!, resolved: join(ROOT, m[1]!) });
  return found;
}

test.each(["README.md", "docs/architecture.md"])("%s links only to files in the repository", (file) => {
  const all = links(file);
  expect(all.length).toBeGreaterThan(0);
  for (const l of all) {
    expect(l.target, `${file} links outside the repository`).not.toMatch(/^[a-z]+:/);
    expect(existsSync(l.resolved), `${file} links to ${l.target}, which does not exist`).toBe(true);
  }
});

test("README links to docs/architecture.md, which covers the layers, a proposal's life and durability", () => {
  expect(links("README.md").some((l) => l.target === "docs/architecture.md")).toBe(true);
  const text = readFileSync(join(ROOT, "docs/architecture.md"), "utf8");
  for (const heading of ["## Layers", "## The life of a proposal", "## The durability contract"])
    expect(text).toContain(heading);
  expect(text).not.toMatch(/https?:\/\//);
  expect(text).not.toContain("shared/");
});
