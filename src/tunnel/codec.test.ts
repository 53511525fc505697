import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import {
  decodeFrame,
  encodeData,
  encodeEmpty,
  encodeError,
  encodeHello,
  encodeOpen,
  encodePing,
  encodePush,
  encodeRequest,
  encodeResponse,
  encodeU32,
  type Frame,
  FrameType,
} from './codec.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string) => Buffer.from(s).toString('hex');

// Fixtures written from the layout in codec.ts: version 01, type, stream id (u32 BE), body.
const fixtures: Array<{ name: string; wire: string; frame: Frame; encode: () => Buffer }> = [
  {
    name: 'HELLO',
    wire: `01 01 00000000 ${ascii('{"node":"n1"}')}`,
    frame: { type: 'hello', info: { node: 'n1' } },
    encode: () => encodeHello({ node: 'n1' }),
  },
  {
    name: 'REQUEST id 7 "add"',
    wire: `01 10 00000000 00000007 0003 ${ascii('add')} ${ascii('{"a":1}')}`,
    frame: { type: 'request', id: 7, method: 'add', params: { a: 1 } },
    encode: () => encodeRequest(7, 'add', { a: 1 }),
  },
  {
    name: 'RESPONSE error',
    wire: `01 11 00000000 00000007 00 ${ascii('{"code":"X"}')}`,
    frame: { type: 'response', id: 7, ok: false, body: { code: 'X' } },
    encode: () => encodeResponse(7, false, { code: 'X' }),
  },
  {
    name: 'PUSH',
    wire: `01 12 00000000 0001 ${ascii('t')} ${ascii('[1]')}`,
    frame: { type: 'push', topic: 't', payload: [1] },
    encode: () => encodePush('t', [1]),
  },
  {
    name: 'OPEN stream 3, 64 KiB window',
    wire: `01 20 00000003 00010000 ${ascii('tcp:127.0.0.1:80')}`,
    frame: { type: 'open', stream: 3, window: 65536, target: 'tcp:127.0.0.1:80' },
    encode: () => encodeOpen(3, 65536, 'tcp:127.0.0.1:80'),
  },
  {
    name: 'OPEN_ACK',
    wire: '01 21 00000004 00080000',
    frame: { type: 'open-ack', stream: 4, window: 0x80000 },
    encode: () => encodeU32(FrameType.OPEN_ACK, 4, 0x80000),
  },
  {
    name: 'DATA',
    wire: '01 22 00000005 deadbeef',
    frame: { type: 'data', stream: 5, data: hex('deadbeef') },
    encode: () => encodeData(5, hex('deadbeef')),
  },
  {
    name: 'FIN',
    wire: '01 23 00000005',
    frame: { type: 'fin', stream: 5 },
    encode: () => encodeEmpty(FrameType.FIN, 5),
  },
  {
    name: 'CLOSE',
    wire: '01 24 00000005',
    frame: { type: 'close', stream: 5 },
    encode: () => encodeEmpty(FrameType.CLOSE, 5),
  },
  {
    name: 'ERROR',
    wire: `01 25 00000003 09 ${ascii('VIPMESH_X')} ${ascii('no')}`,
    frame: { type: 'error', stream: 3, code: 'VIPMESH_X', message: 'no' },
    encode: () => encodeError(3, 'VIPMESH_X', 'no'),
  },
  {
    name: 'CREDIT',
    wire: '01 26 00000003 00004000',
    frame: { type: 'credit', stream: 3, bytes: 16384 },
    encode: () => encodeU32(FrameType.CREDIT, 3, 16384),
  },
  {
    name: 'PING',
    wire: '01 02 00000000 0102030405060708',
    frame: { type: 'ping', stamp: hex('0102030405060708') },
    encode: () => encodePing(false, hex('0102030405060708')),
  },
];

t.test('frames match their hex fixtures both ways', async (t) => {
  for (const f of fixtures) {
    t.equal(f.encode().toString('hex'), hex(f.wire).toString('hex'), `${f.name} encodes`);
    t.same(decodeFrame(hex(f.wire)), f.frame, `${f.name} decodes`);
  }
});

