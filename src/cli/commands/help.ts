import type { Command } from 'commander';
import { VipmeshError } from '../../errors.js';
import { DEFAULT_DATA_DIR, DEFAULT_STATE_DIR } from '../../paths.js';
import { DEFAULT_CONFIG_PATH } from '../config.js';
import type { CliContext } from '../context.js';

/** `vipmesh help <topic>`: operator notes that belong to no single command. */
export const HELP_TOPICS: Record<string, { summary: string; text: string }> = {
  config: {
    summary: 'the config file and its drop-ins',
    text: `The daemons (server, agent, announce, kine) read ${DEFAULT_CONFIG_PATH} (--config, or VIPMESH_CONFIG)
and then ${DEFAULT_CONFIG_PATH}.d/*.yaml sorted by name. Keys are long flag names without the dashes
(node-ip: 198.51.100.10); a later file overrides an earlier one, "key+: value" appends to a list, and a flag
on the command line beats every file. An unknown key is a warning naming the file and is ignored.
`,
  },
  files: {
    summary: 'where vipmesh keeps its state',
    text: `${DEFAULT_CONFIG_PATH}        the config file (see: vipmesh help config)
${DEFAULT_DATA_DIR}               --data-dir: datastore, CA, certificates, tokens, node password
${DEFAULT_STATE_DIR}                    --state-dir: sysctl values to restore, gone at reboot
/etc/vipmesh/vipmesh.yaml       --admin-config: the admin kubeconfig-like file the server writes
`,
  },
  logging: {
    summary: 'log format and level',
    text: `On a terminal the daemons print one coloured line per event (time, level, module, message, fields);
otherwise (the journal, a pipe) one JSON object per line. VIPMESH_LOG_LEVEL picks the level: trace, debug,
info (the default), warn, error, fatal or silent.
`,
  },
  metrics: {
    summary: 'the Prometheus endpoint',
    text: `The server and the agent serve Prometheus text on --metrics-bind-address (default 127.0.0.1:7472,
"" turns it off) at /metrics. vipmesh_build_info{version,node,arch} is always 1 and says what runs where;
process_* and nodejs_heap_used_bytes describe the process; each module adds its vipmesh_* series.
`,
  },
  completion: {
    summary: 'shell completion',
    text: `bash: source <(vipmesh completion bash), or save it as /etc/bash_completion.d/vipmesh
zsh:  vipmesh completion zsh > "\${fpath[1]}/_vipmesh", then start a new shell (or: source <(vipmesh completion zsh))
`,
  },
  install: {
    summary: 'native parts, supported Node versions and architectures',
    text: `vipmesh runs on Node 20 or newer on linux x64, arm64 and armv7. The package ships prebuilt binaries of
its AF_PACKET addon (N-API 8: any Node >= 20) and of better-sqlite3 (for the Node ABI it was packed with)
for these three architectures, so installing it needs no compiler and no network. For another Node major
version better-sqlite3 downloads its own binary or compiles it (g++, make, python3).
`,
  },
};

function find(root: Command, path: string[]): Command | undefined {
  let cmd: Command | undefined = root;
  for (const name of path) cmd = cmd?.commands.find((c) => c.name() === name);
  return cmd;
}

/** Replaces commander's built-in `help [command]` with one that also knows {@link HELP_TOPICS}. */
export function register(program: Command, ctx: CliContext): void {
  program.helpCommand(false);
  program.addHelpText(
    'after',
    `\nMore: vipmesh help <command>, or vipmesh help <topic> for ${Object.keys(HELP_TOPICS).join(', ')}.\n`,
  );
  program
    .command('help')
    .description('help on a command, or on a topic (config, files, logging, metrics, completion, install)')
    .argument('[words...]', 'a command (as typed after vipmesh) or a topic')
    .action((path: string[]) => {
      if (path.length === 0) {
        program.outputHelp();
        return;
      }
      const topic = path.length === 1 ? HELP_TOPICS[path[0]!] : undefined;
      if (topic !== undefined) {
        ctx.stdout.write(topic.text);
        return;
      }
      const cmd = find(program, path);
      if (cmd === undefined) {
        throw new VipmeshError(
          'VIPMESH_CLI_BAD_INPUT',
          `help: no command or topic "${path.join(' ')}" (commands: ${program.commands
            .map((c) => c.name())
            .join(', ')}; topics: ${Object.keys(HELP_TOPICS).join(', ')})`,
        );
      }
      cmd.outputHelp();
    });
}
