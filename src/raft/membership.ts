import { Role, roleName } from "./config.ts";
import type { Raft } from "./raft.ts";
import { type ConfigChange, ConfigChangeType, type SnapshotMeta } from "./types.ts";

/**
 * A committed config change this replica cannot follow: the shard's membership gives it a role
 * it cannot take (a full member made non-voting or a witness, a witness promoted). Every
 * replica applies the same change, so it cannot be refused here alone: the host stops this
 * replica and keeps the others (Engine), and the operator fixes the membership or the replica.
 */
export class RoleConflictError extends Error {
  override readonly name = "RoleConflictError";
}

/**
 * Membership changes as the state machine applies them (engine.md §1.11): one at a time,
 * effective when applied (not when appended). Validity (ordered config-change id, address
 * reuse, role rules) is the RSM's job; the core only keeps its peer maps, the pending flag,
 * and the tombstones of removed ids, which never return.
 */
export function applyConfigChange(r: Raft, cc: ConfigChange): void {
  r.pendingConfigChange = false;
  const id = cc.replicaId;
  if (id === 0) return;
  if (r.removed.has(id) && cc.type !== ConfigChangeType.RemoveNode) return; // removed ids never return
  switch (cc.type) {
    case ConfigChangeType.AddNode:
      addNode(r, id);
      return;
    case ConfigChangeType.AddNonVoting:
      addNonVoting(r, id);
      return;
    case ConfigChangeType.AddWitness:
      addWitness(r, id);
      return;
    case ConfigChangeType.RemoveNode:
      removeNode(r, id);
      return;
  }
}

/** A new full member, or the promotion of a non-voting one (its progress is kept). */
function addNode(r: Raft, id: number): void {
  if (r.remotes.has(id)) return;
  if (r.witnesses.has(id)) throw new RoleConflictError(`witness ${id} cannot be promoted to a full member`);
  const nv = r.nonVotings.get(id);
  if (nv !== undefined) {
    r.nonVotings.delete(id);
    r.remotes.set(id, nv);
    if (id === r.replicaId) r.role = Role.Follower;
  } else {
    r.remotes.set(id, r.newRemote());
  }
  if (r.role === Role.Leader && r.tryCommit()) r.broadcastReplicate();
}

function addNonVoting(r: Raft, id: number): void {
  if (r.remotes.has(id) || r.witnesses.has(id) || r.nonVotings.has(id)) return;
  if (id === r.replicaId && r.role !== Role.NonVoting) {
    throw new RoleConflictError(`replica ${id} is asked to become non-voting but is ${roleName(r.role)}`);
  }
  r.nonVotings.set(id, r.newRemote());
}

function addWitness(r: Raft, id: number): void {
  if (r.remotes.has(id) || r.witnesses.has(id) || r.nonVotings.has(id)) return;
  if (id === r.replicaId && r.role !== Role.Witness) {
    throw new RoleConflictError(`replica ${id} is asked to become a witness but is ${roleName(r.role)}`);
  }
  r.witnesses.set(id, r.newRemote());
}

/** Removal: a leader removing itself steps down; otherwise the smaller quorum may commit more. */
function removeNode(r: Raft, id: number): void {
  r.remotes.delete(id);
  r.nonVotings.delete(id);
  r.witnesses.delete(id);
  r.removed.add(id);
  if (r.transferTarget === id) r.transferTarget = 0;
  if (r.role !== Role.Leader) return;
  if (id === r.replicaId) {
    r.becomeFollower(r.term, 0);
    return;
  }
  if (r.votingCount() > 0 && r.tryCommit()) r.broadcastReplicate();
}

/**
 * After the state machine recovered a received snapshot, the peer maps follow its
 * membership. A non-voting replica listed as a full member is promoted; a snapshot can
 * never demote a full member, nor turn anything into or out of a witness.
 */
export function restoreRemotes(r: Raft, snap: SnapshotMeta): void {
  const m = snap.membership;
  if (m === null) return;
  const self = r.replicaId;
  const inAddresses = m.addresses.some((x) => x.replicaId === self);
  // Checked when the snapshot arrived (the message is refused): here it is an assertion.
  const problem = snapshotRoleProblem(r, snap);
  if (problem !== null) throw new Error(problem);
  r.restoreMembership(m);
  if (r.role === Role.NonVoting && inAddresses) r.role = Role.Follower;
  if (r.role === Role.Leader && !inAddresses) r.becomeFollower(r.term, 0);
  r.pendingConfigChange = false;
}

/**
 * Why a snapshot cannot be installed on this replica whatever its log, or null: a witness gets
 * witness snapshots only and others never one; its membership may promote a non-voting replica
 * but never demote a full member nor turn anything into or out of a witness.
 */
export function snapshotRoleProblem(r: Raft, snap: SnapshotMeta): string | null {
  const self = r.replicaId;
  const witness = r.role === Role.Witness;
  if (snap.witness !== witness) {
    return `snapshot ${snap.index} is ${snap.witness ? "" : "not "}a witness snapshot, and replica ${self} is ${witness ? "" : "not "}a witness`;
  }
  const m = snap.membership;
  if (m === null) return null;
  const inAddresses = m.addresses.some((x) => x.replicaId === self);
  if (witness && (inAddresses || m.nonVotings.some((x) => x.replicaId === self))) {
    return `snapshot ${snap.index} would turn witness ${self} into another role`;
  }
  if (r.role !== Role.NonVoting && !witness && m.nonVotings.some((x) => x.replicaId === self)) {
    return `snapshot ${snap.index} would turn full member ${self} back into non-voting`;
  }
  if (!witness && m.witnesses.some((x) => x.replicaId === self)) {
    return `snapshot ${snap.index} would turn ${self} into a witness`;
  }
  return null;
}
