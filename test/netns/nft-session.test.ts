/**
 * The kept `nft -i` with the real nft, in a namespace of the test's own: differences land as one
 * transaction each, a refused one changes nothing and the table is then replaced whole, and a killed nft
 * is replaced by the next update.
 */
import t from 'tap';
import { systemClock } from '../../src/clock.js';
import {
  NftSession,
  NftTable,
  type RunCommand,
  render,
  runCommand,
  spawnProcess,
} from '../../src/lb/index.js';
import { silentLogger } from '../../src/log.js';
import { lbService } from '../../src/testing/lb-services.js';
import { canUseNetns, Lab } from './lab.js';

if (!canUseNetns()) {
  t.fail('needs root and ip netns');
  process.exit(1);
}

const lab = await Lab.create();
t.teardown(() => lab.destroy());
const { ns } = await lab.addNode('nft');
const inNs: RunCommand = (file, args, stdin) => runCommand('ip', ['netns', 'exec', ns, file, ...args], stdin);
const pids: number[] = [];
const session = new NftSession({
  spawn: (file, args) => {
    const child = spawnProcess('ip', ['netns', 'exec', ns, file, ...args]);
    if (child.pid !== undefined) pids.push(child.pid);
    return child;
  },
  clock: systemClock,
});
const table = new NftTable({ run: inNs, session, clock: systemClock, logger: silentLogger() });
t.teardown(() => table.remove().catch(() => undefined));

const svc = (name: string, vip: string, eps: string[]) => lbService(name, [vip], eps);
const listing = async () => (await inNs('nft', ['list', 'table', 'inet', 'vipmesh'])).stdout;

t.test('differences go through the kept nft and land in the kernel', async (t) => {
  const a = svc('a', '198.51.100.10', ['198.18.1.2', '198.18.1.3']);
  const b = svc('b', '198.51.100.11', ['198.18.2.2']);
  t.equal((await table.apply(render({ services: [a, b] }).ruleset)).mode, 'full');
  t.ok(session.running, 'the kept nft starts with the first table, before the first difference needs it');
  const r = await table.apply(
    render({ services: [{ ...a, endpoints: a.endpoints.slice(0, 1) }, b] }).ruleset,
  );
  t.equal(r.mode, 'diff');
  t.same(r.errors, []);
  t.ok(session.running, 'the update went through nft -i');
  const l = await listing();
  t.match(l, /198\.18\.1\.2/);
  t.notMatch(l, /198\.18\.1\.3/, 'the removed endpoint is gone from the kernel');
  t.match(l, /198\.18\.2\.2/, 'the other Service is untouched');
  const c = svc('c', '198.51.100.12', ['198.18.3.2']);
  t.equal((await table.apply(render({ services: [a, b, c] }).ruleset)).mode, 'diff');
  t.match(await listing(), /198\.51\.100\.12 \. tcp \. 80 : goto/);
  t.equal(pids.length, 1, 'one nft process for every difference');
  t.equal(await table.verify(), false, 'the compare agrees with what the updates left');
});

t.test(
  'a Service with ClientIP affinity (sets with their own `;`) goes through the kept nft too',
  async (t) => {
    const plain = svc('aff', '198.51.100.13', ['198.18.4.2', '198.18.4.3']);
    await table.apply(render({ services: [plain] }).ruleset);
    const sticky = { ...plain, sessionAffinity: 'ClientIP' as const, affinityTimeoutSeconds: 60 };
    const r = await table.apply(render({ services: [sticky] }).ruleset);
    t.equal(r.mode, 'diff');
    const l = await listing();
    t.match(l, /set a_default_aff_\S+ \{[^}]*timeout 1m/);
    t.match(l, /update @a_default_aff_/);
    t.equal(await table.verify(), false);
  },
);

t.test('a difference nft refuses changes nothing; the table is then replaced whole', async (t) => {
  const a = svc('a', '198.51.100.10', ['198.18.1.2']);
  await table.apply(render({ services: [a] }).ruleset);
  // Someone deletes the Service's chain by hand: the next difference (a flush of it) is refused.
  const chain = /chain (s_default_a_\S+) \{/.exec(await listing())?.[1];
  t.ok(chain);
  await inNs('nft', ['delete', 'element', 'inet', 'vipmesh', 'svc4', '{ 198.51.100.10 . tcp . 80 }']);
  await inNs('nft', ['delete', 'chain', 'inet', 'vipmesh', chain!]);
  const r = await table.apply(
    render({ services: [lbService('a', ['198.51.100.10'], ['198.18.1.2', '198.18.1.5'])] }).ruleset,
  );
  t.equal(r.mode, 'full', 'replaced whole after the refusal');
  t.match(await listing(), new RegExp(`chain ${chain}`));
  t.match(await listing(), /198\.51\.100\.10 \. tcp \. 80 : goto/);
});

t.test('a killed nft -i is replaced by the next update', async (t) => {
  const a = svc('a', '198.51.100.10', ['198.18.1.2', '198.18.1.4']);
  await table.apply(render({ services: [a] }).ruleset);
  const before = pids.length;
  process.kill(pids.at(-1)!, 'SIGKILL');
  const r = await table.apply(render({ services: [{ ...a, endpoints: a.endpoints.slice(1) }] }).ruleset);
  t.not(r.mode, 'none');
  t.notMatch(await listing(), /198\.18\.1\.2 /);
  t.match(await listing(), /198\.18\.1\.4/);
  const r2 = await table.apply(render({ services: [a] }).ruleset);
  t.equal(r2.mode, 'diff');
  t.ok(pids.length > before, 'a new nft was started');
  t.match(await listing(), /198\.18\.1\.2/);
});
