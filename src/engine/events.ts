import type { Member, Membership } from "../raft/types.ts";

/**
 * What a NodeHost tells the application that listens: typed events, delivered off the engine
 * loop through a bounded queue per listener (EventHub below).
 *
 * ```ts
 * const sub = nh.subscribe((e) => {
 *   if (e.kind === "roleChanged" && e.role === "leader") startSingletonJob(e.shardId, e.term);
 * }, { kinds: ["roleChanged"] });
 * // … later
 * sub.close();
 * ```
 */

/**
 * What this replica may act on (docs/leader-hooks.md): `leader` only while it leads the term,
 * has committed an entry of that term and has heard from a quorum of voters within the last
 * election timeout; `follower` while it knows another replica as leader; `none` otherwise.
 */
export type LeaderRole = "leader" | "follower" | "none";

interface ReplicaEventBase {
  shardId: number;
  replicaId: number;
}

/** The Raft core's view changed: the replica learned of a leader (0: none) or a new term. */
export interface LeaderUpdatedEvent extends ReplicaEventBase {
  kind: "leaderUpdated";
  term: number;
  leaderId: number;
}

/**
 * The view hooks act on changed (see LeaderRole). Per replica the terms of these events never
 * decrease, and at most one replica of a shard is ever told "leader" for one term.
 */
export interface RoleChangedEvent extends ReplicaEventBase {
  kind: "roleChanged";
  role: LeaderRole;
  term: number;
  /** The leader this replica acts on: itself when role is leader, 0 when role is none. */
  leaderId: number;
}

export interface MembershipChangedEvent extends ReplicaEventBase {
  kind: "membershipChanged";
  /** Log index of the config change that made this membership (0 for the initial one). */
  configChangeId: number;
  voting: Member[];
  nonVoting: Member[];
  witnesses: Member[];
  removed: number[];
}

export interface SnapshotCreatedEvent extends ReplicaEventBase {
  kind: "snapshotCreated";
  index: number;
}

export interface SnapshotReceivedEvent extends ReplicaEventBase {
  kind: "snapshotReceived";
  index: number;
  /** Replica id of the sender (the leader). */
  from: number;
}

/** The state machine was rebuilt from a snapshot (one received, or the latest one at start). */
export interface SnapshotRecoveredEvent extends ReplicaEventBase {
  kind: "snapshotRecovered";
  index: number;
}

/** Log entries up to and including index were removed (they are in a snapshot). */
export interface LogCompactedEvent extends ReplicaEventBase {
  kind: "logCompacted";
  index: number;
}

/** The replica runs on this NodeHost (started, its snapshot and log loaded). */
export interface ReplicaReadyEvent extends ReplicaEventBase {
  kind: "replicaReady";
}

export interface ReplicaStoppedEvent extends ReplicaEventBase {
  kind: "replicaStopped";
  reason: string;
}

/** This replica has known no leader for electionTimeouts election timeouts in a row. */
export interface ShardUnavailableEvent extends ReplicaEventBase {
  kind: "shardUnavailable";
  term: number;
  electionTimeouts: number;
}

/** This replica knows a leader again after a shardUnavailable. */
export interface ShardAvailableEvent extends ReplicaEventBase {
  kind: "shardAvailable";
  term: number;
  leaderId: number;
}

/** Proposals the Raft core refused in one engine cycle (no leader, transfer, rate limit). */
export interface ProposalDroppedEvent extends ReplicaEventBase {
  kind: "proposalDropped";
  count: number;
}

/** Reads refused in one engine cycle (no leader able to serve reads, leader changed). */
export interface ReadDroppedEvent extends ReplicaEventBase {
  kind: "readDropped";
  count: number;
}

/**
 * Delivered to one listener only, before its next event, after its queue overflowed: count
 * events were dropped for it (shardId, replicaId and seq are 0).
 */
export interface EventsDroppedEvent extends ReplicaEventBase {
  kind: "eventsDropped";
  count: number;
}

/** Every event without its sequence number (what the engine publishes). */
export type EventBody =
  | LeaderUpdatedEvent
  | RoleChangedEvent
  | MembershipChangedEvent
  | SnapshotCreatedEvent
  | SnapshotReceivedEvent
  | SnapshotRecoveredEvent
  | LogCompactedEvent
  | ReplicaReadyEvent
  | ReplicaStoppedEvent
  | ShardUnavailableEvent
  | ShardAvailableEvent
  | ProposalDroppedEvent
  | ReadDroppedEvent
  | EventsDroppedEvent;

