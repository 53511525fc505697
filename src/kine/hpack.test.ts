import t from 'tap';
import { authorityLiterals, huffmanDecode, readInt, readString, writeInt } from './hpack.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

t.test('Huffman strings decode as in RFC 7541 C.4 and C.6; bad padding and EOS are refused', async (t) => {
  t.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'))?.toString(), 'www.example.com');
  t.equal(huffmanDecode(hex('a8eb 1064 9cbf'))?.toString(), 'no-cache');
  t.equal(huffmanDecode(hex('25a8 49e9 5bb8 e8b4 bf'))?.toString(), 'custom-value');
  t.equal(huffmanDecode(hex('6402'))?.toString(), '302');
  t.equal(
    huffmanDecode(hex('d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'))?.toString(),
    'Mon, 21 Oct 2013 20:13:21 GMT',
  );
  t.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f400')), undefined, 'padding of zeros');
  t.equal(huffmanDecode(hex('ffff ffff')), undefined, 'EOS');
  t.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff ff')), undefined, 'padding longer than 7 bits');
});

t.test('prefixed integers as in RFC 7541 C.1', async (t) => {
  t.same(readInt(hex('0a'), 0, 5), { value: 10, next: 1 });
  t.same(readInt(hex('1f9a0a'), 0, 5), { value: 1337, next: 3 });
  t.same(writeInt(1337, 5, 0), hex('1f9a0a'));
  t.same(writeInt(10, 7, 0x80), hex('8a'));
  t.same(writeInt(300, 7, 0), hex('7fad01'));
  t.throws(() => readInt(hex('1f9a'), 0, 5), RangeError);
  t.throws(() => readInt(hex(''), 0, 5), RangeError);
  t.throws(() => readInt(hex('1fffffffffff01'), 0, 5), RangeError, 'oversized');
  t.throws(() => readString(hex('05616263'), 0), RangeError, 'shorter than its length');
  t.throws(() => readString(hex('82ffff'), 0), RangeError, 'bad Huffman');
  t.throws(() => readString(hex(''), 0), RangeError);
});

t.test('authority literals are found in every representation; other fields are skipped', async (t) => {
  // etcdctl's first header block for `endpoint status` against http://127.0.0.1:23791 (captured).
  const etcdctl = hex(
    '8386459760a924882d9dcb6571afa066a925a87510ac6e48d36a3f41909d29aee30c044eae05c0b86e09975f0f5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d833505b11f40899acac8b24d494f6a7f8613ef3ee320b7408d25062d495875996ee5b1063d5f03332e34',
  );
  t.same(
    authorityLiterals(etcdctl).map((l) => l.text.toString()),
    ['http://127.0.0.1:23791'],
  );
  const raw = (s: string) => Buffer.concat([writeInt(s.length, 7, 0), Buffer.from(s)]);
  const block = Buffer.concat([
    hex('3fe11f'), // table size update to 4096
    hex('82'), // indexed :method GET
    hex('01'),
    raw('/a'), // without indexing, static :authority
    hex('10'),
    raw(':authority'),
    raw('/b'), // never indexed, name written out
    hex('40'),
    raw('x-other'),
    raw('/c'), // another name
    hex('04'),
    raw('/d'), // :path, not the authority
  ]);
  t.same(
    authorityLiterals(block).map((l) => l.text.toString()),
    ['/a', '/b'],
  );
  t.throws(() => authorityLiterals(hex('41')), RangeError, 'cut short');
});
