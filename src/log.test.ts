import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { createLogger, isJournalStream, journalLine, moduleLogger } from './log.js';
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

t.test('journal lines: priority prefix, module, message, fields; JSON only when asked', async (t) => {
  t.equal(
    journalLine(
      JSON.stringify({
        level: 30,
        time: 1,
        pid: 2,
        hostname: 'h',
        module: 'arp',
        msg: 'holding VIP',
        ip: '198.51.100.1',
        iface: '*',
      }),
    ),
    '<6>arp: holding VIP ip=198.51.100.1 iface=*\n',
  );
  t.equal(
    journalLine(
      JSON.stringify({
        level: 50,
        module: 'agent',
        msg: 'failed',
        err: { message: 'no\nway', code: 'VIPMESH_X' },
        n: 3,
      }),
    ),
    '<3>agent: failed err="no\\nway (VIPMESH_X)" n=3\n',
    'an error shows message and code on one line',
  );
  t.equal(journalLine(JSON.stringify({ level: 40, msg: 'a b' })), '<4>a b\n');
  t.equal(journalLine(JSON.stringify({ level: 20, msg: 'x', s: 'two words' })), '<7>x s="two words"\n');
  t.equal(journalLine(JSON.stringify({ level: 60, msg: 'x' })).slice(0, 3), '<2>');
  t.equal(journalLine('not json'), 'not json', 'anything else passes through');

  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-log-'));
  const file = join(dir, 'out');
  const fd = openSync(file, 'w');
  const st = fstatSync(fd);
  t.ok(isJournalStream(fd, { JOURNAL_STREAM: `${st.dev}:${st.ino}` }), 'the stream systemd named');
  t.notOk(isJournalStream(fd, { JOURNAL_STREAM: '1:2' }), 'another stream');
  t.notOk(isJournalStream(fd, {}), 'no JOURNAL_STREAM');
  t.notOk(isJournalStream(9999, { JOURNAL_STREAM: '1:2' }), 'a closed fd');
  createLogger({ destination: fd, journal: true }).child({ module: 'server' }).info({ port: 6443 }, 'up');
  createLogger({ destination: fd, journal: false }).info('json');
  closeSync(fd);
  const [journal, json] = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(journal, '<6>server: up port=6443');
  t.equal(JSON.parse(json!).msg, 'json');
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
