import { type Env, realEnv } from "../env.ts";
import { longboat } from "../pb/longboat.js";
import { Session } from "../engine/session.ts";
import { isConnectCode, NOT_APPLIED_CODES, neverSent, OUTCOME_UNKNOWN_CODES } from "./errors.ts";
import { METHOD_TYPES, SERVICE } from "./method-types.ts";
import { EnvelopeReader, encodeEnvelope, FLAG_CONNECT_END_STREAM } from "./rpc/envelope.ts";
import { iterateStream } from "./rpc/exchange.ts";
import type { MethodName } from "./schemas.ts";
import type { FetchLike } from "./types.ts";

const pb = longboat.nodehost.v1;

/** An error answered by a NodeHost (or a failure to reach one): Connect code, message, address. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly code: string,
    /** The message without address and code. */
    readonly detail: string,
    readonly address: string,
  ) {
    super(`${address}: ${code}: ${detail}`);
  }

  /** True when the request was certainly not applied (`unavailable`): retrying it is safe. */
  get notApplied(): boolean {
    return NOT_APPLIED_CODES.has(this.code);
  }

  /** True when the request may or may not have been applied. */
  get outcomeUnknown(): boolean {
    return OUTCOME_UNKNOWN_CODES.has(this.code);
  }
}

export interface ResponseTypes {
  GetSession: longboat.nodehost.v1.GetSessionResponse;
  CloseSession: longboat.nodehost.v1.CloseSessionResponse;
  Propose: longboat.nodehost.v1.ProposeResponse;
  Read: longboat.nodehost.v1.ReadResponse;
  StaleRead: longboat.nodehost.v1.StaleReadResponse;
  AddReplica: longboat.nodehost.v1.AddReplicaResponse;
  DeleteReplica: longboat.nodehost.v1.DeleteReplicaResponse;
  GetMembership: longboat.nodehost.v1.GetMembershipResponse;
  TransferLeader: longboat.nodehost.v1.TransferLeaderResponse;
  RequestSnapshot: longboat.nodehost.v1.RequestSnapshotResponse;
  Status: longboat.nodehost.v1.StatusResponse;
  RemoveData: longboat.nodehost.v1.RemoveDataResponse;
  Compact: longboat.nodehost.v1.CompactResponse;
  QueryRaftLog: longboat.nodehost.v1.QueryRaftLogResponse;
}

/** What a backup holds (NodeHostClient.backup). */
export interface BackupInfo {
  /** API address of the NodeHost that took the snapshot. */
  address: string;
  shardId: number;
  replicaId: number;
  index: number;
  term: number;
  sizeBytes: number;
  /** CRC-32 of the snapshot file's header and payload (its trailer repeats it). */
  checksum: number;
  deploymentId: number;
  app: string;
}

/** The largest ExportSnapshot message the client accepts (the server sends 1 MiB chunks). */
const EXPORT_MESSAGE_MAX_BYTES = 8 * 1024 * 1024;

/** One ExportSnapshot call over the Connect streaming protocol. */
class ExportStream {
  /** Whether any byte of the snapshot reached write() (then the call is never retried elsewhere). */
  wrote = false;

  constructor(
    private readonly address: string,
    private readonly timeoutMs: number,
    private readonly env: Pick<Env, "setTimer">,
  ) {}

