import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { BatchRequester, type NetlinkDatagramSocket } from './requester.js';
import { decodeMessages, encodeRouteMessage, NLM_F_ACK, NLMSG_ERROR, RTM_NEWROUTE } from './rtmsg.js';

/** A fake kernel socket: records datagrams, answers with acks on demand. */
/** An NLMSG_ERROR reply to request `seq` (errno 0 = the ack), as the kernel writes it: 36 bytes. */
function nlmsgError(seq: number, errno: number): Buffer {
  const b = Buffer.alloc(36);
  b.writeUInt32LE(36, 0);
  b.writeUInt16LE(NLMSG_ERROR, 4);
  b.writeUInt32LE(seq, 8);
  b.writeInt32LE(-errno, 16);
  return b;
}

class FakeSocket implements NetlinkDatagramSocket {
  sent: Buffer[][] = [];
  failSend: Error | undefined;
  closed = false;
  #fn: ((buf: Buffer, port: number) => void) | undefined;
  send(parts: Uint8Array[], cb: (err?: Error) => void): void {
    this.sent.push(parts.map((p) => Buffer.from(p)));
    const err = this.failSend;
    queueMicrotask(() => cb(err));
  }
  onMessage(fn: (buf: Buffer, port: number) => void): void {
    this.#fn = fn;
  }
  close(): void {
    this.closed = true;
  }
  /** Deliver a datagram from the kernel. */
  deliver(buf: Buffer): void {
    this.#fn?.(buf, 0);
  }
  /** Ack every request sent so far with `errno` (0 = success), all in one datagram, from `port`. */
  ackAll(errno = 0, port = 0): void {
    const acks = this.sent.flat().map((req) => nlmsgError(decodeMessages(req)[0]!.seq, errno));
    if (port === 0) this.sent = [];
    this.#fn?.(Buffer.concat(acks), port);
  }
}

const route = (seq: number, flags: number) =>
  encodeRouteMessage(RTM_NEWROUTE, flags, seq, {
    family: 2,
    dstLen: 24,
    table: 254,
    protocol: 86,
    scope: 0,
    type: 1,
  });

t.test('requests made in one turn go out in one datagram and resolve on their acks', async (t) => {
  const sock = new FakeSocket();
  const rq = new BatchRequester(sock);
  const ps = Array.from({ length: 50 }, (_, i) => rq.request(`r${i}`, route));
  await Promise.resolve();
  t.equal(sock.sent.length, 1, 'one sendmsg');
  t.equal(sock.sent[0]!.length, 50);
  t.equal(rq.pending, 50);
  sock.ackAll(0, 1234);
  t.equal(rq.pending, 50, 'datagrams from other ports are ignored');
  sock.ackAll(0);
  await Promise.all(ps);
  t.equal(rq.pending, 0);
});

t.test('errors carry the errno name; big batches are split', async (t) => {
  const sock = new FakeSocket();
  const rq = new BatchRequester(sock, { maxDatagram: 200 });
  const ps = Array.from({ length: 10 }, (_, i) => rq.request(`r${i}`, route).catch((e: unknown) => e));
  await Promise.resolve();
  // 36-byte requests: a datagram is sent as soon as it reaches 200 bytes (6 requests).
  t.same(
    sock.sent.map((d) => d.length),
    [6, 4],
    'split into datagrams of at most ~maxDatagram',
  );
  sock.ackAll(17);
  const errs = await Promise.all(ps);
  for (const e of errs) {
    t.equal((e as { code?: string }).code, 'VIPMESH_HOSTGW_NETLINK');
    t.equal((e as { cause?: { code?: string } }).cause?.code, 'EEXIST');
  }
});

t.test('a failed send rejects its requests; timeout and close reject the rest', async (t) => {
  const sock = new FakeSocket();
  sock.failSend = Object.assign(new Error('no buffer space'), { code: 'ENOBUFS' });
  const clock = new FakeClock();
  const rq = new BatchRequester(sock, { timeoutMs: 50, clock });
  await t.rejects(rq.request('a', route), { code: 'VIPMESH_HOSTGW_NETLINK', cause: { code: 'ENOBUFS' } });
  sock.failSend = undefined;
  const unanswered = rq.request('b', route);
  clock.advance(49);
  t.equal(rq.pending, 1, 'still waiting just before the timeout');
  clock.advance(1);
  await t.rejects(unanswered, { cause: { code: 'ETIMEDOUT' } });
  const lost = rq.request('lost', route);
  rq.abortPending('ENOBUFS');
  await t.rejects(lost, { cause: { code: 'ENOBUFS' } });
  const p = rq.request('c', route);
  rq.close();
  await t.rejects(p, { cause: { code: 'EBADF' } });
  await t.rejects(rq.request('d', route), { cause: { code: 'EBADF' } });
  t.ok(sock.closed);
  rq.close();
});

t.test(
  'one ack per datagram: earlier requests succeed with it unless the kernel reported an error',
  async (t) => {
    const sock = new FakeSocket();
    const rq = new BatchRequester(sock);
    const ps = Array.from({ length: 5 }, (_, i) =>
      rq.request(`r${i}`, route).then(
        () => 'ok',
        (e: { cause?: { code?: string } }) => e.cause?.code,
      ),
    );
    await Promise.resolve();
    const msgs = sock.sent[0]!.map((b) => decodeMessages(b)[0]!);
    t.same(
      msgs.map((m) => (m.flags & NLM_F_ACK) !== 0),
      [false, false, false, false, true],
      'only the last request asks for an ack',
    );
    // As the kernel answers: an error for the failed third request, then the ack of the last one.
    sock.deliver(Buffer.concat([nlmsgError(msgs[2]!.seq, 17), nlmsgError(msgs[4]!.seq, 0)]));
    t.same(await Promise.all(ps), ['ok', 'ok', 'EEXIST', 'ok', 'ok']);
    t.equal(rq.pending, 0);
  },
);
