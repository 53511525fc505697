import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import t from 'tap';
import { captureCli } from '../testing/cli.js';
import { tempDir } from '../testing/tmp.js';
import { applyConfig, collect, loadConfig } from './config.js';
import { run } from './program.js';

t.test('version and help', async (t) => {
  const ctx = captureCli();
  t.equal(await run(['version'], ctx), 0);
  t.match(ctx.out(), /^vipmesh v\d+\.\d+\.\d+ \(node v/);
  const help = captureCli();
  t.equal(await run(['--help'], help), 0);
  for (const cmd of [
    'server',
    'agent',
    'announce',
    'kine',
    'demo',
    'check-config',
    'apply',
    'get',
    'delete',
    'cordon',
    'uncordon',
    'drain',
    'token',
  ]) {
    t.match(help.out(), new RegExp(`\\n  ${cmd} `), `--help lists ${cmd}`);
  }
});

t.test('an unknown command is a usage error', async (t) => {
  const ctx = captureCli();
  t.equal(await run(['frobnicate'], ctx), 1);
  t.match(ctx.err(), /unknown command 'frobnicate'/);
});

t.test('config file: keys are long flags, lists repeat, drop-ins override, + appends', async (t) => {
  const dir = tempDir('vipmesh-cfg-');
  const path = join(dir, 'config.yaml');
  writeFileSync(path, 'node-name: pi1\nvip: [198.51.100.1]\ntls-san: [a]\nbogus-key: 1\n');
  mkdirSync(`${path}.d`);
  writeFileSync(join(`${path}.d`, '10-a.yaml'), 'node-name: pi2\ntls-san+: [b]\n');
  writeFileSync(join(`${path}.d`, 'README'), 'ignored: not yaml by name\n');
  const loaded = loadConfig(path, true);
  t.same(loaded.files, [path, join(`${path}.d`, '10-a.yaml')]);
  t.equal(loaded.values.get('node-name')?.value, 'pi2');
  t.same(loaded.values.get('tls-san')?.value, ['a', 'b']);

  const cmd = new Command('agent')
    .option('--node-name <name>')
    .option('--vip <ip>', 'repeatable', collect)
    .option('--tls-san <name>', 'repeatable', collect)
    .option('--server <url>');
  cmd.exitOverride();
  cmd.parse(['--server', 'https://cli:6443'], { from: 'user' });
  cmd.setOptionValueWithSource('server', 'https://cli:6443', 'cli');
  const { unknown } = applyConfig(cmd, loaded);
  t.same(
    unknown.map((u) => u.key),
    ['bogus-key'],
    'unknown keys are reported by name',
  );
  t.equal(cmd.opts()['nodeName'], 'pi2');
  t.same(cmd.opts()['vip'], ['198.51.100.1']);
  t.same(cmd.opts()['tlsSan'], ['a', 'b']);
  t.equal(cmd.opts()['server'], 'https://cli:6443', 'the CLI flag wins over the file');
});

t.test('config file errors name the file', async (t) => {
  const dir = tempDir('vipmesh-cfg-');
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'a: [\n');
  t.throws(() => loadConfig(bad, true), { code: 'VIPMESH_CONFIG_INVALID' });
  const list = join(dir, 'list.yaml');
  writeFileSync(list, '- a\n');
  t.throws(() => loadConfig(list, true), { code: 'VIPMESH_CONFIG_INVALID' });
  t.throws(() => loadConfig(join(dir, 'missing.yaml'), true), { code: 'VIPMESH_CONFIG_MISSING' });
  t.equal(loadConfig(join(dir, 'missing.yaml'), false).files.length, 0, 'the default path may be absent');
});

t.test('a daemon command reads its config file and warns about unknown keys by name', async (t) => {
  const dir = tempDir('vipmesh-cfg-');
  const path = join(dir, 'config.yaml');
  writeFileSync(path, 'bogus-key: 1\ninterface: [nonexistent0]\n');
  const ctx = captureCli();
  t.equal(await run(['announce', '--config', path], ctx), 1, 'announce still needs a --vip');
  t.match(ctx.err(), `warning: ${path}: unknown key "bogus-key" (not a flag of vipmesh announce); ignored`);
  t.match(ctx.err(), /VIPMESH_ARP_BAD_VIP/);
  const missing = captureCli();
  t.equal(await run(['announce', '--config', join(dir, 'nope.yaml')], missing), 1);
  t.match(missing.err(), /VIPMESH_CONFIG_MISSING/);
});
