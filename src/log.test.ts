import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { createLogger, moduleLogger } from './log.js';
import { tempDir } from './testing/tmp.js';
import { until } from './testing/until.js';

t.test('a module logger prints the module key once; a child of a module logger is refused', async (t) => {
  const out: string[] = [];
  const root = pino({}, { write: (s: string) => void out.push(s) });
  const arp = moduleLogger(root, 'arp');
  arp.info('hello');
  t.equal(out[0]?.match(/"module":/g)?.length, 1);
  t.equal(JSON.parse(out[0]!).module, 'arp');
  t.throws(() => moduleLogger(arp, 'tunnel'), /already module arp; give the root/);
});

t.test(
  'pretty output (a terminal): one line per event with time, level, module, message and fields',
  async (t) => {
    const dir = tempDir('vipmesh-log-');
    const path = join(dir, 'pretty.log');
    const fd = openSync(path, 'w');
    t.teardown(() => closeSync(fd));
    const root = createLogger({ pretty: true, destination: fd, level: 'info' });
    const arp = moduleLogger(root, 'arp');
    arp.info({ vip: '198.51.100.7', iface: { name: 'eth0', index: 2 } }, 'announced');
    root.warn('no module here');
    const lines = await until('the two pretty lines in the file', () => {
      const got = readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '');
      return got.length >= 2 ? got : undefined;
    });
    t.equal(lines.length, 2, 'nothing but the two events, no continuation lines');
    t.match(
      lines[0],
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \(arp\) announced \{.*"vip":"198\.51\.100\.7".*"name":"eth0".*\}$/,
    );
    t.match(lines[1], /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: no module here$/);
    t.notOk(lines[0]!.includes('\u001b['), 'no colours when the destination is not a terminal');
  },
);
