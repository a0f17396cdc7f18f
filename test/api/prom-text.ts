/**
 * A strict checker of the Prometheus text exposition format 0.0.4, written from its grammar
 * (prometheus/docs, "Exposition formats"; what Prometheus' own parser accepts), so a test
 * fails on anything a scraper would refuse or misread:
 * - lines end with "\n", the last one too; `# HELP name text` (escapes \\ and \n only) and
 *   `# TYPE name counter|gauge|histogram|summary|untyped`, each at most once per name and
 *   before that family's samples; other `#` lines are comments;
 * - a sample is `name{label="value",…} value [timestamp]`: names [a-zA-Z_:][a-zA-Z0-9_:]*,
 *   label names [a-zA-Z_][a-zA-Z0-9_]* not starting with "__", label values with the escapes
 *   \\ \" \n only, each label once; the value a Go float (NaN, +Inf, -Inf included), the
 *   timestamp an integer;
 * - a family's samples are contiguous, no series appears twice, counters are ≥ 0, and a
 *   histogram has _bucket series with `le` (ascending, cumulative, ending at +Inf), _sum and
 *   a _count equal to its +Inf bucket.
 * We did not take an npm parser: the ones published (parse-prometheus-text-format and the
 * like) are lenient — they accept unescaped quotes and interleaved families — and unmaintained.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help?: string;
  type: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|Inf|inf|NaN)$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parses `text`, throwing an Error naming the line and the rule for anything not in the format. */
export function parsePrometheusText(text: string): Map<string, Family> {
  if (text !== "" && !text.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  const families = new Map<string, Family>();
  const closed = new Set<string>(); // families whose samples ended (another family's began)
  const series = new Set<string>();
  let current: string | undefined;
  const lines = text.split("\n").slice(0, -1);
  lines.forEach((line, i) => {
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1} ${JSON.stringify(line)}: ${why}`);
    };
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return; // a comment
      const [, keyword, name, rest = ""] = m;
      if (!METRIC_NAME.test(name!) || METRIC_NAME.exec(name!)![0] !== name) fail("bad metric name");
      const family = familyOf(families, name!);
      if (family.samples.length > 0) fail(`${keyword} after the family's samples`);
      if (keyword === "HELP") {
        if (family.help !== undefined) fail("a second HELP");
        family.help = unescapeText(rest, false, fail);
      } else {
        if (family.type !== "untyped" || family.typeGiven) fail("a second TYPE");
        if (!TYPES.has(rest)) fail(`unknown type ${rest}`);
        family.type = rest;
        family.typeGiven = true;
      }
      return;
    }
    const sample = parseSample(line, fail);
    const familyName = familyNameOf(families, sample.name);
    if (familyName !== current) {
      if (current !== undefined) closed.add(current);
      if (closed.has(familyName)) fail(`family ${familyName} continues after another family's samples`);
      current = familyName;
    }
    const key = `${sample.name}{${Object.entries(sample.labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(",")}}`;
    if (series.has(key)) fail(`series ${key} appears twice`);
    series.add(key);
    const family = familyOf(families, familyName);
    if (family.type === "counter" && !(sample.value >= 0)) fail("a counter below 0");
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === "histogram") checkHistogram(family);
  return new Map(
    [...families].map(([name, f]) => [
      name,
      { name, help: f.help, type: f.type, samples: f.samples } as Family,
    ]),
  );
}

type Draft = Family & { typeGiven?: boolean };

function familyOf(families: Map<string, Family>, name: string): Draft {
  let f = families.get(name) as Draft | undefined;
  if (f === undefined) {
    f = { name, type: "untyped", samples: [] };
    families.set(name, f);
  }
  return f;
}

/** The family a sample belongs to: a histogram's or summary's _bucket/_sum/_count go to its name. */
function familyNameOf(families: Map<string, Family>, name: string): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = families.get(name.slice(0, -suffix.length));
    if (base && (base.type === "histogram" || base.type === "summary")) return base.name;
  }
  return name;
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const name = METRIC_NAME.exec(line)?.[0] ?? fail("no metric name");
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    for (;;) {
      if (rest.startsWith("}")) break;
      const label = LABEL_NAME.exec(rest)?.[0] ?? fail("bad label name");
      if (label.startsWith("__")) fail(`label ${label} is reserved`);
      if (label in labels) fail(`label ${label} twice`);
      rest = rest.slice(label.length);
      if (!rest.startsWith('="')) fail(`label ${label} without ="value"`);
      rest = rest.slice(2);
      let raw = "";
      for (;;) {
        if (rest === "") fail(`label ${label}'s value is not closed`);
        const c = rest[0]!;
        if (c === '"') break;
        if (c === "\\") {
          raw += rest.slice(0, 2);
          rest = rest.slice(2);
        } else {
          raw += c;
          rest = rest.slice(1);
        }
      }
      rest = rest.slice(1);
      labels[label] = unescapeText(raw, true, fail);
      if (rest.startsWith(",")) rest = rest.slice(1);
      else if (!rest.startsWith("}")) fail("labels not separated by ,");
    }
    rest = rest.slice(1);
  }
  const parts = rest.split(/[ \t]+/);
  if (parts[0] !== "" || parts.length < 2 || parts.length > 3)
    fail("expected name[{labels}] value [timestamp]");
  const valueText = parts[1]!;
  if (!FLOAT.test(valueText)) fail(`value ${valueText} is not a float`);
  if (parts[2] !== undefined && !/^-?[0-9]+$/.test(parts[2])) fail(`timestamp ${parts[2]} is not an integer`);
  const value = /^[+]?[Ii]nf$/.test(valueText)
    ? Number.POSITIVE_INFINITY
    : /^-[Ii]nf$/.test(valueText)
      ? Number.NEGATIVE_INFINITY
      : Number(valueText);
  return { name, labels, value };
}

/** Undoes the format's escapes: \\ and \n, and \" in label values; any other backslash is an error. */
function unescapeText(text: string, quoted: boolean, fail: (why: string) => never): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && quoted) return '"';
    return fail(`escape \\${c} is not in the format`);
  });
}

function checkHistogram(f: Family): void {
  const fail = (why: string): never => {
    throw new Error(`histogram ${f.name}: ${why}`);
  };
  const groups = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const samples of groups.values()) {
    const buckets = samples.filter((s) => s.name === `${f.name}_bucket`);
    const count = samples.find((s) => s.name === `${f.name}_count`) ?? fail("no _count");
    if (!samples.some((s) => s.name === `${f.name}_sum`)) fail("no _sum");
    const les = buckets.map((b) =>
      b.labels.le === undefined
        ? fail("a bucket without le")
        : Number(b.labels.le.replace("+Inf", "Infinity")),
    );
    if (les.at(-1) !== Number.POSITIVE_INFINITY) fail("the last bucket is not le=+Inf");
    for (let i = 1; i < buckets.length; i++) {
      if (!(les[i]! > les[i - 1]!)) fail("le not ascending");
      if (buckets[i]!.value < buckets[i - 1]!.value) fail("buckets not cumulative");
    }
    if (buckets.at(-1)!.value !== count.value) fail("the +Inf bucket differs from _count");
  }
}
