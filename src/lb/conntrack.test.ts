import t from 'tap';
import { silentLogger } from '../log.js';
import { type RunCommand, runCommand } from './command.js';
import { ConntrackCleaner } from './conntrack.js';

t.test(
  'forget: one conntrack -D per flow; none matched counts as done; a missing tool is logged once',
  async (t) => {
    const calls: string[][] = [];
    let answer = { code: 0, stdout: '', stderr: '' };
    const run: RunCommand = async (file, args) => {
      calls.push([file, ...args]);
      return answer;
    };
    const warnings: string[] = [];
    const logger = silentLogger();
    logger.warn = ((_o: unknown, msg: string) => warnings.push(msg)) as unknown as typeof logger.warn;
    const c = new ConntrackCleaner({ run, logger });
    t.equal(await c.forget([{ vip: '198.51.100.10', port: 53, endpoint: '198.18.1.2' }]), 1);
    t.same(calls[0], [
      'conntrack',
      '-D',
      '-f',
      'ipv4',
      '-p',
      'udp',
      '--orig-dst',
      '198.51.100.10',
      '--dport',
      '53',
      '--reply-src',
      '198.18.1.2',
    ]);
    answer = {
      code: 1,
      stdout: '',
      stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n',
    };
    t.equal(await c.forget([{ vip: '2001:db8::10', port: 53, endpoint: '2001:db8::5' }]), 1);
    t.equal(calls[1]?.[3], 'ipv6');
    answer = { code: 127, stdout: '', stderr: 'conntrack: spawn conntrack ENOENT' };
    const flow = { vip: '198.51.100.10', port: 53, endpoint: '198.18.1.2' };
    t.equal(await c.forget([flow, flow]), 0);
    t.equal(warnings.length, 1, 'a missing tool is said once');
    answer = { code: 1, stdout: '', stderr: 'Operation not permitted' };
    t.equal(await c.forget([flow]), 0);
    t.equal(warnings.length, 2);
  },
);

t.test('runCommand: stdin in, output and exit code out, a missing program is 127', async (t) => {
  t.same(await runCommand('cat', [], 'hello'), { code: 0, stdout: 'hello', stderr: '' });
  const r = await runCommand('sh', ['-c', 'echo oops >&2; exit 3']);
  t.same(r, { code: 3, stdout: '', stderr: 'oops\n' });
  const m = await runCommand('vipmesh-no-such-program', []);
  t.equal(m.code, 127);
  t.match(m.stderr, /ENOENT/);
  const k = await runCommand('sh', ['-c', 'kill -9 $$']);
  t.equal(k.code, 128);
});
