import { LongboatError } from "./errors.ts";

/**
 * Planted bugs for the simulator's self-test (test/sim/planted.test.ts): each one breaks a
 * safety rule on purpose, so a test can assert that the simulator notices. A bug is on only
 * when a test passes it as the NodeHost option `expert.plantedBug`; the library never reads
 * it from the environment (the simulator's harness reads LONGBOAT_SIM_BUG to pick one for a
 * replay). A production build has none: build.ts defines LONGBOAT_PRODUCTION, which turns
 * plantedBugOption() into `return null`, so no hook can be switched on in the binary.
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
 * - "snapshot-no-fsync": a received snapshot is renamed into place without an fsync of its
 *   data (SnapshotDir.importFile as it was before issue #13): a power loss after the replica
 *   recorded and acknowledged it leaves a truncated or empty file.
 */
export type PlantedBug =
  | "stale-read"
  | "early-ack"
  | "old-term-commit"
  | "skip-commit-write"
  | "snapshot-no-fsync";

export const PLANTED_BUGS: readonly PlantedBug[] = [
  "stale-read",
  "early-ack",
  "old-term-commit",
  "skip-commit-write",
  "snapshot-no-fsync",
];

// build.ts defines it as true in the binary; when run from source it is not defined.
declare const LONGBOAT_PRODUCTION: boolean | undefined;

/**
 * The planted bug an `expert.plantedBug` option switches on, or null (always null in a
 * production build). An unknown name is refused.
 */
export function plantedBugOption(name: string | null | undefined): PlantedBug | null {
  if (typeof LONGBOAT_PRODUCTION !== "undefined" && LONGBOAT_PRODUCTION) return null;
  if (name === undefined || name === null || name === "") return null;
  if (!(PLANTED_BUGS as readonly string[]).includes(name)) {
    throw new LongboatError(
      "invalidOption",
      `plantedBug "${name}" names no planted bug; known: ${PLANTED_BUGS.join(", ")}`,
    );
  }
  return name as PlantedBug;
}
