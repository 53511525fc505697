import { isIP } from 'node:net';
import fc from 'fast-check';
import { Address6 } from 'ip-address';
import t from 'tap';
import {
  canonicalIp,
  familyFromName,
  familyName,
  formatIp,
  formatIpBytes,
  ipAddrFromBytes,
  ipFromBytes,
  ipToBytes,
  parseIp,
  parseIpAddr,
  parseIpBytes,
} from './ip.js';

const v6text = fc.ipV6();
const v4text = fc.ipV4();

t.test('IPv4 text round-trips and matches the dotted quad', async (t) => {
  fc.assert(
    fc.property(v4text, (s) => {
      const ip = parseIp(s)!;
      t.equal(ip.family, 4);
      return formatIp(ip) === s.split('.').map(Number).join('.');
    }),
  );
  fc.assert(
    fc.property(v4text, (s) => formatIpBytes(parseIpBytes(s)!) === s.split('.').map(Number).join('.')),
  );
  t.equal(formatIp({ family: 4, value: parseIp('198.51.100.7')!.value }), '198.51.100.7');
  t.equal(parseIp('255.255.255.255')!.value, 0xffffffffn);
});

t.test('any IPv4/IPv6 value formats and parses back to itself', async (t) => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 0xffff_ffffn }),
      (v) => parseIp(formatIp({ family: 4, value: v }))?.value === v,
    ),
  );
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
      const text = formatIp({ family: 6, value: v });
      return (
        parseIp(text)?.value === v &&
        formatIp({ family: 6, value: parseIp(text.toUpperCase())!.value }) === text
      );
    }),
  );
  t.pass();
});

t.test('IPv6 text is RFC 5952, as ip-address and the WHATWG URL parser write it', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0100', '2001:db8::100'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::1:0:0:0', '2001:db8:0:0:1::'],
    ['::', '::'],
    ['::ffff:198.51.100.1', '::ffff:c633:6401'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
  ];
  for (const [input, want] of cases) {
    t.equal(formatIp({ family: 6, value: parseIp(input)!.value }), want, input);
    t.equal(formatIpBytes(parseIpBytes(input)!), want, `${input} (bytes)`);
  }
  const withZeroGroups = fc
    .tuple(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.array(fc.nat(7)))
    .map(([v, zeros]) => zeros.reduce((acc, z) => acc & ~(0xffffn << BigInt(z * 16)), v));
  fc.assert(
    fc.property(
      withZeroGroups,
      (v) => formatIp({ family: 6, value: v }) === Address6.fromBigInt(v).correctForm(),
    ),
    { numRuns: 3000 },
  );
  t.equal(formatIp({ family: 6, value: 0n }), '::');
  t.equal(formatIp({ family: 6, value: 1n }), '::1');
  t.equal(formatIp({ family: 6, value: 0x20010db8000000010000000000000000n }), '2001:db8:0:1::');
  fc.assert(
    fc.property(v6text, (s) => {
      const ip = parseIp(s)!;
      const want = new URL(`http://[${s}]/`).hostname.slice(1, -1);
      return (
        ip.family === 6 &&
        formatIp({ family: 6, value: ip.value }) === want &&
        want === new Address6(s).correctForm() &&
        parseIp(want)!.value === ip.value
      );
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      const text = formatIpBytes(b);
      return parseIpBytes(text)?.equals(Buffer.from(b)) === true && new Address6(text).correctForm() === text;
    }),
    { numRuns: 2000 },
  );
});

t.test('not addresses', async (t) => {
  for (const s of [
    '',
    '  ',
    '1.2.3',
    '1.2.3.256',
    '010.0.0.1',
    'fe80::1%eth0',
    'x',
    'office',
    '::g',
    '1.2.3.4/24',
    '2001:db8::/64',
  ]) {
    t.equal(parseIp(s), undefined, s);
    t.equal(parseIpBytes(s), undefined, `${s} (bytes)`);
  }
});

