import fc from 'fast-check';
import t from 'tap';
import { encodeRangeResponse } from './codec.js';
import { etcdServices } from './proto.js';
import type { RangeResponse } from './types.js';

const decode = (buf: Buffer) =>
  etcdServices().KV['Range']!.responseDeserialize(buf) as Record<string, unknown>;
const encodeRef = (res: RangeResponse) => etcdServices().KV['Range']!.responseSerialize(res);

const int64 = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 300 }),
  fc.maxSafeInteger().map((n) => Math.abs(n)),
  fc.integer({ min: -(2 ** 31), max: -1 }),
);
const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
const kv = fc.record({
  key: bytes,
  create_revision: int64,
  mod_revision: int64,
  version: int64,
  value: bytes,
  lease: int64,
});
const response = fc.record({
  header: fc.option(
    fc.record({
      cluster_id: fc.maxSafeInteger().map((n) => String(Math.abs(n))),
      member_id: fc.maxSafeInteger().map((n) => Math.abs(n)),
      revision: int64,
      raft_term: fc.constant(2),
    }),
    { nil: undefined },
  ),
  kvs: fc.array(kv, { maxLength: 8 }),
  more: fc.boolean(),
  count: int64,
});

t.test('the RangeResponse encoder decodes to what protobufjs encodes', async (t) => {
  fc.assert(
    fc.property(response, (res) => {
      const mine = decode(encodeRangeResponse(res as RangeResponse));
      const ref = decode(encodeRef(res as RangeResponse));
      return JSON.stringify(mine) === JSON.stringify(ref);
    }),
    { numRuns: 300 },
  );
  t.same(
    decode(encodeRangeResponse({ kvs: [], more: false, count: 0 })),
    decode(encodeRef({ kvs: [], more: false, count: 0 })),
  );
});