/** An event as a listener receives it: seq grows by one per published event of the NodeHost. */
export type NodeHostEvent = EventBody & { seq: number };

export type EventKind = EventBody["kind"];

export const EVENT_KINDS: readonly EventKind[] = [
  "leaderUpdated",
  "roleChanged",
  "membershipChanged",
  "snapshotCreated",
  "snapshotReceived",
  "snapshotRecovered",
  "logCompacted",
  "replicaReady",
  "replicaStopped",
  "shardUnavailable",
  "shardAvailable",
  "proposalDropped",
  "readDropped",
  "eventsDropped",
];

export type EventOf<K extends EventKind> = Extract<NodeHostEvent, { kind: K }>;

/** A method per event kind, all optional (NodeHostConfig.listener); delivered like subscribe(). */
export type EventListener = { [K in EventKind]?: (event: EventOf<K>) => void | Promise<void> };

/** A listener function; a returned promise is awaited before the next event is delivered. */
export type EventHandler = (event: NodeHostEvent) => void | Promise<void>;

export interface SubscribeOptions {
  /** Only these kinds (default: every kind). eventsDropped always passes. */
  kinds?: readonly EventKind[];
  /** Only events of this shard (default: every shard). */
  shardId?: number;
  /** Events that may wait for this listener; beyond it new events are dropped and counted. Default 1024. */
  queueMax?: number;
  /** Name in metrics and logs. Default `listener-<n>`. */
  name?: string;
}

export interface Subscription {
  readonly name: string;
  /** Events this listener was handed (its function returned or its promise settled). */
  readonly delivered: number;
  /** Events dropped because its queue was full. */
  readonly dropped: number;
  /** Events waiting for it now. */
  readonly queued: number;
  /** Stops delivery; queued events are discarded. */
  close(): void;
}

export interface ListenerStats {
  name: string;
  delivered: number;
  dropped: number;
  queued: number;
}

export const EVENT_QUEUE_MAX_DEFAULT = 1024;
/** Upper bound of SubscribeOptions.queueMax. */
export const EVENT_QUEUE_MAX_LIMIT = 1 << 20;
/** Listeners per NodeHost (each costs a queue and a share of every publish). */
export const LISTENER_COUNT_MAX = 256;
/**
 * Events one listener is handed per macrotask: a burst of events never holds the thread longer
 * than this many synchronous listener calls before timers and I/O (the engine's ticks) run.
 */
export const EVENTS_PER_TURN_MAX = 64;

/** What the hub needs from its environment (an Env satisfies it). */
export interface EventHubEnv {
  defer(fn: () => void): void;
}

/**
 * Fans events out to listeners, each with its own bounded FIFO queue drained in a later
 * macrotask (env.defer): publishing is a few array pushes, so the engine never waits for a
 * listener, and a listener that throws, rejects, hangs or is slow only loses its own events
 * (counted in `dropped`, announced by an eventsDropped event). A listener that blocks the
 * thread synchronously blocks the process: JavaScript has one; do slow work asynchronously.
 */
export class EventHub {
  private readonly subs = new Set<Sub>();
  private seq = 0;
  private named = 0;

  constructor(
    private readonly env: EventHubEnv,
    private readonly onError: (name: string, error: unknown) => void,
  ) {}

  /** True when some listener would receive an event of this kind (lets callers skip building it). */
  wants(kind: EventKind): boolean {
    for (const s of this.subs) if (s.kinds === null || s.kinds.has(kind)) return true;
    return false;
  }

  publish(body: EventBody): void {
    if (this.subs.size === 0) return;
    const event = { ...body, seq: ++this.seq } as NodeHostEvent;
    for (const s of this.subs) s.offer(event);
  }

