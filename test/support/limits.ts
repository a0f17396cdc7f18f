/**
 * Wall-clock limits of tests, sized for a loaded 2-core machine: CI's 2 cores with other
 * test runs beside (load average 15–30 was measured while several suites ran here, so a
 * test takes 10–20× its idle time). A limit is a backstop against a hang, never a claim
 * about speed: nothing asserts how fast something ran.
 *
 * A test in simulated time has its real bound in simulated time: every wait of its harness
 * names its simulated bound, and a failure says the simulated ms reached (engine/cluster.ts,
 * sim/run.ts). Its wall-clock limit only catches a harness that stopped advancing time.
 */

/**
 * Default limit of every test (the preload sets it): the slowest test without its own limit
 * takes about 3 s on an idle 2-core machine; 20× that.
 */
export const TEST_WALL_MS_DEFAULT = 60_000;

/**
 * Limit of a test in simulated time (engine clusters, simulator seeds): the heaviest, 100
 * shards on three hosts, takes about 3 s idle; 40× that, because a stopped simulation shows
 * itself in simulated time long before.
 */
export const SIM_TEST_WALL_MS = 120_000;

/**
 * Wall-clock bound per simulator seed (test/sim runSeed: up to 8 s simulated): about 0.15 s
 * on an idle 2-core machine; 200 seeds took 8.7 s each at load average 30 here.
 */
export const SIM_SEED_WALL_MS = 10_000;

/**
 * Limit of a test that starts real processes or servers and waits for them in real time
 * (the compiled binary, HTTP/2 transports): a process start and a Raft election take
 * well under 2 s idle; the waits inside such tests are bounded by REAL_WAIT_MS.
 */
export const PROCESS_TEST_WALL_MS = 120_000;

/**
 * Bound of one wait in real time (a host's API to answer, a leader to be elected, a message
 * to arrive): a few hundred ms idle, 30 s under load.
 */
export const REAL_WAIT_MS = 30_000;
