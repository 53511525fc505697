import type { Command } from 'commander';
import { VipmeshError } from '../../errors.js';
import type { CliContext } from '../context.js';

/** One command of the tree: its path from the root ("vipmesh kine"), its subcommands and its long flags. */
interface Node {
  path: string;
  subcommands: { name: string; description: string }[];
  flags: string[];
}

/** Every command of `root`'s tree, root first, generated from commander's own definitions. */
function walk(root: Command): Node[] {
  const out: Node[] = [];
  const visit = (cmd: Command, path: string): void => {
    const subs = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
    const flags = cmd.options.flatMap((o) => [o.long, o.short]).filter((f): f is string => f !== undefined);
    flags.push('--help');
    out.push({
      path,
      subcommands: subs.map((c) => ({ name: c.name(), description: c.description() })),
      flags: [...new Set(flags)].sort(),
    });
    for (const c of subs) visit(c, `${path} ${c.name()}`);
  };
  visit(root, root.name());
  return out;
}

function words(n: Node): string {
  return [...n.subcommands.map((s) => s.name), ...n.flags].join(' ');
}

/**
 * A bash completion script for `root`: subcommands, then the long and short flags of the command typed so
 * far; file names where nothing else fits (config files, manifests, data directories).
 */
export function bashCompletion(root: Command): string {
  const name = root.name();
  const cases = walk(root)
    .map((n) => `    '${n.path}') words='${words(n)}' ;;`)
    .join('\n');
  return `# bash completion for ${name}; load with: source <(${name} completion bash)
_${name}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmdpath=${name} words next i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) continue ;; esac
    next="$cmdpath \${COMP_WORDS[i]}"
    case "$next" in
${walk(root)
  .slice(1)
  .map((n) => `      '${n.path}') cmdpath=$next ;;`)
  .join('\n')}
    esac
  done
  case "$cmdpath" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
  if [ \${#COMPREPLY[@]} -eq 0 ] && [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _${name} ${name}
`;
}

/** A zsh completion function for `root` (subcommands with their descriptions, then flags, then files). */
export function zshCompletion(root: Command): string {
  const name = root.name();
  const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
  const nodes = walk(root);
  const subs = nodes
    .filter((n) => n.subcommands.length > 0)
    .map((n) => `    ${q(n.path)} ${q(n.subcommands.map((s) => `${s.name}:${s.description}`).join('\n'))}`)
    .join('\n');
  const flags = nodes.map((n) => `    ${q(n.path)} ${q(n.flags.join(' '))}`).join('\n');
  return `#compdef ${name}
# zsh completion for ${name}; put this file on $fpath as _${name}, or: source <(${name} completion zsh)
_${name}() {
  local -A subs flags
  subs=(
${subs}
  )
  flags=(
${flags}
  )
  local cmdpath=${name} w key
  for w in \${words[2,CURRENT-1]}; do
    [[ $w == -* ]] && continue
    key="$cmdpath $w"
    (( \${+flags[$key]} )) && cmdpath=$key
  done
  if [[ \${words[CURRENT]} == -* ]]; then
    compadd -- \${=flags[$cmdpath]}
  elif (( \${+subs[$cmdpath]} )); then
    local -a described
    described=(\${(f)subs[$cmdpath]})
    _describe -t commands "${name} command" described
  else
    _files
  fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _${name} "$@"; else compdef _${name} ${name}; fi
`;
}

/** `vipmesh completion bash|zsh`: print a completion script generated from the command tree. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(vipmesh completion bash), or zsh')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') ctx.stdout.write(bashCompletion(program));
      else if (shell === 'zsh') ctx.stdout.write(zshCompletion(program));
      else {
        throw new VipmeshError(
          'VIPMESH_CLI_BAD_INPUT',
          `completion: unknown shell "${shell}" (supported: bash, zsh)`,
        );
      }
    });
}
