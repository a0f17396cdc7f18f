/**
 * Longboat as a library: embed NodeHosts in an application with your own state machines.
 * See README.md ("Embedding") for a ten-line example.
 */
export { LongboatError, isTemporary, NodeHost, Session } from "./nodehost.ts";
export { EVENT_KINDS } from "./nodehost.ts";
export { MasterClient } from "./master/client.ts";
export type { MasterClientOptions } from "./master/client.ts";
export type {
  EventHandler,
  EventKind,
  EventListener,
  EventOf,
  LeaderRole,
  ListenerStats,
  NodeHostConfig,
  NodeHostEvent,
  SubscribeOptions,
  Subscription,
  NodeHostInfo,
  ReplicaConfigInput,
  ShardInfo,
} from "./nodehost.ts";
export { decodeKvQueryResult, encodeKvCommand, encodeKvQuery } from "./statemachine/kv.ts";
export { AppRegistry, builtinApps, loadPlugin } from "./statemachine/registry.ts";
export type {
  CreateStateMachine,
  IConcurrentStateMachine,
  IOnDiskStateMachine,
  IStateMachine,
  SMEntry,
  SMResult,
} from "./statemachine/types.ts";
export type { Membership } from "./raft/types.ts";
