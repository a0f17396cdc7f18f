import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Env } from "../env.ts";
import { LOCAL_MESSAGE_TYPES, type Message } from "../raft/types.ts";
import { BATCH_OVERHEAD_BYTES_MAX, encodeBatch } from "./codec.ts";
import { SendQueue, TransportCore } from "./core.ts";
import { FrameError } from "./errors.ts";
import { encodeFrame, FrameDecoder } from "./frame.ts";
import { type ResolvedOptions, resolveOptions, type TransportOptions } from "./options.ts";
import { clearIncoming, SnapshotAssembler, SnapshotChunker, type TransportFaults } from "./snapshot.ts";
import {
  emptyStats,
  type Registry,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from "./types.ts";

/** How one directed link behaves. Rates are probabilities in [0, 1]. */
export interface LinkSettings {
  delayMsMin: number;
  delayMsMax: number;
  lossRate: number;
  duplicateRate: number;
  /** When false a link is FIFO: a frame never overtakes one sent before it. */
  reorder: boolean;
}

export const DEFAULT_LINK: Readonly<LinkSettings> = Object.freeze({
  delayMsMin: 1,
  delayMsMax: 1,
  lossRate: 0,
  duplicateRate: 0,
  reorder: false,
});

/** Frames held per clogged link before further ones are dropped. */
export const CLOG_FRAMES_MAX = 10_000;

type SimTransportOptions = Partial<Omit<TransportOptions, "address" | "deploymentId" | "registry" | "env">>;

/**
 * The network every simulated NodeHost shares, driven by one Env (its clock and randomness),
 * so a run replays exactly from its seed. Frames are real encoded MessageBatch frames, so the
 * receive path (deployment, format, validation, size limits) is the one HTTP/2 uses.
 * @example
 * const net = new SimNetwork(new ManualEnv(7));
 * const t1 = net.transport("10.0.0.1:7001", 1, registry);
 * net.setLink("10.0.0.1:7001", "10.0.0.2:7001", { lossRate: 0.1 });
 * net.partition("10.0.0.1:7001", "10.0.0.2:7001", true); // one way: 1 → 2 dropped
 */
export class SimNetwork {
  private readonly transports = new Map<string, SimTransport>();
  private readonly links = new Map<string, LinkSettings>();
  private readonly lastDeliveryMs = new Map<string, number>();
  private readonly blocked = new Set<string>();
  private readonly isolated = new Set<string>();
  private readonly clogged = new Set<string>();
  private readonly clogQueues = new Map<string, Array<() => void>>();
  /** Per sender: bumped by loseInFlight, so frames carried before it never arrive. */
  private readonly epochs = new Map<string, number>();
  private defaultLink: LinkSettings = { ...DEFAULT_LINK };
  private snapshotRoot: string | null;

  constructor(
    readonly env: Env,
    options: { snapshotDir?: string } = {},
  ) {
    this.snapshotRoot = options.snapshotDir ?? null;
  }

  /** Creates the simulated transport of the NodeHost at address. */
  transport(
    address: string,
    deploymentId: number,
    registry: Registry,
    options: SimTransportOptions = {},
  ): SimTransport {
    const running = this.transports.get(address);
    if (running !== undefined && !running.stopped) {
      throw new Error(`simulated address ${address} is already in use by a running transport`);
    }
    const snapshotDir = options.snapshotDir ?? join(this.root(), address.replace(/[^\w.-]/g, "_"));
    const t = new SimTransport(this, {
      ...options,
      address,
      deploymentId,
      registry,
      env: this.env,
      snapshotDir,
    });
    this.transports.set(address, t);
    return t;
  }

  setDefaultLink(settings: Partial<LinkSettings>): void {
    this.defaultLink = checkLink({ ...this.defaultLink, ...settings });
  }

  setLink(from: string, to: string, settings: Partial<LinkSettings>): void {
    this.links.set(linkKey(from, to), checkLink({ ...this.link(from, to), ...settings }));
  }

  /** Drops everything between a and b (only a → b when oneWay). */
  partition(a: string, b: string, oneWay = false): void {
    this.blocked.add(linkKey(a, b));
    if (!oneWay) this.blocked.add(linkKey(b, a));
  }

  /** Cuts address off from every other NodeHost. */
  isolate(address: string): void {
    this.isolated.add(address);
  }

  /** Ends the isolation of one address (partitions and other isolations stay). */
  unisolate(address: string): void {
    this.isolated.delete(address);
  }

  /**
   * A power loss at address: every frame it sent that has not arrived yet (in flight, held
   * by a clog, or still queued in its transport) is lost, as a machine's send buffers are.
   */
  loseInFlight(address: string): void {
    this.epochs.set(address, (this.epochs.get(address) ?? 0) + 1);
    this.transports.get(address)?.dropQueued();
  }

  /** Removes every partition and isolation (clogs stay until unclog). */
  heal(): void {
    this.blocked.clear();
    this.isolated.clear();
  }

  /** Holds every frame to or from address (up to CLOG_FRAMES_MAX per link) until unclog. */
  clog(address: string): void {
    this.clogged.add(address);
  }

  unclog(address: string): void {
    this.clogged.delete(address);
    for (const [key, held] of [...this.clogQueues]) {
      const [from, to] = key.split(">") as [string, string];
      if (this.clogged.has(from) || this.clogged.has(to)) continue;
      this.clogQueues.delete(key);
      for (const release of held) release();
    }
  }

  /** True when a frame from → to would be dropped by a partition or isolation now. */
  isCut(from: string, to: string): boolean {
    return this.blocked.has(linkKey(from, to)) || this.isolated.has(from) || this.isolated.has(to);
  }

  /** A running transport at address, or undefined (stopped or never started). */
  running(address: string): SimTransport | undefined {
    const t = this.transports.get(address);
    return t?.started && !t.stopped ? t : undefined;
  }

  /** Sends one frame over the link; false when the target is not running (connection refused). */
  sendFrame(from: string, to: string, frame: Uint8Array): boolean {
    if (this.running(to) === undefined) return false;
    this.carry(from, to, () => this.running(to)?.receiveFrame(frame, from), true);
    return true;
  }

  /**
   * Moves one unit (frame or whole snapshot) from → to through the link's faults, calling
   * deliver at arrival, or onLost when it is lost, cut or overflows a clog.
   */
  carry(from: string, to: string, deliver: () => void, mayDuplicate: boolean, onLost?: () => void): void {
    if (this.isCut(from, to) || this.env.random() < this.link(from, to).lossRate) {
      onLost?.();
      return;
    }
    const epoch = this.epochs.get(from) ?? 0;
    const key = linkKey(from, to);
    if (this.clogged.has(from) || this.clogged.has(to)) {
      let held = this.clogQueues.get(key);
      if (held === undefined) {
        held = [];
        this.clogQueues.set(key, held);
      }
      if (held.length >= CLOG_FRAMES_MAX) onLost?.();
      else held.push(() => this.schedule(from, to, epoch, deliver, mayDuplicate, onLost));
      return;
    }
    this.schedule(from, to, epoch, deliver, mayDuplicate, onLost);
  }

  private schedule(
    from: string,
    to: string,
    epoch: number,
    deliver: () => void,
    mayDuplicate: boolean,
    onLost?: () => void,
  ): void {
    const link = this.link(from, to);
    const key = linkKey(from, to);
    const arrive = () => {
      if (this.isCut(from, to) || (this.epochs.get(from) ?? 0) !== epoch) onLost?.();
      else deliver();
    };
    const copies = mayDuplicate && this.env.random() < link.duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delayMs = link.delayMsMin + this.env.nextInt(link.delayMsMax - link.delayMsMin + 1);
      let atMs = this.env.nowMs() + delayMs;
      if (!link.reorder) {
        atMs = Math.max(atMs, this.lastDeliveryMs.get(key) ?? 0);
        this.lastDeliveryMs.set(key, atMs);
      }
      this.env.setTimer(atMs - this.env.nowMs(), arrive);
    }
  }

  private link(from: string, to: string): LinkSettings {
    return this.links.get(linkKey(from, to)) ?? this.defaultLink;
  }

  private root(): string {
    if (this.snapshotRoot === null) this.snapshotRoot = mkdtempSync(join(tmpdir(), "longboat-simnet-"));
    return this.snapshotRoot;
  }
}

