/**
 * The table of subcommands: their help, their fields and how each one starts once its
 * options are valid. main.ts turns it into cac commands and flag parsing.
 */
import * as backup from "./commands/backup.ts";
import * as cmd from "./commands/cmd.ts";
import * as dev from "./commands/dev.ts";
import * as drummer from "./commands/drummer.ts";
import * as nodehost from "./commands/nodehost.ts";
import * as restore from "./commands/restore.ts";
import * as version from "./commands/version.ts";
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

export interface Subcommand {
  /** cac's command name with its positional arguments. */
  usage: string;
  description: string;
  fields: readonly Field[];
  /** Whether `--config file.json` applies. */
  configFile: boolean;
  examples: string[];
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
      "  $ longboat nodehost --raft-address h1:7001 --api-address h1:8001 --master d1:9001,d2:9001,d3:9001",
      "  $ longboat nodehost --raft-address h1:7001 --api-address h1:8001 \\",
      "      --shard id=1,app=kv,replica=1,members=1@h1:7001;2@h2:7001;3@h3:7001",
    ],
    start: (input) => nodehost.run(resolveNodeHostConfig(input)),
  },
  drummer: {
    usage: "drummer",
    description:
      "Run one drummer of the master group (3 or 5 of them replicate DrummerDB): the one that leads places the defined shards on NodeHosts started with --master, notices a NodeHost silent for --dead-timeout and rebuilds its replicas elsewhere",
    fields: DRUMMER_FIELDS,
    configFile: true,
    examples: [
      "  $ longboat drummer --id 1 --peers 1=d1:9101,2=d2:9101,3=d3:9101 --api-address d1:9001",
      "  $ longboat drummer --id 2 --peers 1=d1:9101,2=d2:9101,3=d3:9101 --api-address d2:9001 --dead-timeout 30s",
    ],
    start: (input) => drummer.run(resolveDrummerConfig(input)),
  },
  cmd: {
    usage: "cmd <op> [...args]",
    description: `Send one request to a NodeHost or the drummers. Ops: ${cmdOps}`,
    fields: CMD_FIELDS,
    configFile: true,
    examples: [
      "  $ longboat cmd status --drummer d1:9001,d2:9001,d3:9001",
      "  $ longboat cmd put --nodehost h1:8001 --shard 1 greeting hello",
      "  $ longboat cmd cas --nodehost h1:8001 --shard 1 greeting hello bonjour",
      "  $ longboat cmd add --nodehost h1:8001 --shard 1 visits -- -1   # a counter; negative after --",
    ],
    start: (input, args) => cmd.run(resolveCmdConfig({ ...input, args })),
  },
  backup: {
    usage: "backup",
    description:
      "Back up a shard: the leader takes a snapshot holding every acknowledged write, and it is streamed to a file on this machine, checksum verified",
    fields: BACKUP_FIELDS,
    configFile: true,
    examples: ["  $ longboat backup --nodehost h1:8001,h2:8001,h3:8001 --shard 1 --out shard-1.lbsnap"],
    start: (input) => backup.run(resolveBackupConfig(input)),
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
    start: (input) => restore.run(resolveRestoreConfig(input)),
  },
  dev: {
    usage: "dev",
    description: "Run a whole deployment on this machine: 3 NodeHosts on 127.0.0.1 with kv shards",
    fields: DEV_FIELDS,
    configFile: true,
    examples: ["  $ longboat dev", "  $ longboat dev --base-port 7200 --shards 8"],
    start: (input) => dev.run(resolveDevConfig(input)),
  },
  version: {
    usage: "version",
    description: "Print the version, git commit and Bun version of this build",
    fields: [],
    configFile: false,
    examples: ["  $ longboat version"],
    start: () => version.run(),
  },
};