  async run(
    fetchFn: FetchLike,
    request: Uint8Array,
    token: string | undefined,
    write: (chunk: Uint8Array) => void | Promise<void>,
    onProgress: ((doneBytes: number, info: BackupInfo) => void) | undefined,
  ): Promise<BackupInfo> {
    const headers: Record<string, string> = {
      "content-type": "application/connect+proto",
      "connect-protocol-version": "1",
    };
    if (token) headers.authorization = `Bearer ${token}`;
    const abort = new AbortController();
    let timer = this.env.setTimer(this.timeoutMs, () => abort.abort());
    let info: BackupInfo | null = null;
    let done = 0;
    try {
      const res = await fetchFn(`http://${this.address}/${SERVICE}/ExportSnapshot`, {
        method: "POST",
        headers,
        body: encodeEnvelope(0, request),
        signal: abort.signal,
      });
      if (res.status !== 200 || !res.body) {
        throw errorFrom(res.status, new Uint8Array(await res.arrayBuffer()), this.address);
      }
      const reader = new EnvelopeReader(iterateStream(res.body), {
        maxMessageBytes: EXPORT_MESSAGE_MAX_BYTES,
        what: `ExportSnapshot from ${this.address}`,
      });
      for await (const envelope of reader) {
        timer.cancel();
        timer = this.env.setTimer(this.timeoutMs, () => abort.abort());
        if ((envelope.flags & FLAG_CONNECT_END_STREAM) !== 0) {
          const end = JSON.parse(fromUtf8.decode(envelope.data)) as {
            error?: { code?: string; message?: string };
          };
          if (end.error)
            throw new ApiError(end.error.code ?? "unknown", end.error.message ?? "", this.address);
          break;
        }
        const m = pb.ExportSnapshotResponse.decode(envelope.data);
        if (m.info) {
          info = infoOf(m.info, this.address);
          onProgress?.(0, info);
        } else if (m.data && info !== null) {
          this.wrote = true;
          await write(m.data);
          done += m.data.byteLength;
          onProgress?.(done, info);
        } else {
          throw new ApiError("internal", "ExportSnapshot sent data before its info", this.address);
        }
      }
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (abort.signal.aborted) {
        throw new ApiError("deadline_exceeded", `no message within ${this.timeoutMs} ms`, this.address);
      }
      throw new ApiError(
        "unavailable",
        `the snapshot stream broke: ${(error as Error).message}`,
        this.address,
      );
    } finally {
      timer.cancel();
    }
    if (info === null)
      throw new ApiError("internal", "ExportSnapshot ended without the snapshot's info", this.address);
    if (done !== info.sizeBytes) {
      throw new ApiError(
        "data_loss",
        `the snapshot stream ended after ${done} of ${info.sizeBytes} bytes`,
        this.address,
      );
    }
    return info;
  }
}

function infoOf(i: longboat.nodehost.v1.IExportSnapshotInfo, address: string): BackupInfo {
  return {
    address,
    shardId: Number(i.shardId ?? 0),
    replicaId: Number(i.replicaId ?? 0),
    index: Number(i.index ?? 0),
    term: Number(i.term ?? 0),
    sizeBytes: Number(i.sizeBytes ?? 0),
    checksum: Number(i.checksum ?? 0) >>> 0,
    deploymentId: Number(i.deploymentId ?? 0),
    app: i.app ?? "",
  };
}

/** TLS of the client: https when given. */
export interface ClientTls {
  /** CA that signed the NodeHosts' API certificates (default: the system's CAs). */
  ca?: string | Buffer;
  /** Client certificate and key, for an API that requires one (--api-tls-ca). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Accept any server certificate: development only. */
  insecureSkipVerify?: boolean;
}

export interface NodeHostClientOptions {
  /** API addresses (host:port); a call moves to the next one when one cannot serve it. */
  addresses: string[];
  token?: string;
  /** Speak https with these settings; plain http when absent. */
  tls?: ClientTls;
  /** How long one call may take, its retries included. Default 5000. */
  timeoutMs?: number;
  fetch?: FetchLike;
  env?: Pick<Env, "setTimer" | "nowMs" | "random">;
}

type Codec = "json" | "proto";
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const asBytes = (v: string | Uint8Array) => (typeof v === "string" ? utf8.encode(v) : v);

/**
 * Methods a retry cannot apply twice, so they are retried after an unknown outcome too.
 * GetSession is among them: a registration retried after a lost answer leaves at most one
 * unused session, which the shard's LRU-bounded session table evicts.
 */
const RETRY_UNKNOWN: ReadonlySet<MethodName> = new Set<MethodName>([
  "Read",
  "StaleRead",
  "GetMembership",
  "Status",
  "TransferLeader",
  "GetSession",
  "QueryRaftLog",
]);

/** Methods whose request carries timeout_ms (the server's deadline for the attempt). */
const TAKES_TIMEOUT: ReadonlySet<MethodName> = new Set<MethodName>([
  "GetSession",
  "CloseSession",
  "Propose",
  "Read",
  "AddReplica",
  "DeleteReplica",
  "GetMembership",
  "RequestSnapshot",
  "RemoveData",
]);

