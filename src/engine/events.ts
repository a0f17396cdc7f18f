import type { Membership } from "../raft/types.ts";

/** What a NodeHost tells an application that listens (all fields optional to implement). */
export interface EventListener {
  leaderUpdated?(info: { shardId: number; replicaId: number; leaderId: number; term: number }): void;
  membershipChanged?(info: { shardId: number; replicaId: number; membership: Membership }): void;
  snapshotCreated?(info: { shardId: number; replicaId: number; index: number }): void;
  snapshotReceived?(info: { shardId: number; replicaId: number; index: number; from: number }): void;
  snapshotRecovered?(info: { shardId: number; replicaId: number; index: number }): void;
  replicaUnloaded?(info: { shardId: number; replicaId: number; reason: string }): void;
}

/** Calls a listener method, keeping a throwing listener from breaking the engine loop. */
export function emit<K extends keyof EventListener>(
  listener: EventListener | undefined,
  name: K,
  info: Parameters<NonNullable<EventListener[K]>>[0],
  onError: (error: unknown) => void,
): void {
  const fn = listener?.[name] as ((i: typeof info) => void) | undefined;
  if (!fn) return;
  try {
    fn.call(listener, info);
  } catch (error) {
    onError(error);
  }
}
