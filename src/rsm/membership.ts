import {
  type ConfigChange,
  ConfigChangeType,
  emptyMembership,
  type Member,
  type Membership,
} from "../raft/types.ts";

/**
 * The shard's membership as the state machine sees it (engine.md §1.11). A config change entry is
 * checked against the rules below when applied; a refused one changes nothing and is reported
 * rejected (the Raft core then clears its pending flag). configChangeId = index of the last
 * applied config change entry; with ordered config change a request must quote it (optimistic
 * lock), except the synthetic bootstrap changes (cc.initialize).
 */

export type ConfigChangeDecision = { accepted: true; reason: "" } | { accepted: false; reason: string };

const TYPE_NAMES: Record<number, string> = {
  [ConfigChangeType.AddNode]: "AddNode",
  [ConfigChangeType.RemoveNode]: "RemoveNode",
  [ConfigChangeType.AddNonVoting]: "AddNonVoting",
  [ConfigChangeType.AddWitness]: "AddWitness",
};

function find(list: Member[], replicaId: number): Member | undefined {
  return list.find((m) => m.replicaId === replicaId);
}

function without(list: Member[], replicaId: number): Member[] {
  return list.filter((m) => m.replicaId !== replicaId);
}

function withMember(list: Member[], member: Member): Member[] {
  return [...without(list, member.replicaId), member].sort((a, b) => a.replicaId - b.replicaId);
}

export function copyMembership(m: Membership): Membership {
  return {
    configChangeId: m.configChangeId,
    addresses: m.addresses.map((x) => ({ ...x })),
    nonVotings: m.nonVotings.map((x) => ({ ...x })),
    witnesses: m.witnesses.map((x) => ({ ...x })),
    removed: [...m.removed],
  };
}

export class MembershipManager {
  private m: Membership;

  /** @param ordered reject changes that quote a stale configChangeId (OrderedConfigChange). */
  constructor(
    initial: Membership = emptyMembership(),
    readonly ordered: boolean = true,
  ) {
    this.m = copyMembership(initial);
  }

  /** A copy of the current membership. */
  get(): Membership {
    return copyMembership(this.m);
  }

  set(m: Membership): void {
    this.m = copyMembership(m);
  }

  /** Why cc must be refused, or null when it may be applied. */
  check(cc: ConfigChange): string | null {
    const m = this.m;
    const id = cc.replicaId;
    const type = TYPE_NAMES[cc.type];
    if (type === undefined) return `unknown config change type ${cc.type}`;
    if (!Number.isSafeInteger(id) || id <= 0)
      return `${type}: replica id must be a positive integer, got ${id}`;
    if (this.ordered && !cc.initialize && cc.configChangeId !== m.configChangeId) {
      return `${type} ${id}: config change id ${cc.configChangeId} is stale, the membership is at ${m.configChangeId} (read the membership and retry)`;
    }
    if (cc.type === ConfigChangeType.RemoveNode) {
      if (m.addresses.length === 1 && find(m.addresses, id)) {
        return `RemoveNode ${id}: it is the only full member`;
      }
      return null;
    }
    if (m.removed.includes(id)) return `${type} ${id}: replica ${id} was removed and can never return`;
    return this.checkAdd(cc, type);
  }

  private checkAdd(cc: ConfigChange, type: string): string | null {
    const m = this.m;
    const id = cc.replicaId;
    const full = find(m.addresses, id);
    const nonVoting = find(m.nonVotings, id);
    const witness = find(m.witnesses, id);
    if (cc.address.length === 0) return `${type} ${id}: address is empty`;
    switch (cc.type) {
      case ConfigChangeType.AddNode:
        if (full) return `AddNode ${id}: already a full member`;
        if (witness) return `AddNode ${id}: a witness cannot become a full member`;
        if (nonVoting) {
          if (nonVoting.address !== cc.address) {
            return `AddNode ${id}: promoting non-voting member at ${nonVoting.address} with another address ${cc.address}`;
          }
          return null;
        }
        break;
      case ConfigChangeType.AddNonVoting:
        if (nonVoting) return `AddNonVoting ${id}: already a non-voting member`;
        if (full) return `AddNonVoting ${id}: a full member cannot become non-voting`;
        if (witness) return `AddNonVoting ${id}: a witness cannot become non-voting`;
        break;
      case ConfigChangeType.AddWitness:
        if (witness) return `AddWitness ${id}: already a witness`;
        if (full) return `AddWitness ${id}: a full member cannot become a witness`;
        if (nonVoting) return `AddWitness ${id}: a non-voting member cannot become a witness`;
        break;
    }
    const user = [...m.addresses, ...m.nonVotings, ...m.witnesses].find((x) => x.address === cc.address);
    if (user) return `${type} ${id}: address ${cc.address} is already used by replica ${user.replicaId}`;
    return null;
  }

  /** Checks and, when allowed, applies cc as the config change entry at index. */
  apply(cc: ConfigChange, index: number): ConfigChangeDecision {
    if (!Number.isSafeInteger(index) || index <= this.m.configChangeId) {
      throw new Error(
        `config change at index ${index} does not follow the last one at ${this.m.configChangeId}`,
      );
    }
    const reason = this.check(cc);
    if (reason !== null) return { accepted: false, reason };
    const m = this.m;
    const member = { replicaId: cc.replicaId, address: cc.address };
    switch (cc.type) {
      case ConfigChangeType.AddNode:
        m.nonVotings = without(m.nonVotings, cc.replicaId);
        m.addresses = withMember(m.addresses, member);
        break;
      case ConfigChangeType.AddNonVoting:
        m.nonVotings = withMember(m.nonVotings, member);
        break;
      case ConfigChangeType.AddWitness:
        m.witnesses = withMember(m.witnesses, member);
        break;
      case ConfigChangeType.RemoveNode:
        m.addresses = without(m.addresses, cc.replicaId);
        m.nonVotings = without(m.nonVotings, cc.replicaId);
        m.witnesses = without(m.witnesses, cc.replicaId);
        if (!m.removed.includes(cc.replicaId)) m.removed = [...m.removed, cc.replicaId].sort((a, b) => a - b);
        break;
    }
    m.configChangeId = index;
    return { accepted: true, reason: "" };
  }
}
