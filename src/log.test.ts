import { pino } from 'pino';
import t from 'tap';
import { moduleLogger } from './log.js';

t.test('a module logger prints the module key once; a child of a module logger is refused', async (t) => {
  const out: string[] = [];
  const root = pino({}, { write: (s: string) => void out.push(s) });
  const arp = moduleLogger(root, 'arp');
  arp.info('hello');
  t.equal(out[0]?.match(/"module":/g)?.length, 1);
  t.equal(JSON.parse(out[0]!).module, 'arp');
  t.throws(() => moduleLogger(arp, 'tunnel'), /already module arp; give the root/);
});
