/**
 * Planted bugs for the simulator's self-test (test/sim/planted.test.ts): each one breaks a
 * safety rule on purpose, so a test can assert that the simulator notices. They are off
 * unless the environment variable LONGBOAT_SIM_BUG names one, and never on in a production
 * build: build.ts defines process.env.NODE_ENV as "production", which turns this function
 * into `return null` and lets the bundler drop every hook.
 *
 * - "stale-read": a replica that believes it leads answers a read at once from its state
 *   machine, without ReadIndex (a deposed or freshly elected leader serves stale data).
 * - "early-ack": the engine sends votes and append acknowledgements before persisting
 *   what they promise (a crash or disk error afterwards forgets an acknowledged entry or vote).
 * - "old-term-commit": the leader commits an entry of an earlier term by counting replicas
 *   (Raft §5.4.2, Figure 8): NodeHost sets the raft config flag plantedCommitAnyTerm, which
 *   tryCommit (src/raft/replicate.ts) reads.
 * - "skip-commit-write": the engine never writes a hard state in which only the commit index
 *   moved (instead of writing it, unwaited, in order with the replica's later writes), so a
 *   later entry can be durable while the commit index before it is not: after a restart a
 *   replica can hold two config changes above its commit and cannot become leader
 *   (docs/durability.md, "The commit index on disk").
 */
export type PlantedBug = "stale-read" | "early-ack" | "old-term-commit" | "skip-commit-write";

export const PLANTED_BUGS: readonly PlantedBug[] = [
  "stale-read",
  "early-ack",
  "old-term-commit",
  "skip-commit-write",
];

/** The planted bug switched on by LONGBOAT_SIM_BUG, or null (always null in production). */
export function plantedBug(): PlantedBug | null {
  if (process.env.NODE_ENV === "production") return null;
  const name = process.env.LONGBOAT_SIM_BUG;
  if (name === undefined || name === "") return null;
  if (!(PLANTED_BUGS as readonly string[]).includes(name)) {
    throw new Error(`LONGBOAT_SIM_BUG=${name} names no planted bug; known: ${PLANTED_BUGS.join(", ")}`);
  }
  return name as PlantedBug;
}
