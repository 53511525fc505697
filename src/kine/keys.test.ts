import fc from 'fast-check';
import t from 'tap';
import { inRange, isEmptyRange, keyRange, overlaps, prefixEnd } from './keys.js';

const bytes = fc.uint8Array({ minLength: 1, maxLength: 6 }).map((a) => Buffer.from(a));

t.test('prefixEnd bounds exactly the keys with the prefix', async (t) => {
  fc.assert(
    fc.property(bytes, bytes, (prefix, key) => {
      const range = keyRange(prefix, prefixEnd(prefix));
      const has = key.subarray(0, prefix.length).equals(prefix);
      return inRange(range, key) === has;
    }),
  );
  t.same(prefixEnd(Buffer.from('a/')), Buffer.from('a0'));
  t.same(prefixEnd(Buffer.from([0x61, 0xff])), Buffer.from('b'));
  t.same(prefixEnd(Buffer.from([0xff, 0xff])), Buffer.from([0]), 'all-0xff prefixes range to the end');
});

t.test('keyRange decodes etcd key/range_end pairs', async (t) => {
  t.match(keyRange(Buffer.from('a'), Buffer.alloc(0)), { single: true });
  t.match(keyRange(Buffer.from('a'), Buffer.from([0])), { single: false, end: null });
  t.ok(isEmptyRange(keyRange(Buffer.from('b'), Buffer.from('a'))));
  t.notOk(isEmptyRange(keyRange(Buffer.from('a'), Buffer.from('b'))));
  fc.assert(
    fc.property(bytes, fc.option(bytes), bytes, (key, end, probe) => {
      const r = keyRange(key, end);
      const want =
        end === null || end.length === 0
          ? probe.equals(key)
          : end.length === 1 && end[0] === 0
            ? Buffer.compare(probe, key) >= 0
            : Buffer.compare(probe, key) >= 0 && Buffer.compare(probe, end) < 0;
      return inRange(r, probe) === want;
    }),
  );
});

t.test('overlaps agrees with a brute-force check over small keys', async (t) => {
  const small = fc.uint8Array({ minLength: 1, maxLength: 2, max: 3 }).map((a) => Buffer.from(a));
  const universe: Buffer[] = [];
  for (let a = 0; a <= 3; a++) {
    universe.push(Buffer.from([a]));
    for (let b = 0; b <= 3; b++) universe.push(Buffer.from([a, b]));
  }
  fc.assert(
    fc.property(small, fc.option(small), small, fc.option(small), (k1, e1, k2, e2) => {
      const r1 = keyRange(k1, e1);
      const r2 = keyRange(k2, e2);
      // Ranges open to the end reach past the universe: give both a far key to test.
      const probes = [...universe, Buffer.from([9])];
      const brute = probes.some((k) => inRange(r1, k) && inRange(r2, k));
      return overlaps(r1, r2) === brute && overlaps(r2, r1) === brute;
    }),
  );
  t.pass();
});