/** One attempt of a call that may be retried after an unknown outcome gets at least this. */
export const ATTEMPT_MS_MIN = 1000;
/** No retry starts with less time than this left: the call gives up with the last answer. */
const ATTEMPT_MS_FLOOR = 20;
/** Backoff between rounds of attempts: doubling from the first to the last, with jitter. */
export const RETRY_BACKOFF_MS_FIRST = 20;
export const RETRY_BACKOFF_MS_MAX = 500;

/**
 * A client of the NodeHost API for the CLI and tests. Sticks to the last address that answered.
 *
 * Retries follow the API's error contract (nodehost.proto): within `timeoutMs` a call is
 * retried, on the next address and with backoff once every address was tried, when the
 * answer says the request was not applied (`unavailable`: no leader yet, shard not ready,
 * busy, host down). A request whose outcome is unknown (`deadline_exceeded`, `unknown`) is
 * retried only when that cannot apply it twice: reads, and writes that carry a session. A
 * host that does not run the shard (`not_found`) sends the call on to the next address, as in
 * master mode the drummers decide which hosts run it; not_found is the answer once every
 * address gave it.
 *
 * ```ts
 * const client = new NodeHostClient({ addresses: ["h1:8001", "h2:8001"], token, timeoutMs: 3000 });
 * const session = await client.openSession(1);
 * await client.put(1, "greeting", "hello", { session }); // exactly once, even when retried
 * await client.closeSession(session);
 * const value = await client.get(1, "greeting"); // Uint8Array or null
 * ```
 */
export class NodeHostClient {
  readonly addresses: readonly string[];
  readonly timeoutMs: number;
  private current = 0;
  private readonly fetchFn: FetchLike;
  private readonly env: Pick<Env, "setTimer" | "nowMs" | "random">;

  constructor(private readonly opts: NodeHostClientOptions) {
    if (opts.addresses.length === 0) throw new Error("NodeHostClient needs at least one API address");
    this.addresses = [...opts.addresses];
    this.timeoutMs = opts.timeoutMs ?? 5000;
    if (!(this.timeoutMs > 0)) throw new Error(`timeoutMs must be positive, got ${this.timeoutMs}`);
    this.fetchFn = opts.fetch ?? ((url, init) => fetch(url, init));
    this.env = opts.env ?? realEnv();
  }

