import { LogReader } from "../logdb/logreader.ts";
import type { LogDB, ReplicaKey } from "../logdb/types.ts";
import { ConfigChangeDecodeError, decodeConfigChange } from "../raft/configchange.ts";
import { emptyMembership, EntryType, type Membership } from "../raft/types.ts";
import { MembershipManager } from "./membership.ts";

/** Entry bytes read per page while replaying config changes (memory stays bounded). */
const PAGE_BYTES = 4 * 1024 * 1024;

/** What a replica's own durable log says about its shard's membership. */
export interface CommittedMembership {
  membership: Membership;
  /** The commit index the replica stored: changes above it are not counted. */
  commitIndex: number;
}

/**
 * The membership a replica's durable log commits: its snapshot's membership, then every
 * config change entry up to its stored commit index, applied with the state machine's rules.
 * It is what the replica would know if it restarted now; a change the shard committed while
 * the replica was away is not in it. Reads the whole committed log after the snapshot, in
 * pages: for operator actions (removeData), not for hot paths.
 * @param ordered the replica's orderedConfigChange setting (stale changes are refused alike)
 */
export function committedMembership(logdb: LogDB, key: ReplicaKey, ordered: boolean): CommittedMembership {
  const reader = new LogReader(logdb, key);
  const snapshot = reader.snapshot();
  const members = new MembershipManager(snapshot?.membership ?? emptyMembership(), ordered);
  const commitIndex = reader.nodeState().state.commit;
  const high = Math.min(commitIndex, reader.lastIndex()) + 1;
  for (let next = Math.max(reader.firstIndex(), (snapshot?.index ?? 0) + 1); next < high; ) {
    const page = reader.entries(next, high, PAGE_BYTES);
    for (const e of page) {
      if (e.type !== EntryType.ConfigChange) continue;
      try {
        members.apply(decodeConfigChange(e.cmd), e.index);
      } catch (error) {
        // The state machine rejects an entry that does not decode and changes nothing.
        if (!(error instanceof ConfigChangeDecodeError)) throw error;
      }
    }
    next = page[page.length - 1]!.index + 1;
  }
  return { membership: members.get(), commitIndex };
}

/** Whether replicaId is a full, non-voting or witness member. */
export function isMember(membership: Membership, replicaId: number): boolean {
  return [membership.addresses, membership.nonVotings, membership.witnesses].some((list) =>
    list.some((m) => m.replicaId === replicaId),
  );
}
