/**
 * `vipmesh server` / `vipmesh agent` flag handling in-process (the daemons themselves run in the netns
 * suite and in cluster-loopback.test.ts): bad values fail with VIPMESH_CLUSTER_BAD_FLAG before anything
 * starts, and the list/label parsers hold for any input.
 */
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { nodeNameOf, parseLabels, positiveInt, splitList } from '../src/cli/commands/node-options.js';
import type { CliContext } from '../src/cli/context.js';
import { run } from '../src/cli/program.js';

function capture(): CliContext & { err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d) => {
    err += d;
  });
  return {
    stdout,
    stderr,
    exitCode: 0,
    logger: () => {
      throw new Error('the daemon must not start');
    },
    err: () => err,
  };
}

const noConfig = ['-c', '/dev/null'];

t.test('bad flags fail with VIPMESH_CLUSTER_BAD_FLAG before the daemon starts', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['agent without --server', ['agent', '--token', 'x']],
    ['agent without --token', ['agent', '--server', 'https://198.51.100.1:6443']],
    ['agent heartbeat 0', ['agent', '--server', 'https://h:1', '--token', 't', '--heartbeat-interval', '0']],
    [
      'agent node-lost-after 0',
      ['agent', '--server', 'https://h:1', '--token', 't', '--node-lost-after', '0'],
    ],
    ['agent bad label', ['agent', '--server', 'https://h:1', '--token', 't', '--node-label', 'novalue']],
    ['server node-lost-after', ['server', '--node-lost-after', '1.5']],
    ['server port', ['server', '--https-listen-port', '70000']],
    ['server heartbeat', ['server', '--heartbeat-interval', '0ms']],
    ['server label', ['server', '--node-label', '=x']],
  ];
  for (const [name, argv] of cases) {
    const ctx = capture();
    t.equal(await run([...argv, ...noConfig], ctx), 1, name);
    t.match(ctx.err(), /\(VIPMESH_CLUSTER_BAD_FLAG\)/, `${name}: the code is printed`);
  }
  const ctx = capture();
  t.equal(await run(['server', '--heartbeat-interval', 'soon', ...noConfig], ctx), 1);
  t.match(ctx.err(), /VIPMESH_BAD_DURATION/);
  const env = { ...process.env };
  t.teardown(() => {
    process.env = env;
  });
  process.env['VIPMESH_URL'] = 'https://198.51.100.1:6443';
  const viaEnv = capture();
  t.equal(await run(['agent', ...noConfig], viaEnv), 1);
  t.match(viaEnv.err(), /--token/, 'VIPMESH_URL is taken as --server; the token is what is missing');
});

t.test('the daemons document every flag in --help', async (t) => {
  for (const cmd of ['server', 'agent']) {
    let out = '';
    const ctx = capture();
    (ctx.stdout as PassThrough).on('data', (d) => {
      out += d;
    });
    t.equal(await run([cmd, '--help'], ctx), 0);
    for (const line of out.split('\n').filter((l) => /^\s+--/.test(l))) {
      t.match(
        line,
        /--[a-z-]+(?: <[^>]+>)?\s+\S/,
        `${cmd}: ${line.trim().split(/\s+/)[0]} has a description`,
      );
    }
  }
});

t.test('splitList and parseLabels hold for any input', async (t) => {
  t.same(splitList(['a,b', ' c ', '']), ['a', 'b', 'c']);
  t.same(splitList(undefined), []);
  t.same(parseLabels(['zone=a,rack=1', 'x=']), { zone: 'a', rack: '1', x: '' });
  t.equal(positiveInt('3', '--n'), 3);
  t.equal(nodeNameOf('Pi-1'), 'pi-1');
  const key = fc.stringMatching(/^[a-z][a-z0-9./-]{0,20}$/);
  const value = fc.stringMatching(/^[A-Za-z0-9._-]{0,20}$/);
  fc.assert(
    fc.property(fc.dictionary(key, value, { maxKeys: 5 }), (labels) => {
      const flags = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
      t.same(parseLabels(flags), labels);
      return true;
    }),
  );
  fc.assert(
    fc.property(fc.array(fc.string()), (values) => {
      const out = splitList(values);
      return out.every((s) => s !== '' && !s.includes(',') && s === s.trim());
    }),
  );
  fc.assert(
    fc.property(fc.array(fc.string()), (values) => {
      try {
        parseLabels(values);
        return true;
      } catch (err) {
        return (err as { code?: string }).code === 'VIPMESH_CLUSTER_BAD_FLAG';
      }
    }),
  );
});