function linkKey(from: string, to: string): string {
  return `${from}>${to}`;
}

function checkLink(l: LinkSettings): LinkSettings {
  const errors: string[] = [];
  if (!Number.isInteger(l.delayMsMin) || l.delayMsMin < 0)
    errors.push(`delayMsMin ${l.delayMsMin} must be ≥ 0`);
  if (!Number.isInteger(l.delayMsMax) || l.delayMsMax < l.delayMsMin) {
    errors.push(`delayMsMax ${l.delayMsMax} must be an integer ≥ delayMsMin ${l.delayMsMin}`);
  }
  for (const k of ["lossRate", "duplicateRate"] as const) {
    if (!(l[k] >= 0 && l[k] <= 1)) errors.push(`${k} ${l[k]} must be in [0, 1]`);
  }
  if (errors.length > 0) throw new RangeError(`invalid link settings: ${errors.join("; ")}`);
  return l;
}

/** The Transport of one simulated NodeHost (create it with SimNetwork.transport). */
export class SimTransport implements Transport {
  /** Test-only fault injection. */
  readonly faults: TransportFaults = { corruptSnapshotChunkIndex: -1 };
  started = false;
  stopped = false;
  private readonly o: ResolvedOptions;
  private readonly core: TransportCore;
  private readonly queues = new Map<string, SendQueue>();
  private flushScheduled = false;
  private snapshotsOut = 0;
  private snapshotSeq = 0;

