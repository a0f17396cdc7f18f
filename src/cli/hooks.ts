/**
 * Leader-change hooks of `longboat nodehost` (docs/leader-hooks.md): the process-level half —
 * spawning the --on-leader-change command and POSTing to the --leader-webhook. The ordering,
 * superseding, timeouts and retries are src/hooks/queue.ts, which these runners plug into.
 */
import type { NodeHostEvent } from "../engine/events.ts";
import { type Env, realEnv } from "../env.ts";
import { type HookOutcome, HookQueue, type HookRunner, type LeaderChange } from "../hooks/queue.ts";
import type { NodeHost } from "../nodehost.ts";

/** Bytes of a command's stdout and of its stderr kept for the log. */
export const HOOK_OUTPUT_BYTES_MAX = 4096;
/** After SIGTERM, how long a command may take to exit before SIGKILL. */
export const HOOK_KILL_GRACE_MS = 2000;
/** POSTs per change (the first included) before the webhook gives up on it. */
export const WEBHOOK_ATTEMPTS = 10;
/** Bytes of a webhook's error response kept for the log. */
const WEBHOOK_BODY_BYTES_MAX = 512;

export interface HookOptions {
  /** Command run on every leader change of a replica of this host. */
  onLeaderChange?: string;
  /** Run the command through /bin/sh -c instead of splitting it into arguments. */
  onLeaderChangeShell: boolean;
  /** URL POSTed on every leader change. */
  leaderWebhook?: string;
  /** Longest a command or one POST may take, in milliseconds. */
  hookTimeoutMs: number;
}

export class CommandLineError extends Error {
  override name = "CommandLineError";
}

/**
 * Splits a command line into arguments as a shell would split words, without running a shell:
 * whitespace separates, single quotes keep everything literally, double quotes and backslash
 * escape; nothing is expanded ($, *, ~ stay as they are).
 */
export function splitCommandLine(text: string): string[] {
  const args: string[] = [];
  let current = "";
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) current += text[++i];
      else current += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\") {
      if (i + 1 >= text.length) throw new CommandLineError("the command ends with a lone backslash");
      current += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) args.push(current);
      current = "";
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote !== null) throw new CommandLineError(`the command has an unclosed ${quote} quote`);
  if (inWord) args.push(current);
  if (args.length === 0) throw new CommandLineError("the command is empty");
  return args;
}

/** The environment a hook command gets on top of the nodehost's own. */
export function hookEnvironment(change: LeaderChange, raftAddress: string): Record<string, string> {
  return {
    LONGBOAT_SHARD: String(change.shardId),
    LONGBOAT_REPLICA: String(change.replicaId),
    LONGBOAT_TERM: String(change.term),
    LONGBOAT_LEADER: String(change.leaderId),
    LONGBOAT_ROLE: change.role,
    LONGBOAT_RAFT_ADDRESS: raftAddress,
  };
}

/** The webhook's JSON body: the same facts; term is the fencing token. */
export function webhookBody(change: LeaderChange, raftAddress: string): Record<string, unknown> {
  return {
    shardId: change.shardId,
    replicaId: change.replicaId,
    term: change.term,
    leaderId: change.leaderId,
    role: change.role,
    raftAddress,
  };
}

/**
 * Runs the command once per change, with the LONGBOAT_* variables in its environment, in a
 * process group of its own so a timeout stops it and everything it started (SIGTERM, then
 * SIGKILL after HOOK_KILL_GRACE_MS). Exit code 0 is success; commands are never retried.
 */
export function commandRunner(opts: { command: string; shell: boolean; raftAddress: string }): HookRunner {
  const argv = opts.shell ? ["/bin/sh", "-c", opts.command] : splitCommandLine(opts.command);
  return async (change, _attempt, signal) => {
    const proc = Bun.spawn(argv, {
      env: { ...process.env, ...hookEnvironment(change, opts.raftAddress) },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      detached: true,
    });
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-proc.pid, sig);
      } catch {
        // already gone
      }
    };
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), HOOK_KILL_GRACE_MS);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    const stdout = readBounded(proc.stdout);
    const stderr = readBounded(proc.stderr);
    const exitCode = await proc.exited;
    signal.removeEventListener("abort", onAbort);
    clearTimeout(killTimer);
    // A background child may hold the pipes open: take what arrived, do not wait for it.
    const output = { stdout: await settleSoon(stdout), stderr: await settleSoon(stderr) };
    const detail = { exitCode, signal: proc.signalCode ?? undefined, ...output };
    return exitCode === 0 ? { ok: true, detail } : { ok: false, retry: false, detail };
  };
}

/**
 * POSTs the change as JSON (header `Longboat-Term` = the term, the fencing token). 2xx is
 * success; a network error, a timeout, 408, 425, 429 and 5xx are retried; any other status is
 * the receiver's final answer (409 for a stale term, say) and is not.
 */