t.test('bytes round-trip', async (t) => {
  fc.assert(
    fc.property(fc.oneof(v4text, v6text), (s) => {
      const ip = parseIp(s)!;
      const back = ipFromBytes(ipToBytes(ip))!;
      return back.family === ip.family && back.value === ip.value && parseIpBytes(s)!.equals(ipToBytes(ip));
    }),
  );
  t.equal(ipFromBytes(Buffer.alloc(5)), undefined);
});

t.test('parsed values are shared and frozen', async (t) => {
  const ip = parseIp('2001:DB8:0:0:1:0:0:1')!;
  t.equal(parseIp('2001:DB8:0:0:1:0:0:1'), ip, 'the same object from the cache');
  t.ok(Object.isFrozen(ip));
  t.equal(formatIp(ip), '2001:db8::1:0:0:1');
  t.equal(formatIp(parseIp('198.51.100.7')!), '198.51.100.7');
  t.same(ipFromBytes(ipToBytes(ip)), { family: 6, value: ip.value });
});

t.test('canonicalIp: the canonical text of an address, undefined for anything else', async (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
      const text = formatIp({ family: 6, value: v });
      return canonicalIp(text.toUpperCase()) === text;
    }),
  );
  t.equal(canonicalIp('198.51.100.7'), '198.51.100.7');
  t.equal(canonicalIp('nope'), undefined);
});

t.test('family names: the Kubernetes spelling, both ways', async (t) => {
  t.equal(familyName(4), 'IPv4');
  t.equal(familyName(6), 'IPv6');
  t.equal(familyFromName('IPv4'), 4);
  t.equal(familyFromName('IPv6'), 6);
  for (const bad of ['ipv4', 'IPv5', '4', '', 'IPv6 ']) t.equal(familyFromName(bad), undefined, bad);
});

t.test('wire form: canonical text, bytes and family that agree', async (t) => {
  t.same(parseIpAddr('::ffff:198.51.100.1'), {
    text: '::ffff:c633:6401',
    bytes: Buffer.from('00000000000000000000ffffc6336401', 'hex'),
    family: 6,
  });
  t.same(parseIpAddr('198.51.100.7'), {
    text: '198.51.100.7',
    bytes: Buffer.from([198, 51, 100, 7]),
    family: 4,
  });
  t.equal(parseIpAddr('fe80::1%eth0'), undefined);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
      ),
      (b) => {
        const back = parseIpAddr(formatIpBytes(b));
        const direct = ipAddrFromBytes(b);
        return (
          back?.bytes.equals(Buffer.from(b)) === true &&
          back.text === formatIpBytes(b) &&
          direct?.text === back.text &&
          direct.family === back.family &&
          direct.bytes.equals(back.bytes)
        );
      },
    ),
  );
  t.equal(ipAddrFromBytes(Buffer.alloc(6)), undefined);
});

t.test(
  'IPv6 in hex and colons is accepted exactly as node:net isIP accepts it, and read the same',
  async (t) => {
    const hexColon = /^[0-9a-fA-F:]+$/;
    const agrees = (text: string): boolean => {
      const mine = parseIpBytes(text);
      const valid = isIP(text) === 6;
      if (!hexColon.test(text)) return true;
      if ((mine !== undefined) !== valid) return false;
      return !valid || formatIpBytes(mine!) === new Address6(text).correctForm();
    };
    for (const text of [
      '::',
      '::1',
      '1::',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7::',
      '::2:3:4:5:6:7:8',
      '1::8',
      'FFFF:0:0::1',
      ':',
      ':::',
      '1:::2',
      '::1::2',
      ':1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7:8:',
      '1:2:3:4:5:6:7:8::',
      '::1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7',
      '12345::',
      '1:2:3:4:5:6:7:8:9',
    ]) {
      t.ok(agrees(text), `${text}: ${isIP(text) === 6 ? 'an address' : 'not one'}, read alike`);
    }
    // Random strings of hex digits and colons, and real addresses with their groups' case changed.
    const noise = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF::::'), maxLength: 42 });
    const written = fc.tuple(v6text, fc.boolean()).map(([a, upper]) => (upper ? a.toUpperCase() : a));
    fc.assert(fc.property(fc.oneof(noise, written), agrees), { numRuns: 20_000 });
  },
);
