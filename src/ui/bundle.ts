/**
 * The dashboard's browser script as one minified file. build.ts bundles it at build time and
 * bakes it into the binary (LONGBOAT_UI_SCRIPT); run from source, it is bundled on first use.
 * No CDN, no network at run time.
 */
import { createHash } from "node:crypto";

// build.ts defines LONGBOAT_UI_SCRIPT; from source it is not defined.
declare const LONGBOAT_UI_SCRIPT: string | undefined;

export interface ClientScript {
  code: string;
  /** First 12 hex digits of its SHA-256: the script's URL carries it, so browsers fetch a new one. */
  hash: string;
}

/** Bundles src/ui/client.tsx for browsers (Bun.build), minified. */
export async function bundleClientScript(): Promise<string> {
  const result = await Bun.build({
    entrypoints: [`${import.meta.dir}/client.tsx`],
    target: "browser",
    format: "esm",
    minify: true,
    define: { "process.env.NODE_ENV": JSON.stringify("production") }, // env-ok: a define for the bundle, not a read
  });
  if (!result.success || result.outputs.length !== 1) {
    throw new Error(`bundling the dashboard script failed: ${result.logs.map(String).join("; ")}`);
  }
  return await result.outputs[0]!.text();
}

let cached: Promise<ClientScript> | undefined;

/** The script to serve: the one baked into the binary, or bundled now (once) from source. */
export function clientScript(): Promise<ClientScript> {
  cached ??= (async () => {
    const code = typeof LONGBOAT_UI_SCRIPT === "string" ? LONGBOAT_UI_SCRIPT : await bundleClientScript();
    return { code, hash: createHash("sha256").update(code).digest("hex").slice(0, 12) };
  })();
  cached.catch(() => {
    cached = undefined; // a failed bundle is tried again on the next request
  });
  return cached;
}
