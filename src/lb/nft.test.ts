import t from 'tap';
import { isVipmeshError } from '../errors.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { lbService } from '../testing/lb-services.js';
import { until } from '../testing/until.js';
import type { CommandResult, RunCommand } from './command.js';
import { LISTING_DELAY_MS, NftTable, stripSetElements } from './nft.js';
import { render } from './render.js';
import { diffScript, fullScript } from './script.js';

/** A stand-in `nft`: keeps the scripts it was given; `list` prints a listing the test controls. */
function fakeNft() {
  const scripts: string[] = [];
  const state = {
    listing: 'table inet vipmesh { v0 }',
    fail: undefined as ((s: string) => CommandResult | undefined) | undefined,
  };
  const run: RunCommand = async (_file, args, stdin) => {
    if (args[0] === 'list') return { code: 0, stdout: state.listing, stderr: '' };
    const s = stdin ?? '';
    const f = state.fail?.(s);
    if (f !== undefined) return f;
    scripts.push(s);
    state.listing = `table inet vipmesh { v${scripts.length} }`;
    return { code: 0, stdout: '', stderr: '' };
  };
  return { run, scripts, state };
}

const svcs = (n: number, eps = ['198.18.1.2', '198.18.1.3']) =>
  Array.from({ length: n }, (_, i) => lbService(`s${i}`, [`198.51.100.${10 + i}`], eps));