  /**
   * Calls one method; request is the message as an object (numbers, Uint8Array or base64 for
   * bytes). Retries as the class comment says; `retryUnknown` overrides whether an unknown
   * outcome is retried (default: for reads, GetSession and proposals with a session).
   */
  async call<M extends MethodName>(
    method: M,
    request: Record<string, unknown>,
    codec: Codec = "proto",
    opts: { retryUnknown?: boolean; timeoutMs?: number } = {},
  ): Promise<ResponseTypes[M]> {
    const retryUnknown = opts.retryUnknown ?? (RETRY_UNKNOWN.has(method) || hasSession(method, request));
    const budgetMs = opts.timeoutMs ?? this.timeoutMs;
    const deadlineMs = this.env.nowMs() + budgetMs;
    let backoffMs = RETRY_BACKOFF_MS_FIRST;
    let triedThisRound = 0;
    let attempts = 0;
    let lastError: ApiError | undefined;
    const withoutShard = new Set<string>();
    for (;;) {
      const leftMs = deadlineMs - this.env.nowMs();
      if (leftMs < ATTEMPT_MS_FLOOR && lastError !== undefined) break;
      const attemptMs = retryUnknown
        ? Math.min(leftMs, Math.max(ATTEMPT_MS_MIN, Math.ceil(budgetMs / 3)))
        : leftMs;
      const address = this.addresses[this.current]!;
      attempts++;
      try {
        const body = this.encode(method, request, codec, attemptMs);
        return (await this.attempt(address, method, body, codec, attemptMs)) as ResponseTypes[M];
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.code === "not_found") {
          // This host does not run the shard (the drummers placed it elsewhere): nothing was
          // applied, and another of the addresses may run it. Every one saying so is the answer.
          withoutShard.add(address);
          if (withoutShard.size >= this.addresses.length) throw error;
        } else {
          const notApplied = NOT_APPLIED_CODES.has(error.code);
          if (!notApplied && !(retryUnknown && OUTCOME_UNKNOWN_CODES.has(error.code))) throw error;
        }
        lastError = error;
      }
      this.current = (this.current + 1) % this.addresses.length;
      if (++triedThisRound < this.addresses.length) continue;
      triedThisRound = 0;
      const pauseMs = Math.min(backoffMs * (0.5 + this.env.random() / 2), deadlineMs - this.env.nowMs());
      if (pauseMs > 0) await new Promise<void>((resolve) => this.env.setTimer(pauseMs, resolve));
      backoffMs = Math.min(backoffMs * 2, RETRY_BACKOFF_MS_MAX);
    }
    const last = lastError!;
    const verdict =
      NOT_APPLIED_CODES.has(last.code) || last.code === "not_found" ? "not applied" : "outcome unknown";
    throw new ApiError(
      last.code,
      `${last.detail} (${verdict}; gave up after ${attempts} attempts in ${budgetMs} ms)`,
      last.address,
    );
  }

  private encode(method: MethodName, request: Record<string, unknown>, codec: Codec, attemptMs: number) {
    const types = METHOD_TYPES[method];
    const fields = { ...request };
    if (TAKES_TIMEOUT.has(method)) {
      // The server gives up a little before this client does, so its answer can still arrive.
      const serverMs = Math.max(1, Math.floor(attemptMs - Math.min(500, attemptMs / 5)));
      const asked = Number(request.timeoutMs ?? 0);
      fields.timeoutMs = asked > 0 ? Math.min(asked, serverMs) : serverMs;
    }
    const message = types.request.fromObject(fields);
    return codec === "proto"
      ? types.request.encode(message).finish()
      : JSON.stringify(types.request.toObject(message, { longs: String, bytes: String, enums: String }));
  }

  private async attempt(
    address: string,
    method: MethodName,
    body: Uint8Array | string,
    codec: Codec,
    attemptMs: number,
  ) {
    const headers: Record<string, string> = {
      "content-type": codec === "proto" ? "application/proto" : "application/json",
      "connect-protocol-version": "1",
    };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    const abort = new AbortController();
    const timer = this.env.setTimer(attemptMs, () => abort.abort());
    let res: Response;
    let bytes: Uint8Array;
    const tls = this.opts.tls;
    const init: RequestInit & { tls?: Record<string, unknown> } = {
      method: "POST",
      headers,
      body,
      signal: abort.signal,
    };
    if (tls) {
      init.tls = {
        ...(tls.ca === undefined ? {} : { ca: tls.ca }),
        ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
        rejectUnauthorized: !tls.insecureSkipVerify,
      };
    }
    try {
      res = await this.fetchFn(`${tls ? "https" : "http"}://${address}/${SERVICE}/${method}`, init);
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (error) {
      if (abort.signal.aborted) {
        throw new ApiError(
          "deadline_exceeded",
          `no answer within ${Math.round(attemptMs)} ms (the request may or may not have been applied)`,
          address,
        );
      }
      // A refused server certificate ends the TLS handshake before any byte of the request
      // left; retrying cannot help (the settings must change): failed_precondition.
      if (certificateRefused(error))
        throw new ApiError("failed_precondition", connectionProblem(error, true), address);
      // Something answered that is not an HTTP/1.1 server — most often the raft transport
      // (HTTP/2 only), when a raft address was given for an API address. It did not take
      // the request; retrying cannot help.
      if ((error as { code?: string })?.code === "Malformed_HTTP_Response") {
        throw new ApiError(
          "failed_precondition",
          `the server at ${address} does not answer as a NodeHost API (its answer is not HTTP/1.1); is ${address} a raft address (--raft-address)? Give the NodeHost's API address (its --api-address) instead`,
          address,
        );
      }
      if (neverSent(error))
        throw new ApiError("unavailable", connectionProblem(error, tls !== undefined), address);
      throw new ApiError(
        "unknown",
        `the connection to the NodeHost API failed (the request may or may not have been applied): ${connectionProblem(error, tls !== undefined)}`,
        address,
      );
    } finally {
      timer.cancel();
    }
    if (res.status !== 200) throw errorFrom(res.status, bytes, address);
    const type = METHOD_TYPES[method].response;
    if (codec === "proto") return type.decode(bytes);
    return type.fromObject(JSON.parse(fromUtf8.decode(bytes)));
  }

  // ---- sessions ----

  /** Registers a client session on shardId: writes that carry it apply exactly once when retried. */
  async openSession(shardId: number): Promise<Session> {
    const res = await this.call("GetSession", { shardId });
    const s = res.session;
    if (!s) throw new ApiError("internal", "GetSession answered without a session", "");
    return new Session(Number(s.shardId), Number(s.clientId), Number(s.seriesId), Number(s.respondedTo));
  }

  /** Unregisters a session (its shard forgets it); `timeoutMs` bounds this call alone. */
  async closeSession(session: Session, opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.call("CloseSession", { session: sessionFields(session) }, "proto", opts);
  }

  // ---- kv helpers (app `kv`, commands and queries in proto/longboat/nodehost/v1/kv.proto) ----
  // A write with `session` applies at most once however often it is retried, and the session
  // moves on to its next series id when the write completes.

  /** Sets key to value; resolves with the log index the write was committed at. */
  async put(
    shardId: number,
    key: string,
    value: string | Uint8Array,
    opts: WriteOptions = {},
  ): Promise<{ index: number }> {
    const command = pb.KvCommand.encode({ put: { key, value: asBytes(value) } }).finish();
    return { index: (await this.propose(shardId, command, opts)).index };
  }

  /** Deletes key; true when it existed. */
  async delete(shardId: number, key: string, opts: WriteOptions = {}): Promise<boolean> {
    return (await this.propose(shardId, pb.KvCommand.encode({ delete: { key } }).finish(), opts)).value === 1;
  }

  /** Sets key to value when its value is expected (null: when it is absent); true when it did. */
  async cas(
    shardId: number,
    key: string,
    expected: string | Uint8Array | null,
    value: string | Uint8Array,
    opts: WriteOptions = {},
  ) {
    const cas = {
      key,
      expected: expected === null ? new Uint8Array(0) : asBytes(expected),
      expectedAbsent: expected === null,
      value: asBytes(value),
    };
    return (await this.propose(shardId, pb.KvCommand.encode({ cas }).finish(), opts)).value === 1;
  }

  /** Adds delta to the integer counter at key (absent: 0); returns the new value. */
  async add(shardId: number, key: string, delta: number, opts: WriteOptions = {}): Promise<number> {
    const res = await this.propose(shardId, pb.KvCommand.encode({ add: { key, delta } }).finish(), opts);
    return Number(fromUtf8.decode(res.data));
  }

  /** The value of key, or null when absent; `stale` reads the local replica without ReadIndex. */
  async get(shardId: number, key: string, opts: { stale?: boolean } = {}): Promise<Uint8Array | null> {
    const query = pb.KvQuery.encode({ get: { key } }).finish();
    const res = opts.stale
      ? await this.call("StaleRead", { shardId, query })
      : await this.call("Read", { shardId, query });
    const result = pb.KvQueryResult.decode(res.result);
    return result.found ? result.value : null;
  }

  /**
   * One page of keys in [start, end) in UTF-8 byte order (end "": no bound), at most `limit`
   * (0 or above the app's maximum: its maximum, 1000); `more` says keys remain after the page.
   */
  async scan(
    shardId: number,
    range: { start?: string; end?: string; limit?: number },
  ): Promise<{ pairs: { key: string; value: Uint8Array }[]; more: boolean }> {
    const query = pb.KvQuery.encode({
      scan: { start: range.start ?? "", end: range.end ?? "", limit: range.limit ?? 0 },
    }).finish();
    const result = pb.KvQueryResult.decode((await this.call("Read", { shardId, query })).result);
    return {
      pairs: result.pairs.map((p) => ({ key: p.key ?? "", value: p.value ?? new Uint8Array() })),
      more: result.more,
    };
  }

  status(): Promise<longboat.nodehost.v1.StatusResponse> {
    return this.call("Status", {});
  }

  async members(shardId: number): Promise<longboat.raft.v1.IMembership> {
    const res = await this.call("GetMembership", { shardId });
    if (!res.membership) throw new ApiError("internal", "GetMembership answered without a membership", "");
    return res.membership;
  }

  async addReplica(
    shardId: number,
    replicaId: number,
    raftAddress: string,
    opts: { role?: "full" | "non-voting" | "witness"; configChangeId?: number } = {},
  ) {
    const role = { full: 1, "non-voting": 2, witness: 3 }[opts.role ?? "full"];
    const request = { shardId, replicaId, raftAddress, role, configChangeId: opts.configChangeId ?? 0 };
    return (await this.call("AddReplica", request)).membership ?? null;
  }

  async removeReplica(shardId: number, replicaId: number, opts: { configChangeId?: number } = {}) {
    const request = { shardId, replicaId, configChangeId: opts.configChangeId ?? 0 };
    return (await this.call("DeleteReplica", request)).membership ?? null;
  }

  async transferLeader(shardId: number, targetReplicaId: number): Promise<void> {
    await this.call("TransferLeader", { shardId, targetReplicaId });
  }

  /**
   * Takes a snapshot of shardId on the NodeHost that answers; returns its index. The log is
   * then compacted keeping compactionOverhead entries, or up to compactionIndex, when given.
   * `export` also copies it into the directory that NodeHost's operator set
   * (--snapshot-export-dir): a client never names a path on the server.
   */
  async snapshot(
    shardId: number,
    opts: { export?: boolean; compactionOverhead?: number; compactionIndex?: number } = {},
  ): Promise<number> {
    const res = await this.call("RequestSnapshot", {
      shardId,
      export: opts.export ?? false,
      compactionOverhead: opts.compactionOverhead ?? 0,
      overrideCompactionOverhead: opts.compactionOverhead !== undefined,
      compactionIndex: opts.compactionIndex ?? 0,
      timeoutMs: this.timeoutMs,
    });
    return Number(res.index);
  }

  /**
   * Deletes the data the NodeHost that answers holds of a replica removed from its shard.
   * membership: the shard's current membership from a live member (needed when the replica's
   * own log never saw its removal).
   */
  async removeData(
    shardId: number,
    replicaId: number,
    opts: { membership?: longboat.raft.v1.IMembership } = {},
  ): Promise<void> {
    const request: Record<string, unknown> = { shardId, replicaId, timeoutMs: this.timeoutMs };
    if (opts.membership) request.membership = opts.membership;
    await this.call("RemoveData", request);
  }

  /** Compacts shardId's log on the NodeHost that answers and reports the space freed. */
  compact(shardId: number, opts: { compactionOverhead?: number } = {}) {
    return this.call("Compact", {
      shardId,
      compactionOverhead: opts.compactionOverhead ?? 0,
      overrideCompactionOverhead: opts.compactionOverhead !== undefined,
    });
  }

  /** Entries of shardId's log on the NodeHost that answers, [firstIndex, lastIndex) (0: from the start / to the end). */
  queryRaftLog(
    shardId: number,
    opts: { firstIndex?: number; lastIndex?: number; maxBytes?: number; replicaId?: number } = {},
  ) {
    return this.call("QueryRaftLog", {
      shardId,
      firstIndex: opts.firstIndex ?? 0,
      lastIndex: opts.lastIndex ?? 0,
      maxBytes: opts.maxBytes ?? 0,
      replicaId: opts.replicaId ?? 0,
    });
  }

  /**
   * Backs up shardId from the NodeHost that answers first (ExportSnapshot, a Connect server
   * stream): it takes a snapshot holding every acknowledged write (unconfirmed: what its replica
   * applied, without the leader), and the snapshot file's bytes are handed to write() in order.
   * Whoever stores them checks the file (src/logdb/snapshotfile.ts verifySnapshotFile) against
   * info.checksum. Another address is tried only while nothing was written; timeoutMs bounds
   * the wait for each message, not the whole transfer.
   * @example const info = await client.backup(1, (chunk) => file.write(chunk));
   */
  async backup(
    shardId: number,
    write: (chunk: Uint8Array) => void | Promise<void>,
    opts: { unconfirmed?: boolean; onProgress?: (doneBytes: number, info: BackupInfo) => void } = {},
  ): Promise<BackupInfo> {
    const request = pb.ExportSnapshotRequest.encode({
      shardId,
      unconfirmed: opts.unconfirmed === true,
      timeoutMs: this.timeoutMs,
    }).finish();
    let lastError: ApiError | undefined;
    for (let attempt = 0; attempt < this.addresses.length; attempt++) {
      const index = (this.current + attempt) % this.addresses.length;
      const stream = new ExportStream(this.addresses[index]!, this.timeoutMs, this.env);
      try {
        const info = await stream.run(this.fetchFn, request, this.opts.token, write, opts.onProgress);
        this.current = index;
        return info;
      } catch (error) {
        if (!(error instanceof ApiError) || error.code !== "unavailable" || stream.wrote) throw error;
        lastError = error;
      }
    }
    throw lastError!;
  }

  private async propose(shardId: number, command: Uint8Array, opts: WriteOptions) {
    const session = opts.session;
    if (session && session.shardId !== shardId) {
      throw new Error(`a session of shard ${session.shardId} cannot carry a write to shard ${shardId}`);
    }
    const request: Record<string, unknown> = { shardId, command };
    if (session) request.session = sessionFields(session);
    const res = await this.call("Propose", request);
    session?.proposalCompleted();
    return { value: Number(res.value), data: res.data, index: Number(res.index) };
  }
}

