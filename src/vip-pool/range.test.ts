import fc from 'fast-check';
import t from 'tap';
import { formatIp } from '../util/ip.js';
import { Codes } from './codes.js';
import { IntervalSet } from './interval-set.js';
import {
  buggyCount,
  formatRange,
  isBuggy,
  isEntryError,
  parseAddressEntry,
  rangeSize,
  usableSize,
} from './range.js';

const entryCases: Array<{
  name: string;
  in: string;
  want?: { text: string; size: bigint };
  wantErr?: string;
}> = [
  { name: 'IPv4 CIDR', in: '198.51.100.0/24', want: { text: '198.51.100.0/24', size: 256n } },
  { name: 'IPv4 /32', in: '198.51.100.7/32', want: { text: '198.51.100.7/32', size: 1n } },
  { name: 'IPv4 /0', in: '0.0.0.0/0', want: { text: '0.0.0.0/0', size: 1n << 32n } },
  { name: 'IPv6 /64, upper case', in: '2001:DB8::/64', want: { text: '2001:db8::/64', size: 1n << 64n } },
  {
    name: 'range',
    in: '198.51.100.10-198.51.100.20',
    want: { text: '198.51.100.10-198.51.100.20', size: 11n },
  },
  {
    name: 'range with spaces',
    in: ' 198.51.100.10 - 198.51.100.10 ',
    want: { text: '198.51.100.10-198.51.100.10', size: 1n },
  },
  {
    name: 'IPv6 range',
    in: '2001:db8::1-2001:db8:0:0:0:0:0:ff',
    want: { text: '2001:db8::1-2001:db8::ff', size: 255n },
  },
  { name: 'single IPv4', in: '198.51.100.9', want: { text: '198.51.100.9', size: 1n } },
  { name: 'single IPv6', in: '2001:db8::9', want: { text: '2001:db8::9', size: 1n } },
  { name: 'start after end', in: '10.0.0.9-10.0.0.5', wantErr: Codes.RANGE_REVERSED },
  { name: 'mixed families', in: '10.0.0.1-2001:db8::1', wantErr: Codes.RANGE_MIXED_FAMILY },
  { name: 'prefix too long', in: '10.0.0.0/33', wantErr: Codes.BAD_ADDRESS },
  { name: 'IPv6 prefix too long', in: '2001:db8::/129', wantErr: Codes.BAD_ADDRESS },
  { name: 'host bits set', in: '10.0.0.5/24', wantErr: Codes.BAD_ADDRESS },
  { name: 'not a prefix', in: '10.0.0.0/x', wantErr: Codes.BAD_ADDRESS },
  { name: 'bad address in CIDR', in: '10.0.0/8', wantErr: Codes.BAD_ADDRESS },
  { name: 'leading zeros', in: '010.0.0.1', wantErr: Codes.BAD_ADDRESS },
  { name: 'octet too large', in: '10.0.0.256', wantErr: Codes.BAD_ADDRESS },
  { name: 'zone', in: 'fe80::1%eth0', wantErr: Codes.BAD_ADDRESS },
  { name: 'empty', in: '  ', wantErr: Codes.BAD_ADDRESS },
  { name: 'half a range', in: '10.0.0.1-', wantErr: Codes.BAD_ADDRESS },
  { name: 'words', in: 'office', wantErr: Codes.BAD_ADDRESS },
];

t.test('address entries', async (t) => {
  for (const c of entryCases) {
    const got = parseAddressEntry(c.in);
    if (c.wantErr !== undefined) {
      t.ok(isEntryError(got) && got.code === c.wantErr, `${c.name}: ${c.wantErr}`);
    } else if (isEntryError(got)) {
      t.fail(`${c.name}: ${got.message}`);
    } else {
      t.equal(got.text, c.want!.text, `${c.name}: text`);
      t.equal(rangeSize(got.range), c.want!.size, `${c.name}: size`);
    }
  }
  const rev = parseAddressEntry('10.0.0.9-10.0.0.5');
  t.equal(isEntryError(rev) && rev.message, 'range start 10.0.0.9 is after end 10.0.0.5');
});

// Address text itself is src/util/ip.ts's (RFC 5952 against ip-address there, family names too).
t.test('a CIDR covers 2^(bits - prefix) addresses from its network address', async (t) => {
  fc.assert(
    fc.property(fc.boolean(), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.nat(128), (v6, raw, p) => {
      const bits = v6 ? 128 : 32;
      const prefix = p % (bits + 1);
      const value = raw & ((1n << BigInt(bits)) - 1n);
      const net = (value >> BigInt(bits - prefix)) << BigInt(bits - prefix);
      const e = parseAddressEntry(`${formatIp({ family: v6 ? 6 : 4, value: net })}/${prefix}`);
      return !isEntryError(e) && e.range.start === net && rangeSize(e.range) === 1n << BigInt(bits - prefix);
    }),
  );
  t.pass();
});

t.test('parsing an entry never throws, whatever the text', async (t) => {
  const ipish = fc.stringMatching(/^[0-9a-fA-F:./\- %x]{0,45}$/);
  fc.assert(
    fc.property(fc.oneof(fc.string(), ipish), (s) => {
      const e = parseAddressEntry(s);
      return isEntryError(e) ? e.message.length > 0 : e.range.start <= e.range.end;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('buggy-address count matches counting by hand', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff_f000 }), fc.nat(1500), (start, len) => {
      const r = { family: 4 as const, start: BigInt(start), end: BigInt(start + len) };
      let n = 0n;
      for (let v = r.start; v <= r.end; v++) if (isBuggy(4, v)) n++;
      return (
        buggyCount(r) === n &&
        usableSize(r, true) === rangeSize(r) - n &&
        usableSize(r, false) === rangeSize(r)
      );
    }),
    { numRuns: 200 },
  );
  t.equal(buggyCount({ family: 6, start: 0n, end: 1000n }), 0n);
  t.equal(formatRange({ family: 4, start: 1n, end: 1n }), '0.0.0.1');
});

t.test('IntervalSet behaves as a set of values', async (t) => {
  const ops = fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 40 })), { maxLength: 200 });
  fc.assert(
    fc.property(ops, (list) => {
      const s = new IntervalSet();
      const model = new Set<number>();
      for (const [add, x] of list) {
        const changed = add ? s.add(BigInt(x)) : s.delete(BigInt(x));
        const had = model.has(x);
        if (add) model.add(x);
        else model.delete(x);
        if (changed !== (add ? !had : had)) return false;
      }
      const sorted = [...model].sort((a, b) => a - b).map(BigInt);
      if (JSON.stringify([...s.values()].map(String)) !== JSON.stringify(sorted.map(String))) return false;
      if (s.size !== BigInt(model.size)) return false;
      // runs are maximal: no two adjacent values split across runs
      let runs = 0;
      sorted.forEach((v, i) => {
        if (i === 0 || sorted[i - 1]! !== v - 1n) runs++;
      });
      if (s.runs !== runs) return false;
      for (let x = 0; x <= 42; x++) {
        let want = x;
        while (model.has(want)) want++;
        if (s.nextAbsent(BigInt(x)) !== BigInt(want) || s.has(BigInt(x)) !== model.has(x)) return false;
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass();
});
