import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { captureCli } from '../../testing/cli.js';
import { tempDir } from '../../testing/tmp.js';
import { run } from '../program.js';

/** What real bash completes for the words typed so far (the last one is the word under the cursor). */
function bashComplete(script: string, typed: string[]): string[] {
  const dir = tempDir('vipmesh-compl-');
  const file = join(dir, 'vipmesh.bash');
  writeFileSync(file, script);
  const words = typed.map((w) => `'${w}'`).join(' ');
  const r = spawnSync(
    'bash',
    [
      '-c',
      `source '${file}'; COMP_WORDS=(${words}); COMP_CWORD=${typed.length - 1}; _vipmesh; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`bash failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

t.test(
  'completion bash: real bash completes subcommands, each command its own flags, then files',
  async (t) => {
    const ctx = captureCli();
    t.equal(await run(['completion', 'bash'], ctx), 0);
    const script = ctx.out();
    t.same(bashComplete(script, ['vipmesh', 'to']), ['token']);
    t.same(bashComplete(script, ['vipmesh', 'ch']), ['check-config']);
    t.same(bashComplete(script, ['vipmesh', 'server', '--metrics-b']), ['--metrics-bind-address']);
    t.same(bashComplete(script, ['vipmesh', '--version']), ['--version'], 'root flags');
    t.same(
      bashComplete(script, ['vipmesh', 'token', '--data-dir', '/tmp', '--ad']),
      ['--admin'],
      'the flags of token, after a flag with a value',
    );
    t.notOk(
      bashComplete(script, ['vipmesh', 'agent', '--']).includes('--disable-agent'),
      "not the server's flags",
    );
    t.same(
      bashComplete(script, ['vipmesh', 'apply', 'vipmesh.ba']),
      ['vipmesh.bash'],
      'file names otherwise',
    );
  },
);

const hasZsh = spawnSync('zsh', ['--version']).error === undefined;

t.test(
  'completion zsh: real zsh runs it: subcommands with descriptions, the flags of the command typed, files',
  { skip: hasZsh ? false : 'zsh is not installed (.ci/run installs it)' },
  async (t) => {
    const ctx = captureCli();
    t.equal(await run(['completion', 'zsh'], ctx), 0);
    const script = ctx.out();
    t.match(script, /^#compdef vipmesh\n/);
    t.match(script, /'vipmesh' 'server:run the server/);
    t.match(script, /'vipmesh token' '--admin --data-dir --help'/);
    const probe = spawnSync('zsh', ['-n'], { input: script, encoding: 'utf8' });
    t.equal(probe.status, 0, `zsh -n accepts it: ${probe.stderr}`);
    const dir = tempDir('vipmesh-zsh-');
    writeFileSync(join(dir, '_vipmesh'), script);
    // compadd, _describe and _files stand in for the completion system's builtins: they print what zsh would offer.
    const complete = (typed: string[]): string[] => {
      const r = spawnSync(
        'zsh',
        [
          '-f',
          '-c',
          `compdef() {}; compadd() { print -l -- "\${@[2,-1]}" }; _describe() { print -l -- "\${(@P)4}" }
         _files() { print FILES }; source ./_vipmesh
         words=(${typed.map((w) => `'${w}'`).join(' ')}); CURRENT=${typed.length}; _vipmesh`,
        ],
        { cwd: dir, encoding: 'utf8' },
      );
      t.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter((l) => l !== '');
    };
    t.ok(
      complete(['vipmesh', '']).includes(
        "token:print the join token (or --admin: the admin token) from a server's data directory",
      ),
    );
    t.same(complete(['vipmesh', 'token', '-']), ['--admin', '--data-dir', '--help']);
    t.same(complete(['vipmesh', 'apply', 'x']), ['FILES']);
  },
);

t.test('completion: an unknown shell is a usage error naming the supported ones', async (t) => {
  const ctx = captureCli();
  t.equal(await run(['completion', 'fish'], ctx), 1);
  t.match(ctx.err(), /unknown shell "fish" \(supported: bash, zsh\).*VIPMESH_CLI_BAD_INPUT/);
});

t.test('help: a topic, a command, nested words, and an unknown word', async (t) => {
  const topic = captureCli();
  t.equal(await run(['help', 'config'], topic), 0);
  t.match(topic.out(), /\/etc\/vipmesh\/config\.yaml\.d\/\*\.yaml/);
  const metrics = captureCli();
  t.equal(await run(['help', 'metrics'], metrics), 0);
  t.match(metrics.out(), /vipmesh_build_info\{version,node,arch\}/);
  const cmd = captureCli();
  t.equal(await run(['help', 'token'], cmd), 0);
  t.match(cmd.out(), /Usage: vipmesh token \[options\]/);
  t.match(cmd.out(), /--admin/);
  const root = captureCli();
  t.equal(await run(['help'], root), 0);
  t.match(root.out(), /Usage: vipmesh \[options\] \[command\]/);
  t.match(root.out(), /vipmesh help <topic> for config, files, logging, metrics, completion, install/);
  const bad = captureCli();
  t.equal(await run(['help', 'nope'], bad), 1);
  t.match(bad.err(), /no command or topic "nope" \(commands: server, .*topics: config, /);
});