  constructor(
    private readonly net: SimNetwork,
    options: TransportOptions,
  ) {
    this.o = resolveOptions(options);
    this.core = new TransportCore(this.o, emptyStats());
  }

  get address(): string {
    return this.o.address;
  }

  stats(): TransportStats {
    return { ...this.core.stats };
  }

  async start(handler: TransportHandler): Promise<void> {
    if (this.started) throw new Error(`simulated transport ${this.address} already started`);
    clearIncoming(this.o.fs, this.o.snapshotDir);
    this.core.handler = handler;
    this.started = true;
  }

  send(m: Message): boolean {
    if (LOCAL_MESSAGE_TYPES.has(m.type)) throw new Error(`send: message type ${m.type} is local, never sent`);
    if (!this.started || this.stopped) return false;
    const address = this.o.registry.resolve(m.shardId, m.to);
    if (address === undefined) return false;
    const sizeBytes = this.core.sizeOf(m);
    if (sizeBytes > this.o.maxMessageBytes) {
      this.core.stats.messagesDroppedTooLarge++;
      this.core.reportUnreachable(m.shardId, m.to);
      return false;
    }
    let q = this.queues.get(address);
    if (q === undefined) {
      if (this.queues.size >= this.o.maxPeers) return false;
      q = new SendQueue(this.o.maxSendQueueMessages, this.o.maxSendQueueBytes);
      this.queues.set(address, q);
    }
    if (!q.push(m, sizeBytes)) {
      this.core.stats.messagesDroppedQueueFull++;
      this.core.logOnce.emit(`queue-full:${address}`, { event: "send-queue-full", target: address });
      this.core.reportUnreachable(m.shardId, m.to);
      return false;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return true;
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.stopped) return;
    const header = { deploymentId: this.o.deploymentId, sourceAddress: this.address };
    for (const [address, q] of this.queues) {
      while (q.length > 0) {
        const batch = q.take(this.o.maxFrameBytes - BATCH_OVERHEAD_BYTES_MAX);
        const payload = encodeBatch(header, batch);
        if (!this.net.sendFrame(this.address, address, encodeFrame(payload))) {
          this.core.stats.connectFailures++;
          this.core.dropUnreachable(batch);
          continue;
        }
        this.core.stats.batchesSent++;
        this.core.stats.messagesSent += batch.length;
        this.core.stats.bytesSent += payload.byteLength;
      }
    }
  }