  subscribe(handler: EventHandler, opts: SubscribeOptions = {}): Subscription {
    if (typeof handler !== "function") throw new TypeError("subscribe: the listener must be a function");
    if (this.subs.size >= LISTENER_COUNT_MAX) {
      throw new RangeError(`subscribe: at most ${LISTENER_COUNT_MAX} listeners per NodeHost`);
    }
    const queueMax = opts.queueMax ?? EVENT_QUEUE_MAX_DEFAULT;
    if (!Number.isSafeInteger(queueMax) || queueMax < 1 || queueMax > EVENT_QUEUE_MAX_LIMIT) {
      throw new RangeError(
        `subscribe: queueMax must be an integer in 1..${EVENT_QUEUE_MAX_LIMIT}, got ${queueMax}`,
      );
    }
    for (const k of opts.kinds ?? []) {
      if (!EVENT_KINDS.includes(k)) {
        throw new RangeError(`subscribe: unknown event kind "${k}" (one of ${EVENT_KINDS.join(", ")})`);
      }
    }
    const name = opts.name ?? `listener-${++this.named}`;
    const sub = new Sub(name, handler, opts, queueMax, this.env, (error) => this.onError(name, error));
    this.subs.add(sub);
    sub.onClose = () => this.subs.delete(sub);
    return sub;
  }

  stats(): ListenerStats[] {
    return [...this.subs].map((s) => ({
      name: s.name,
      delivered: s.delivered,
      dropped: s.dropped,
      queued: s.queued,
    }));
  }

  /** Closes every subscription (the NodeHost stops). */
  closeAll(): void {
    for (const s of [...this.subs]) s.close();
  }
}

class Sub implements Subscription {
  readonly kinds: ReadonlySet<EventKind> | null;
  private readonly shardId: number | undefined;
  private queue: NodeHostEvent[] = [];
  private head = 0;
  private draining = false;
  private closed = false;
  /** Drops not yet announced to the listener. */
  private unannounced = 0;
  delivered = 0;
  dropped = 0;
  onClose: () => void = () => {};

  constructor(
    readonly name: string,
    private readonly handler: EventHandler,
    opts: SubscribeOptions,
    private readonly queueMax: number,
    private readonly env: EventHubEnv,
    private readonly onError: (error: unknown) => void,
  ) {
    this.kinds = opts.kinds ? new Set(opts.kinds) : null;
    this.shardId = opts.shardId;
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  offer(event: NodeHostEvent): void {
    if (this.closed) return;
    if (this.kinds !== null && !this.kinds.has(event.kind)) return;
    if (this.shardId !== undefined && event.shardId !== this.shardId) return;
    if (this.queued >= this.queueMax) {
      this.dropped++;
      this.unannounced++;
      return;
    }
    if (this.unannounced > 0) {
      // One slot beyond queueMax at most: the notice goes right before the first event kept.
      const count = this.unannounced;
      this.unannounced = 0;
      this.queue.push({ kind: "eventsDropped", shardId: 0, replicaId: 0, count, seq: 0 });
    }
    this.queue.push(event);
    this.schedule();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.onClose();
  }

  private schedule(): void {
    if (this.draining) return;
    this.draining = true;
    this.env.defer(() => void this.drain());
  }

  /** Hands queued events to the listener in order, awaiting a returned promise before the next. */
  private async drain(): Promise<void> {
    for (let n = 0; ; n++) {
      if (this.closed || this.queued === 0) {
        this.draining = false;
        return;
      }
      if (n >= EVENTS_PER_TURN_MAX) {
        this.env.defer(() => void this.drain()); // let timers and I/O run between bursts
        return;
      }
      const event = this.take();
      try {
        const result = this.handler(event);
        if (result !== undefined && typeof (result as Promise<void>).then === "function") await result;
      } catch (error) {
        this.onError(error);
      }
      this.delivered++;
    }
  }

  private take(): NodeHostEvent {
    const event = this.queue[this.head]!;
    this.queue[this.head] = undefined as unknown as NodeHostEvent;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return event;
  }
}

/** The membershipChanged event body of a membership (copied: the listener runs later). */
export function membershipEvent(shardId: number, replicaId: number, m: Membership): MembershipChangedEvent {
  const copy = (list: Member[]) => list.map((x) => ({ replicaId: x.replicaId, address: x.address }));
  return {
    kind: "membershipChanged",
    shardId,
    replicaId,
    configChangeId: m.configChangeId,
    voting: copy(m.addresses),
    nonVoting: copy(m.nonVotings),
    witnesses: copy(m.witnesses),
    removed: [...m.removed],
  };
}

/** Dispatches an event to the matching method of a method-style listener. */
export function listenerHandler(listener: EventListener): EventHandler {
  return (event) => {
    const fn = listener[event.kind] as ((e: NodeHostEvent) => void | Promise<void>) | undefined;
    return fn?.call(listener, event);
  };
}
