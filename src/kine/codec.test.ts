import fc from 'fast-check';
import t from 'tap';
import { encodeRangeResponse, KEPT_BUFFER_MAX } from './codec.js';
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

t.test('encoding into the kept buffer gives the same bytes, each response only until the next', async (t) => {
  fc.assert(
    fc.property(response, response, (a, b) => {
      const fresh = Buffer.from(encodeRangeResponse(a as RangeResponse));
      const kept = encodeRangeResponse(a as RangeResponse, true);
      if (!kept.equals(fresh)) return false;
      const copy = Buffer.from(kept);
      encodeRangeResponse(b as RangeResponse, true);
      return copy.equals(fresh);
    }),
    { numRuns: 200 },
  );
  const one = encodeRangeResponse({ kvs: [], more: true, count: 1 }, true);
  const two = encodeRangeResponse({ kvs: [], more: true, count: 2 }, true);
  t.equal(one.buffer, two.buffer, 'both are written into one kept buffer');
  t.same(decode(two), decode(encodeRef({ kvs: [], more: true, count: 2 })));
  // Over the cap: a buffer of its own, and the kept one is not grown to it.
  const value = Buffer.alloc(KEPT_BUFFER_MAX);
  const huge = encodeRangeResponse(
    {
      kvs: [{ key: Buffer.from('k'), create_revision: 1, mod_revision: 1, version: 1, value, lease: 0 }],
      more: false,
      count: 1,
    },
    true,
  );
  t.not(huge.buffer, two.buffer, 'a response over the cap is not written into the kept buffer');
  t.ok(huge.length > KEPT_BUFFER_MAX);
  t.equal(
    encodeRangeResponse({ kvs: [], more: true, count: 3 }, true).buffer,
    two.buffer,
    'the kept buffer stays',
  );
});