t.test('malformed frames give a reason, never a throw', async (t) => {
  const bad: Array<[string, string, RegExp]> = [
    ['empty', '', /short frame/],
    ['version 2', '02 01 00000000 7b7d', /version 2/],
    ['control frame on a stream', '01 02 00000001 0102030405060708', /control frame/],
    ['stream frame on stream 0', '01 22 00000000 00', /stream 0/],
    ['unknown type', '01 7f 00000001', /unknown frame type/],
    ['unknown control type', '01 0f 00000000', /unknown frame type/],
    ['HELLO not JSON', `01 01 00000000 ${ascii('{')}`, /not JSON/],
    ['PING short', '01 02 00000000 0102', /8 bytes/],
    ['REQUEST method overrun', '01 10 00000000 00000001 00ff 61', /overruns/],
    ['REQUEST short', '01 10 00000000 0000', /too short/],
    ['REQUEST params not JSON', `01 10 00000000 00000001 0001 61 ${ascii('{')}`, /not JSON/],
    ['RESPONSE bad flag', `01 11 00000000 00000001 07 ${ascii('1')}`, /bad RESPONSE/],
    ['RESPONSE body not JSON', `01 11 00000000 00000001 01 ${ascii('x')}`, /not JSON/],
    ['PUSH overrun', '01 12 00000000 0009 61', /overruns/],
    ['PUSH short', '01 12 00000000 00', /too short/],
    ['PUSH payload not JSON', `01 12 00000000 0001 61 ${ascii('}')}`, /not JSON/],
    ['OPEN short', '01 20 00000001 0000', /too short/],
    ['CREDIT wrong size', '01 26 00000001 00', /4 bytes/],
    ['FIN with a body', '01 23 00000001 00', /empty/],
    ['ERROR code overrun', '01 25 00000001 05 41', /too short/],
  ];
  for (const [name, wire, why] of bad) {
    const r = decodeFrame(hex(wire));
    t.ok('error' in r, `${name} is refused`);
    if ('error' in r) t.match(r.error, why, name);
  }
});

t.test('fuzz: arbitrary bytes decode to a frame or a reason, never a throw', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const r = decodeFrame(Buffer.from(bytes));
      return (
        typeof r === 'object' && ('error' in r ? typeof r.error === 'string' : typeof r.type === 'string')
      );
    }),
    { numRuns: 5000 },
  );
  // Valid header, random body: exercises every body parser rather than the header checks.
  fc.assert(
    fc.property(
      fc.constantFrom(...Object.values(FrameType)),
      fc.uint8Array({ maxLength: 64 }),
      (type, body) => {
        const stream = type < 0x20 ? 0 : 1;
        const b = Buffer.concat([Buffer.from([1, type, 0, 0, 0, stream]), Buffer.from(body)]);
        const r = decodeFrame(b);
        return 'error' in r || typeof r.type === 'string';
      },
    ),
    { numRuns: 5000 },
  );
  t.pass('no input threw');
});

t.test('property: what is encoded decodes to the same values', async (t) => {
  const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);
  fc.assert(
    fc.property(fc.nat(0xffff_ffff), fc.string({ maxLength: 40 }), json, (id, method, params) => {
      const ok = id % 2 === 0;
      return (
        isDeepStrictEqual(decodeFrame(encodeRequest(id, method, params)), {
          type: 'request',
          id,
          method,
          params,
        }) &&
        isDeepStrictEqual(decodeFrame(encodePush(method, params)), {
          type: 'push',
          topic: method,
          payload: params,
        }) &&
        isDeepStrictEqual(decodeFrame(encodeResponse(id, ok, params)), {
          type: 'response',
          id,
          ok,
          body: params,
        })
      );
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 2000 }), (s, data) => {
      const f = decodeFrame(encodeData(s, data));
      return (
        'type' in f && f.type === 'data' && f.stream === s && Buffer.compare(f.data, Buffer.from(data)) === 0
      );
    }),
  );
  t.pass('round trips hold');
});