t.test('first apply replaces the table, later ones send only the difference', async (t) => {
  const nft = fakeNft();
  const table = new NftTable({ run: nft.run, clock: new FakeClock(), logger: silentLogger() });
  const a = render({ services: svcs(3) }).ruleset;
  const r1 = await table.apply(a);
  t.equal(r1.mode, 'full');
  t.match(nft.scripts[0], /^table inet vipmesh\ndelete table inet vipmesh\ntable inet vipmesh \{/);
  const b = render({ services: [...svcs(2), lbService('s2', ['198.51.100.12'], ['198.18.1.2'])] }).ruleset;
  const r2 = await table.apply(b);
  t.equal(r2.mode, 'diff');
  const diff = nft.scripts[1]!;
  t.match(diff, /flush chain inet vipmesh s_default_s2_/);
  t.notMatch(diff, /s_default_s0_|s_default_s1_|delete table/, 'the other Services are not touched');
  t.equal((await table.apply(b)).mode, 'none');
  t.equal(nft.scripts.length, 2);
});

t.test('a Service nft refuses is left out and named; the others are applied', async (t) => {
  const nft = fakeNft();
  nft.state.fail = (s) => {
    const lines = s.split('\n');
    const i = lines.findIndex((l) => l.includes('198.18.9.9'));
    return i < 0
      ? undefined
      : {
          code: 1,
          stdout: '',
          stderr: `/dev/stdin:${i + 1}:5-9: Error: Could not process rule: No space left on device\n`,
        };
  };
  const table = new NftTable({ run: nft.run, clock: new FakeClock(), logger: silentLogger() });
  await table.apply(render({ services: svcs(1) }).ruleset);
  const r = await table.apply(
    render({ services: [...svcs(1), lbService('bad', ['198.51.100.50'], ['198.18.9.9'])] }).ruleset,
  );
  t.equal(r.mode, 'full');
  t.equal(r.errors.length, 1);
  t.ok(isVipmeshError(r.errors[0], 'VIPMESH_LB_NFT_FAILED'));
  t.equal(r.errors[0]?.details['service'], 'default/bad');
  t.match(r.errors[0]?.message, /Service default\/bad: nft: Could not process rule: No space left on device/);
  t.match(nft.scripts.at(-1), /s_default_s0_/);
  t.notMatch(nft.scripts.at(-1), /198\.18\.9\.9/);
});

t.test('a failure of the fixed part throws', async (t) => {
  const nft = fakeNft();
  nft.state.fail = () => ({
    code: 1,
    stdout: '',
    stderr: '/dev/stdin:1:1-5: Error: Could not process rule: Operation not permitted\n',
  });
  const table = new NftTable({ run: nft.run, clock: new FakeClock(), logger: silentLogger() });
  await t.rejects(table.apply(render({ services: svcs(1) }).ruleset), { code: 'VIPMESH_LB_NFT_FAILED' });
  nft.state.fail = () => ({ code: 127, stdout: '', stderr: 'nft: spawn nft ENOENT' });
  await t.rejects(table.apply(render({ services: svcs(1) }).ruleset), { message: /spawn nft ENOENT/ });
});

t.test('the periodic compare restores a table changed behind its back', async (t) => {
  const nft = fakeNft();
  const clock = new FakeClock();
  const table = new NftTable({ run: nft.run, clock, logger: silentLogger(), verifyIntervalMs: 5000 });
  t.equal(await table.verify(), false, 'nothing applied yet: nothing to compare');
  await table.apply(render({ services: svcs(2) }).ruleset);
  table.start();
  table.start();
  t.equal(await table.verify(), false, 'unchanged');
  nft.state.listing = 'table inet vipmesh { hand-edited }';
  clock.advance(5000);
  await until('the restore', () => nft.scripts.length === 2);
  t.match(nft.scripts[1], /^table inet vipmesh\ndelete table inet vipmesh/);
  t.equal(await table.verify(), false, 'equal again after the restore');
  nft.state.fail = () => ({ code: 1, stdout: '', stderr: 'boom' });
  nft.state.listing = '';
  await t.rejects(table.verify(), { code: 'VIPMESH_LB_NFT_FAILED' });
  nft.state.fail = undefined;
  await table.remove();
  t.match(nft.scripts.at(-1), /^table inet vipmesh\ndelete table inet vipmesh\n$/);
  t.equal(clock.pending, 0, 'no compare scheduled after remove');
  nft.state.fail = () => ({ code: 1, stdout: '', stderr: 'boom' });
  await t.rejects(table.remove(), { code: 'VIPMESH_LB_NFT_FAILED' });
});

t.test('stripSetElements drops the affinity entries and keeps the map elements', async (t) => {
  const listing = [
    'table inet vipmesh {',
    '\tmap svc4 {',
    '\t\ttype ipv4_addr . inet_proto . inet_service : verdict',
    '\t\telements = { 198.51.100.10 . tcp . 80 : goto s_x }',
    '\t}',
    '\tset a_x {',
    '\t\ttype ipv4_addr',
    '\t\telements = { 203.0.113.1 expires 2h59m,',
    '\t\t\t     203.0.113.2 expires 1h }',
    '\t}',
    '\tset a_y {',
    '\t\telements = { 203.0.113.3 expires 1s }',
    '\t}',
    '\tchain s_x {',
    '\t}',
    '}',
  ].join('\n');
  const out = stripSetElements(listing);
  t.match(out, /198\.51\.100\.10/);
  t.notMatch(out, /203\.0\.113/);
});

t.test('diffScript: removing a Service deletes its elements before its chains', async (t) => {
  const a = render({ services: svcs(2) }).ruleset;
  const b = render({ services: svcs(1) }).ruleset;
  const lines = diffScript(a, b).lines;
  const del = lines.findIndex((l) => l.startsWith('delete element'));
  const chain = lines.findIndex((l) => l.startsWith('delete chain'));
  t.ok(del >= 0 && chain > del, lines.join('\n'));
  t.same(diffScript(a, a).lines, []);
  t.equal(fullScript(a).lines.length, fullScript(a).owners.length);
});

t.test(
  'an update does not wait for the listing the compare needs; one that lands during it restarts it',
  async (t) => {
    const nft = fakeNft();
    const gates: Array<() => void> = [];
    const lists: string[] = [];
    const run: RunCommand = async (file, args, stdin) => {
      if (args[0] === 'list') {
        const at = nft.state.listing;
        await new Promise<void>((r) => gates.push(r));
        lists.push(at);
        return { code: 0, stdout: at, stderr: '' };
      }
      return nft.run(file, args, stdin);
    };
    const clock = new FakeClock();
    const table = new NftTable({ run, clock, logger: silentLogger() });
    t.equal((await table.apply(render({ services: svcs(1) }).ruleset)).mode, 'full');
    t.equal(gates.length, 0, 'the listing waits: what the caller does next goes first');
    clock.advance(LISTING_DELAY_MS - 1);
    t.equal(gates.length, 0);
    clock.advance(1);
    await until('the listing starts after its delay', () => gates.length === 1);
    t.equal(
      (await table.apply(render({ services: svcs(2) }).ruleset)).mode,
      'diff',
      'returned with the listing held',
    );
    clock.advance(LISTING_DELAY_MS);
    t.equal(gates.length, 1, 'one listing at a time');
    gates.shift()!();
    await until('the listing starts over for the second update', () => gates.length === 1);
    t.same(lists, ['table inet vipmesh { v1 }'], 'the first listing was taken across an update');
    let settled = false;
    const s = table.settled().then(() => {
      settled = true;
    });
    t.notOk(settled);
    gates.shift()!();
    await s;
    t.same(lists.at(-1), 'table inet vipmesh { v2 }');
    const v = table.verify();
    await until('the compare lists', () => gates.length === 1);
    gates.shift()!();
    t.equal(await v, false, 'the compare expects what the last update left');
  },
);
