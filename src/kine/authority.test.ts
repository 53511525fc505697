import { connect, createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { admitConnection, rewriteHeaders, saneAuthority } from './authority.js';
import { authorityLiterals, writeInt } from './hpack.js';

const raw = (s: string) => Buffer.concat([writeInt(s.length, 7, 0), Buffer.from(s)]);
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** The authority values of a HEADERS frame without padding or priority. */
const authorities = (f: Buffer) => authorityLiterals(f.subarray(9)).map((l) => l.text.toString());

t.test('saneAuthority replaces what nghttp2 refuses, byte for byte', async (t) => {
  t.equal(saneAuthority(Buffer.from('127.0.0.1:2379')), null);
  t.equal(saneAuthority(Buffer.from('[2001:db8::1]:2379')), null);
  t.equal(saneAuthority(Buffer.from('http://127.0.0.1:2379'))?.toString(), 'http:--127.0.0.1:2379');
  t.equal(saneAuthority(Buffer.from('/run/é'))?.toString(), '-run---');
});

t.test(
  'rewriteHeaders: URL authorities become same-length valid ones; the frame length follows',
  async (t) => {
    const block = Buffer.concat([
      Buffer.from([0x83, 0x41]),
      raw('unix:///run/kine.sock'),
      Buffer.from([0x86]),
    ]);
    const out = rewriteHeaders(frame(1, 0x4, 1, block));
    t.ok(out);
    t.same(authorities(out as Buffer), ['unix:---run-kine.sock']);
    t.equal((out as Buffer).readUIntBE(0, 3), (out as Buffer).length - 9);
    t.equal(
      rewriteHeaders(frame(1, 0x4, 1, Buffer.concat([Buffer.from([0x41]), raw('h:1')]))),
      null,
      'valid',
    );
    t.equal(rewriteHeaders(frame(1, 0, 1, block)), null, 'continued in CONTINUATION frames');
    t.equal(rewriteHeaders(frame(1, 0x4, 1, Buffer.from([0x41, 0x05]))), null, 'malformed');
    t.equal(rewriteHeaders(frame(1, 0x4 | 0x8, 1, Buffer.from([9]))), null, 'padding past the end');
    // Padded and with priority: both kept around the rewritten block.
    const padded = frame(
      1,
      0x4 | 0x8 | 0x20,
      3,
      Buffer.concat([
        Buffer.from([2]),
        Buffer.from([0, 0, 0, 0, 16]),
        Buffer.from([0x41]),
        raw('a/b'),
        Buffer.alloc(2),
      ]),
    );
    const p = rewriteHeaders(padded) as Buffer;
    t.same(p.subarray(9, 15), Buffer.from([2, 0, 0, 0, 0, 16]));
    t.same(
      authorityLiterals(p.subarray(15, p.length - 2)).map((l) => l.text.toString()),
      ['a-b'],
    );
    // A frame that would grow past 16 KiB is left alone (a Huffman literal rewritten raw grows).
    const big = Buffer.concat([Buffer.from([0x41]), writeInt(12_000, 7, 0x80), Buffer.alloc(12_000, 0x2f)]);
    t.equal(rewriteHeaders(frame(1, 0x4, 1, big)), null);
  },
);

/** A loopback server whose connections go through admitConnection; resolves the socket `serve` gets. */
async function admitting(t: Test) {
  const served: Array<{ socket: Socket; first: Promise<Buffer> }> = [];
  let notify: () => void = () => undefined;
  const srv = createServer((s) =>
    admitConnection(s, (socket) => {
      served.push({ socket, first: new Promise((r) => socket.once('data', r)) });
      socket.resume();
      notify();
    }),
  );
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of served) s.socket.destroy();
    srv.close();
  });
  const port = (srv.address() as { port: number }).port;
  const next = () =>
    new Promise<(typeof served)[number]>((resolve) => {
      if (served.length > 0) resolve(served.shift() as (typeof served)[number]);
      else notify = () => resolve(served.shift() as (typeof served)[number]);
    });
  return { port, next };
}

t.test(
  'admitConnection: SETTINGS first, waits for the ACK and the first HEADERS, hands over the rest',
  async (t) => {
    const { port, next } = await admitting(t);
    const c = connect(port, '127.0.0.1');
    t.teardown(() => c.destroy());
    const fromServer = new Promise<Buffer>((r) => c.once('data', r));
    const settings = frame(4, 0, 0, Buffer.alloc(0));
    const headers = frame(1, 0x4, 1, Buffer.concat([Buffer.from([0x41]), raw('http://h:1')]));
    const ping = frame(6, 0, 0, Buffer.alloc(8));
    // In pieces: half the preface, the rest with SETTINGS and HEADERS, then the ACK with a PING.
    c.write(PREFACE.subarray(0, 10));
    t.same(await fromServer, frame(4, 0, 0, Buffer.alloc(0)), 'an empty SETTINGS frame');
    c.write(Buffer.concat([PREFACE.subarray(10), settings, headers]));
    c.write(Buffer.concat([frame(4, 1, 0, Buffer.alloc(0)), ping]));
    const { first } = await next();
    const got = await first;
    const want = Buffer.concat([PREFACE, settings, rewriteHeaders(headers) as Buffer, ping]);
    t.same(got, want, 'the ACK taken out, the authority rewritten, the PING kept');
  },
);

t.test(
  'admitConnection: not HTTP/2 is handed over as it is; a flood before the first request is cut',
  async (t) => {
    const { port, next } = await admitting(t);
    const c = connect(port, '127.0.0.1');
    t.teardown(() => c.destroy());
    c.write('GET / HTTP/1.1\r\n\r\n');
    t.equal((await (await next()).first).toString(), 'GET / HTTP/1.1\r\n\r\n');

    const flood = connect(port, '127.0.0.1');
    const closed = new Promise((r) => flood.on('close', r));
    flood.on('error', () => undefined);
    flood.resume();
    flood.write(PREFACE);
    // DATA frames with no request and no ACK: more than the 256 KiB allowed.
    const data = frame(0, 0, 1, Buffer.alloc(16_000));
    for (let i = 0; i < 20; i++) flood.write(data);
    await closed;
    t.pass('the connection was closed');
  },
);