export interface WriteOptions {
  /** A session from openSession: the write is applied at most once, and may be retried after a timeout. */
  session?: Session;
}

function sessionFields(s: Session) {
  return { shardId: s.shardId, clientId: s.clientId, seriesId: s.seriesId, respondedTo: s.respondedTo };
}

/** True when a Propose request carries a real session (client id ≠ 0): a retry applies once. */
function hasSession(method: MethodName, request: Record<string, unknown>): boolean {
  if (method !== "Propose") return false;
  const session = request.session as { clientId?: unknown } | null | undefined;
  return session !== null && session !== undefined && Number(session.clientId ?? 0) !== 0;
}

/** Connect's mapping of HTTP status to code, used when an error body is not a Connect error. */
function errorFrom(status: number, bytes: Uint8Array, address: string): ApiError {
  try {
    const body = JSON.parse(fromUtf8.decode(bytes)) as { code?: unknown; message?: unknown };
    if (isConnectCode(body.code)) return new ApiError(body.code, String(body.message ?? ""), address);
  } catch {
    // not JSON: fall through to the HTTP status
  }
  // Connect's table, except 502 and 504: an intermediary answers them after it may have
  // delivered the request, so for us they leave the outcome unknown, not "not applied".
  const byStatus: Record<number, string> = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    429: "unavailable",
    502: "unknown",
    503: "unavailable",
    504: "deadline_exceeded",
  };
  return new ApiError(byStatus[status] ?? "unknown", `HTTP ${status}`, address);
}

/** Certificate problems a TLS client reports, by Node/Bun error code. */
export const CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

function certificateRefused(error: unknown): boolean {
  return CERTIFICATE_CODES.has((error as { code?: string })?.code ?? "");
}

/** Why a request did not reach the API, with what to check for a TLS problem. */
function connectionProblem(error: unknown, https: boolean): string {
  const message = (error as Error)?.message ?? String(error);
  const code = (error as { code?: string })?.code ?? "";
  if (CERTIFICATE_CODES.has(code)) {
    return `cannot reach the NodeHost API over https: the server's certificate was refused: ${message} (${code}); check --tls-ca and the server's --api-tls-cert`;
  }
  if (https && (code === "ECONNRESET" || code === "EPROTO")) {
    return `${message} (over https: the server may require a client certificate signed by its --api-tls-ca, see --tls-cert/--tls-key; or it does not speak TLS)`;
  }
  return `cannot reach the NodeHost API: ${message}`;
}