  /** Called by the network when a frame arrives from another simulated NodeHost. */
  receiveFrame(frame: Uint8Array, from: string): void {
    if (this.stopped) return;
    let payloads: Uint8Array[];
    try {
      payloads = new FrameDecoder(this.o.maxFrameBytes).push(frame);
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      this.core.stats.framesRefused++;
      this.core.logOnce.emit(`frame:${e.kind}:${from}`, {
        event: "frame-refused",
        remote: from,
        error: e.message,
      });
      return;
    }
    for (const p of payloads) this.core.receiveBatch(p, from);
  }

  sendSnapshot(m: Message): boolean {
    if (!this.started || this.stopped || this.snapshotsOut >= this.o.maxSnapshotStreamsOut) return false;
    const address = this.o.registry.resolve(m.shardId, m.to);
    if (address === undefined || this.net.running(address) === undefined) return false;
    const chunks: Uint8Array[] = [];
    try {
      const chunker = new SnapshotChunker(
        this.o.fs,
        m,
        this.header(),
        this.o.snapshotChunkBytes,
        this.faults,
      );
      for (let c = chunker.next(); c !== null; c = chunker.next()) chunks.push(encodeFrame(c));
    } catch (e) {
      this.o.log?.({ event: "snapshot-send-refused", target: address, error: String(e) });
      return false;
    }
    this.snapshotsOut++;
    const done = (ok: boolean) => {
      this.snapshotsOut--;
      if (ok) this.core.stats.snapshotsSent++;
      else this.core.stats.snapshotsSendFailed++;
      const h = this.core.handler;
      if (h !== null && !this.stopped)
        this.core.guard("onSnapshotStatus", () => h.onSnapshotStatus(m.shardId, m.to, !ok));
    };
    this.net.carry(
      this.address,
      address,
      () => {
        const target = this.net.running(address);
        done(target?.receiveSnapshot(chunks, this.address) === true);
      },
      false,
      () => this.net.env.setTimer(0, () => done(false)),
    );
    return true;
  }

  /** Assembles a whole snapshot stream at once; true when it was verified and handed over. */
  receiveSnapshot(frames: Uint8Array[], from: string): boolean {
    const asm = new SnapshotAssembler(
      {
        fs: this.o.fs,
        dir: this.o.snapshotDir,
        deploymentId: this.o.deploymentId,
        maxFileBytes: this.o.maxSnapshotFileBytes,
      },
      `snapshot-${++this.snapshotSeq}-${Math.floor(this.o.env.random() * 2 ** 32).toString(36)}`,
    );
    let result: Message | null = null;
    try {
      const decoder = new FrameDecoder(this.o.maxFrameBytes);
      for (const f of frames) {
        for (const p of decoder.push(f)) {
          if (result !== null) throw new Error("data after the last snapshot chunk");
          result = asm.push(p);
        }
      }
      if (result === null) throw new Error("snapshot stream ended before its last chunk");
    } catch (e) {
      asm.abort();
      this.core.stats.snapshotsRefused++;
      this.core.logOnce.emit(`snapshot-refused:${from}`, {
        event: "snapshot-refused",
        remote: from,
        error: String(e),
      });
      return false;
    }
    this.core.stats.snapshotsReceived++;
    const message: Message = result;
    const h = this.core.handler;
    if (h !== null) this.core.guard("onSnapshotReceived", () => h.onSnapshotReceived(message));
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.queues.clear();
  }

  /** Forgets every message queued and not yet flushed (SimNetwork.loseInFlight). */
  dropQueued(): void {
    this.queues.clear();
  }

  private header() {
    return { deploymentId: this.o.deploymentId, sourceAddress: this.address };
  }
}
