import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { applyV8Flags, V8_FLAGS_ENV } from './v8-flags.js';

t.test('the flags in VIPMESH_V8_FLAGS are handed to V8 as one string', async (t) => {
  const seen: string[] = [];
  t.equal(
    applyV8Flags({ [V8_FLAGS_ENV]: ' --no-opt --max-lazy ' }, (f) => seen.push(f)),
    '--no-opt --max-lazy',
  );
  t.same(seen, ['--no-opt --max-lazy']);
  t.equal(
    applyV8Flags({}, (f) => seen.push(f)),
    '',
  );
  t.equal(
    applyV8Flags({ [V8_FLAGS_ENV]: '  ' }, (f) => seen.push(f)),
    '',
  );
  t.same(seen, ['--no-opt --max-lazy'], 'nothing set when the variable is unset or blank');
});

t.test('vipmesh sets them before it runs a command', async (t) => {
  const main = join(import.meta.dirname, 'main.ts');
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, 'version'], {
    env: { ...process.env, [V8_FLAGS_ENV]: '--vipmesh-no-such-flag' },
    encoding: 'utf8',
  });
  t.equal(r.status, 0, 'the command still runs');
  t.match(r.stderr, /unrecognized flag --vipmesh-no-such-flag/, 'V8 was given the flag');
});
