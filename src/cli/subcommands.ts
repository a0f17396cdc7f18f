/**
 * The table of subcommands: their help, their fields and how each one starts once its
 * options are valid. main.ts turns it into cac commands and flag parsing.
 *
 * A command's module is imported only when that command runs, after its options are valid:
 * `--help`, `version` and a bad flag never load the engine, the API client or the
 * generated protobuf code (start-up time: docs/performance.md).
 */
import {
  BACKUP_FIELDS,
  CMD_FIELDS,
  CMD_OPS,
  type ConfigInput,
  DEV_FIELDS,
  DRUMMER_FIELDS,
  type Field,
  NODEHOST_FIELDS,
  RESTORE_FIELDS,
  resolveBackupConfig,
  resolveCmdConfig,
  resolveDevConfig,
  resolveDrummerConfig,
  resolveNodeHostConfig,
  resolveRestoreConfig,
} from "./config.ts";
import { mark } from "./trace.ts";

export interface Subcommand {
  /** cac's command name with its positional arguments. */
  usage: string;
  description: string;
  fields: readonly Field[];
  /** Whether `--config file.json` applies. */
  configFile: boolean;
  examples: string[];
  /**
   * The command writes only through src/cli/output.ts (complete writes), never through
   * process.stdout/stderr, so its exit need not drain those (creating them costs start-up time).
   */
  completeWrites?: boolean;
  /** Validates (throws ConfigError) and runs; returns the exit code. */
  start(input: ConfigInput, args: string[]): Promise<number>;
}

const cmdOps = Object.entries(CMD_OPS)
  .map(([op, args]) => [op, ...args.map((a) => `<${a}>`)].join(" "))
  .join(" | ");

export const SUBCOMMANDS: Record<string, Subcommand> = {
  nodehost: {
    usage: "nodehost",
    description:
      "Run a NodeHost: one process hosting replicas of many shards, with its raft transport and HTTP API",
    fields: NODEHOST_FIELDS,
    configFile: true,
    examples: [
      '  $ longboat nodehost --raft-address h1:7001 --api-address h1:8001 --api-token "$TOKEN" \\',
      '      --master d1:9001,d2:9001,d3:9001 --master-token "$TOKEN" --master-tls-ca ca.pem',
      "  $ longboat nodehost --raft-address h1:7001 --api-address h1:8001 \\",
      '      --shard "id=1,app=kv,replica=1,members=1@h1:7001;2@h2:7001;3@h3:7001"',
      "  (quote --shard: the ; between members would end the command in a shell)",
    ],
    start: async (input) => {
      const config = resolveNodeHostConfig(input);
      return (await import("./commands/nodehost.ts")).run(config);
    },
  },
  drummer: {
    usage: "drummer",
    description:
      "Run one drummer of the master group (3 or 5 of them replicate DrummerDB): the one that leads places the defined shards on NodeHosts started with --master, notices a NodeHost silent for --dead-timeout and rebuilds its replicas elsewhere",
    fields: DRUMMER_FIELDS,
    configFile: true,
    examples: [
      "  $ longboat drummer --id 1 --peers 1=127.0.0.1:9101,2=127.0.0.1:9102,3=127.0.0.1:9103 --api-address 127.0.0.1:9001",
      "  $ longboat drummer --id 2 --peers 1=d1:9101,2=d2:9101,3=d3:9101 --api-address d2:9001 --dead-timeout 30s \\",
      '      --api-token "$TOKEN" --api-tls-cert d2.pem --api-tls-key d2.key',
    ],
    start: async (input) => {
      const config = resolveDrummerConfig(input);
      return (await import("./commands/drummer.ts")).run(config);
    },
  },
  cmd: {
    usage: "cmd <op> [...args]",
    description: `Send one request to a NodeHost or the drummers. Ops: ${cmdOps}. put's <value> may be - (read stdin) or left out for --file; status and health ask every --nodehost`,
    fields: CMD_FIELDS,
    configFile: true,
    completeWrites: true,
    examples: [
      "  $ longboat cmd status --drummer d1:9001,d2:9001,d3:9001",
      "  $ longboat cmd create-shard --drummer d1:9001,d2:9001 --id 1 --app kv --replicas 3 --regions eu=2,us=1",
      "  $ longboat cmd bootstrap --drummer d1:9001,d2:9001",
      "  $ longboat cmd wait --healthy --drummer d1:9001,d2:9001 --timeout 60s   # exit 0 once healthy",
      "  $ longboat cmd status --nodehost h1:8001,h2:8001,h3:8001",
      "  $ longboat cmd health --nodehost h1:8001,h2:8001,h3:8001 && echo healthy",
      "  $ longboat cmd put --nodehost h1:8001 --shard 1 greeting hello",
      "  $ longboat cmd put --nodehost h1:8001 --shard 1 config --file config.json",
      "  $ longboat cmd scan --nodehost h1:8001 --shard 1 --prefix user/",
      "  $ longboat cmd cas --nodehost h1:8001 --shard 1 greeting hello bonjour",
      "  $ longboat cmd add --nodehost h1:8001 --shard 1 visits -- -1   # a counter; negative after --",
    ],
    start: async (input, args) => {
      const config = resolveCmdConfig({ ...input, args });
      mark("config");
      const cmd = await import("./commands/cmd.ts");
      mark("command");
      return cmd.run(config);
    },
  },
  backup: {
    usage: "backup",
    description:
      "Back up a shard: the leader takes a snapshot holding every acknowledged write, and it is streamed to a file on this machine, checksum verified",
    fields: BACKUP_FIELDS,
    configFile: true,
    examples: ["  $ longboat backup --nodehost h1:8001,h2:8001,h3:8001 --shard 1 --out shard-1.lbsnap"],
    start: async (input) => {
      const config = resolveBackupConfig(input);
      return (await import("./commands/backup.ts")).run(config);
    },
  },
  restore: {
    usage: "restore",
    description:
      "Offline: rewrite one replica's state in a data directory from a backup, with a new membership (a shard that lost quorum); run it for every member, then start them",
    fields: RESTORE_FIELDS,
    configFile: true,
    examples: [
      "  $ longboat restore --data-dir /var/lib/longboat --shard 1 --replica 1 \\",
      "      --members 1@h1:7001,2@h4:7001,3@h5:7001 --from shard-1.lbsnap",
    ],
    start: async (input) => {
      const config = resolveRestoreConfig(input);
      return (await import("./commands/restore.ts")).run(config);
    },
  },
  dev: {
    usage: "dev",
    description:
      "Run a managed deployment on this machine: 3 drummers and 4 NodeHosts in master mode on 127.0.0.1, with kv shards of 3 replicas placed by the drummers; a process that dies is restarted (or left dead with --no-restart, to watch the drummers rebuild its replicas); Ctrl-C stops everything",
    fields: DEV_FIELDS,
    configFile: true,
    examples: [
      "  $ longboat dev",
      "  $ longboat dev --no-restart --dead-timeout 5s",
      "  $ longboat dev --base-port 7200 --shards 8 --data-dir /tmp/lb-dev",
    ],
    start: async (input) => {
      const config = resolveDevConfig(input);
      return (await import("./commands/dev.ts")).run(config);
    },
  },
  version: {
    usage: "version",
    description: "Print the version, git commit and Bun version of this build",
    fields: [],
    configFile: false,
    completeWrites: true,
    examples: ["  $ longboat version"],
    start: async () => (await import("./commands/version.ts")).run(),
  },
};