export function webhookRunner(opts: {
  url: string;
  raftAddress: string;
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}): HookRunner {
  const post = opts.fetch ?? ((url: string, init: RequestInit) => fetch(url, init));
  return async (change, attempt, signal): Promise<HookOutcome> => {
    let res: Response;
    try {
      res = await post(opts.url, {
        method: "POST",
        headers: { "content-type": "application/json", "longboat-term": String(change.term) },
        body: JSON.stringify(webhookBody(change, opts.raftAddress)),
        signal,
      });
    } catch (error) {
      return { ok: false, retry: true, detail: { attempt, error: String(error) } };
    }
    const status = res.status;
    if (status >= 200 && status < 300) {
      await res.body?.cancel();
      return { ok: true, detail: { status } };
    }
    const body = (await res.text().catch(() => "")).slice(0, WEBHOOK_BODY_BYTES_MAX);
    const retry = status === 408 || status === 425 || status === 429 || status >= 500;
    return { ok: false, retry, detail: { status, body } };
  };
}

export interface RunningHooks {
  /** Waits (at most timeoutMs) for every queued and running notification to finish. */
  drain(timeoutMs: number): Promise<boolean>;
  /** Drops what is queued and stops what runs (commands are killed); resolves when they ended. */
  close(): Promise<void>;
}

/**
 * Subscribes the configured hooks to the NodeHost's roleChanged events. Call before any replica
 * starts so no event is missed. Returns null when no hook is configured.
 */
export function startHooks(
  nh: NodeHost,
  options: HookOptions,
  log: (event: Record<string, unknown>) => void,
  env: Env = realEnv(),
): RunningHooks | null {
  const queues: HookQueue[] = [];
  if (options.onLeaderChange !== undefined) {
    const run = commandRunner({
      command: options.onLeaderChange,
      shell: options.onLeaderChangeShell,
      raftAddress: nh.raftAddress,
    });
    queues.push(
      new HookQueue({ name: "command", env, timeoutMs: options.hookTimeoutMs, maxAttempts: 1, run, log }),
    );
  }
  if (options.leaderWebhook !== undefined) {
    const run = webhookRunner({ url: options.leaderWebhook, raftAddress: nh.raftAddress });
    queues.push(
      new HookQueue({
        name: "webhook",
        env,
        timeoutMs: options.hookTimeoutMs,
        maxAttempts: WEBHOOK_ATTEMPTS,
        run,
        log,
      }),
    );
  }
  if (queues.length === 0) return null;
  const offer = (change: LeaderChange) => {
    for (const q of queues) q.offer(change);
  };
  const sub = nh.subscribe(
    (e: NodeHostEvent) => {
      if (e.kind === "roleChanged") offer(e);
      else if (e.kind === "eventsDropped") resync(nh, offer, log, e.count);
    },
    { kinds: ["roleChanged"], name: "hooks", queueMax: 65_536 },
  );
  return {
    async drain(timeoutMs: number): Promise<boolean> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const idle = Promise.all(queues.map((q) => q.whenIdle())).then(() => true);
      const done = await Promise.race([idle, timeout]);
      clearTimeout(timer);
      return done;
    },
    async close(): Promise<void> {
      sub.close();
      for (const q of queues) q.close();
      await Promise.all(queues.map((q) => q.whenIdle()));
    },
  };
}

/** After lost events, every shard's current role is offered again (stale terms are dropped). */
function resync(
  nh: NodeHost,
  offer: (c: LeaderChange) => void,
  log: (event: Record<string, unknown>) => void,
  lost: number,
): void {
  log({ level: "warn", event: "hook-events-lost", count: lost });
  for (const s of nh.getNodeHostInfo({ skipLogInfo: true }).shards) {
    const r = nh.getLeaderRole(s.shardId);
    offer({ shardId: s.shardId, replicaId: s.replicaId, ...r });
  }
}

/** Reads a stream to its end, keeping its first HOOK_OUTPUT_BYTES_MAX bytes as text. */
async function readBounded(stream: ReadableStream<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  let kept = 0;
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.byteLength;
    if (kept >= HOOK_OUTPUT_BYTES_MAX) continue;
    const part = chunk.subarray(0, HOOK_OUTPUT_BYTES_MAX - kept);
    chunks.push(part);
    kept += part.byteLength;
  }
  const text = new TextDecoder().decode(Buffer.concat(chunks));
  return total > kept ? `${text}… (${total - kept} more bytes)` : text;
}

/** The stream's text if it ends within 200 ms, else a note saying it was still open. */
async function settleSoon(text: Promise<string>): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("(output still open: a background process holds it)"), 200);
  });
  const result = await Promise.race([text, late]);
  clearTimeout(timer);
  return result;
}
