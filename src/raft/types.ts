/**
 * The Raft core's data types. They are structurally the generated protobuf interfaces of
 * `proto/longboat/raft/v1/raft.proto` with every field present, so a message built here
 * encodes with `longboat.raft.v1.MessageBatch.encode` without conversion, and a decoded
 * message is used as is. All ids, terms and indexes are JS numbers (≤ 2^53 − 1).
 */

/** Entry types, numbered as in raft.proto. */
export const EntryType = {
  Application: 0,
  ConfigChange: 1,
  Encoded: 2,
  Metadata: 3,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** Message types, numbered as in raft.proto (Dragonboat's numbering plus the PreVote pair). */
export const MessageType = {
  LocalTick: 0,
  Election: 1,
  LeaderHeartbeat: 2,
  ConfigChangeEvent: 3,
  NoOP: 4,
  Ping: 5,
  Pong: 6,
  Propose: 7,
  SnapshotStatus: 8,
  Unreachable: 9,
  CheckQuorum: 10,
  BatchedReadIndex: 11,
  Replicate: 12,
  ReplicateResp: 13,
  RequestVote: 14,
  RequestVoteResp: 15,
  InstallSnapshot: 16,
  Heartbeat: 17,
  HeartbeatResp: 18,
  ReadIndex: 19,
  ReadIndexResp: 20,
  Quiesce: 21,
  SnapshotReceived: 22,
  LeaderTransfer: 23,
  TimeoutNow: 24,
  RateLimit: 25,
  RequestPreVote: 26,
  RequestPreVoteResp: 27,
  LogQuery: 28,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Highest message type number this build knows; a receiver drops anything above it. */
export const MESSAGE_TYPE_MAX = 28;

/** Types that never cross the wire; a transport drops them on receipt. */
export const LOCAL_MESSAGE_TYPES: ReadonlySet<number> = new Set([
  MessageType.LocalTick,
  MessageType.Election,
  MessageType.LeaderHeartbeat,
  MessageType.ConfigChangeEvent,
  MessageType.SnapshotStatus,
  MessageType.Unreachable,
  MessageType.CheckQuorum,
  MessageType.BatchedReadIndex,
  MessageType.SnapshotReceived,
  MessageType.LogQuery,
]);

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /**
   * With proposerId and proposerEpoch, the request this entry answers (raft.proto): the
   * request's sequence number within its proposer's epoch, from 1; 0 when nobody waits.
   */
  key: number;
  clientId: number;
  seriesId: number;
  respondedTo: number;
  cmd: Uint8Array;
  /** The replica whose request this is (0: nobody waits). Only it completes the request. */
  proposerId: number;
  /** The proposer's NodeHost's engine epoch, drawn at each start, in [1, 2^53). */
  proposerEpoch: number;
}

/** The fields of an entry that name the request waiting for it. */
export type RequestTag = Pick<Entry, "proposerId" | "proposerEpoch" | "key">;

/** True when an entry tagged `entry` answers the request tagged `request` (key 0 answers none). */
export function answersRequest(entry: RequestTag, request: RequestTag): boolean {
  return (
    entry.key !== 0 &&
    entry.key === request.key &&
    entry.proposerId === request.proposerId &&
    entry.proposerEpoch === request.proposerEpoch
  );
}

export interface Member {
  replicaId: number;
  address: string;
}

export interface Membership {
  /** Log index of the last applied config change entry (ordered config change). */
  configChangeId: number;
  addresses: Member[];
  nonVotings: Member[];
  witnesses: Member[];
  removed: number[];
}

export const ConfigChangeType = {
  AddNode: 0,
  RemoveNode: 1,
  AddNonVoting: 2,
  AddWitness: 3,
} as const;
export type ConfigChangeType = (typeof ConfigChangeType)[keyof typeof ConfigChangeType];

export interface ConfigChange {
  configChangeId: number;
  type: ConfigChangeType;
  replicaId: number;
  address: string;
  initialize: boolean;
}

export interface SnapshotMeta {
  shardId: number;
  replicaId: number;
  index: number;
  term: number;
  membership: Membership | null;
  filePath: string;
  fileSizeBytes: number;
  witness: boolean;
  dummy: boolean;
  onDiskIndex: number;
  app: string;
  checksum: number;
  /** Deployment of the NodeHost that wrote the snapshot file; absent or 0: not recorded. */
  deploymentId?: number;
}

export interface Message {
  type: MessageType;
  to: number;
  from: number;
  shardId: number;
  term: number;
  logTerm: number;
  logIndex: number;
  commit: number;
  reject: boolean;
  hint: number;
  hintHigh: number;
  entries: Entry[];
  snapshot: SnapshotMeta | null;
}

/** Persistent Raft state of one replica. */
export interface State {
  term: number;
  vote: number;
  commit: number;
}

export const EMPTY_STATE: Readonly<State> = Object.freeze({ term: 0, vote: 0, commit: 0 });

/** Builds a message with every field present (monomorphic objects keep the engine fast). */
export function makeMessage(fields: Partial<Message> & Pick<Message, "type">): Message {
  return {
    type: fields.type,
    to: fields.to ?? 0,
    from: fields.from ?? 0,
    shardId: fields.shardId ?? 0,
    term: fields.term ?? 0,
    logTerm: fields.logTerm ?? 0,
    logIndex: fields.logIndex ?? 0,
    commit: fields.commit ?? 0,
    reject: fields.reject ?? false,
    hint: fields.hint ?? 0,
    hintHigh: fields.hintHigh ?? 0,
    entries: fields.entries ?? [],
    snapshot: fields.snapshot ?? null,
  };
}

/** Builds an entry with every field present. */
export function makeEntry(fields: Partial<Entry>): Entry {
  return {
    term: fields.term ?? 0,
    index: fields.index ?? 0,
    type: fields.type ?? EntryType.Application,
    key: fields.key ?? 0,
    clientId: fields.clientId ?? 0,
    seriesId: fields.seriesId ?? 0,
    respondedTo: fields.respondedTo ?? 0,
    cmd: fields.cmd ?? EMPTY_BYTES,
    proposerId: fields.proposerId ?? 0,
    proposerEpoch: fields.proposerEpoch ?? 0,
  };
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

export function emptyMembership(): Membership {
  return { configChangeId: 0, addresses: [], nonVotings: [], witnesses: [], removed: [] };
}

/** Size of an entry as the rate limiter and byte limits count it: payload plus a fixed header. */
export const ENTRY_HEADER_BYTES = 128;
export function entrySizeBytes(entry: Entry): number {
  return ENTRY_HEADER_BYTES + entry.cmd.byteLength;
}
