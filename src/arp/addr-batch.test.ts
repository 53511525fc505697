import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { parseIpAddr } from '../util/ip.js';
import {
  AddressBatcher,
  type DatagramSocket,
  decodeAcks,
  encodeAddressRequest,
  MAX_BATCH,
  NLM_F_CREATE,
  NLM_F_REPLACE,
  RTM_NEWADDR,
} from './addr-batch.js';

const ip = (text: string) => parseIpAddr(text)!;
const turn = () => new Promise((r) => setImmediate(r));

/** An NLMSG_ERROR answer to request `seq` (errno 0 = the ack), as the kernel writes one: 36 bytes. */
function nlmsgError(seq: number, errno: number): Buffer {
  const b = Buffer.alloc(36);
  b.writeUInt32LE(36, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt32LE(seq, 8);
  b.writeInt32LE(-errno, 16);
  return b;
}

const seqOf = (msg: Buffer) => msg.readUInt32LE(8);
const asksAck = (msg: Buffer) => (msg.readUInt16LE(6) & 0x4) !== 0;
/** The address (IFA_LOCAL, the first attribute) a request is about, as text. */
const addrOf = (msg: Buffer) => {
  const len = msg.readUInt16LE(24) - 4;
  const b = msg.subarray(28, 28 + len);
  return len === 4 ? [...b].join('.') : b.toString('hex');
};

/** A fake kernel socket: records datagrams; `answer()` replies to the last one as Linux does. */
class FakeSocket implements DatagramSocket {
  sent: Buffer[][] = [];
  failSend: Error | undefined;
  refs: boolean[] = [];
  closed = false;
  #onMessage: ((buf: Buffer, port: number) => void) | undefined;
  #onError: ((code: string) => void) | undefined;
  send(parts: Buffer[], cb: (err?: Error) => void): void {
    this.sent.push(parts.map((p) => Buffer.from(p)));
    const err = this.failSend;
    queueMicrotask(() => cb(err));
  }
  onMessage(fn: (buf: Buffer, port: number) => void): void {
    this.#onMessage = fn;
  }
  onError(fn: (code: string) => void): void {
    this.#onError = fn;
  }
  ref(on: boolean): void {
    this.refs.push(on);
  }
  close(): void {
    this.closed = true;
  }
  deliver(buf: Buffer, port = 0): void {
    this.#onMessage?.(buf, port);
  }
  error(code: string): void {
    this.#onError?.(code);
  }
  /**
   * Answer the last datagram as netlink_rcv_skb does: each message handled in order, an error answer
   * (one datagram each) for every failed one, an ack for the ones that asked.
   */
  answer(errnoOf: (msg: Buffer) => number = () => 0): void {
    for (const msg of this.sent.at(-1) ?? []) {
      const errno = errnoOf(msg);
      if (errno !== 0 || asksAck(msg)) this.deliver(nlmsgError(seqOf(msg), errno));
    }
  }
}

t.test('the request is the bytes the package sent before batching, last attribute padded', async (t) => {
  const v4 = encodeAddressRequest(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, 7, ip('198.51.100.7'), 1);
  t.equal(
    v4.toString('hex'),
    // nlmsghdr (len 60, RTM_NEWADDR, REQUEST|ACK|REPLACE|CREATE, seq 7, pid 0), ifaddrmsg (AF_INET /32 lo),
    // IFA_LOCAL, IFA_ADDRESS, IFA_LABEL "lo:vm", IFA_PROTO 0x76.
    '3c000000140005050700000000000000' +
      '0220000001000000' +
      '08000200c6336407' +
      '08000100c6336407' +
      '0a0003006c6f3a766d000000' +
      '05000b0076000000',
  );
  const v6 = encodeAddressRequest(21, 0, 8, ip('2001:db8::1:7'), 1);
  t.equal(
    v6.toString('hex'),
    // RTM_DELADDR, REQUEST|ACK; AF_INET6 /128; no label (IPv6 addresses have none).
    '48000000150005000800000000000000' +
      '0a80000001000000' +
      '1400020020010db8000000000000000000010007' +
      '1400010020010db8000000000000000000010007' +
      '05000b0076000000',
  );
  t.same(
    decodeAcks(Buffer.concat([nlmsgError(7, 0), nlmsgError(8, 17), Buffer.from('0400', 'hex')])),
    [
      { seq: 7, errno: 0 },
      { seq: 8, errno: 17 },
    ],
    'answers decoded; a truncated tail is ignored',
  );
});

t.test('requests of one turn go out in one datagram; only the last asks for an ack', async (t) => {
  const sock = new FakeSocket();
  const b = new AddressBatcher(sock);
  const ps = Array.from({ length: 50 }, (_, i) =>
    b.request((seq) => encodeAddressRequest(RTM_NEWADDR, 0, seq, ip(`198.51.100.${i + 1}`), 1)),
  );
  await turn();
  t.equal(sock.sent.length, 1, 'one sendmsg');
  t.equal(sock.sent[0]!.length, 50);
  t.same(
    sock.sent[0]!.map(asksAck),
    [...Array(49).fill(false), true],
    'one answer per datagram instead of one per VIP',
  );
  t.same(sock.refs, [true], 'the process is kept alive while answers are awaited');
  sock.deliver(nlmsgError(seqOf(sock.sent[0]!.at(-1)!), 0), 4321);
  t.equal(b.pending, 50, 'datagrams from other ports are ignored');
  sock.answer();
  await Promise.all(ps);
  t.equal(b.pending, 0);
  t.same(sock.refs, [true, false], 'and let go once they came');
});

t.test('one failed request in a datagram fails alone, with its errno', async (t) => {
  const sock = new FakeSocket();
  const b = new AddressBatcher(sock);
  const vips = ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4'];
  const ps = vips.map((v) =>
    b
      .request((seq) => encodeAddressRequest(RTM_NEWADDR, 0, seq, ip(v), 1))
      .then(
        () => 'ok',
        (e: Error & { code?: string }) => `${e.code}: ${e.message}`,
      ),
  );
  await turn();
  sock.answer((msg) => (addrOf(msg) === '198.51.100.3' ? 22 : 0));
  t.same(await Promise.all(ps), ['ok', 'ok', 'EINVAL: Request rejected: EINVAL', 'ok']);
  // The last one failing: its error is its only answer, and it settles the datagram.
  const qs = vips.map((v) =>
    b
      .request((seq) => encodeAddressRequest(RTM_NEWADDR, 0, seq, ip(v), 1))
      .then(
        () => 'ok',
        (e: Error & { code?: string }) => e.code,
      ),
  );
  await turn();
  sock.answer((msg) => (addrOf(msg) === '198.51.100.4' ? 1 : 0));
  t.same(await Promise.all(qs), ['ok', 'ok', 'ok', 'EPERM']);
});

t.test('more requests than fit one datagram: the next goes out when the first is answered', async (t) => {
  const sock = new FakeSocket();
  const b = new AddressBatcher(sock);
  const n = MAX_BATCH + 44;
  const v6 = (i: number) => ip(`2001:db8::1:${(i + 1).toString(16)}`);
  const settled: string[] = [];
  const ps = Array.from({ length: n }, (_, i) =>
    b
      .request((seq) => encodeAddressRequest(RTM_NEWADDR, 0, seq, v6(i), 1))
      .then(
        () => void settled.push(`ok ${i}`),
        (e: Error & { code?: string }) => void settled.push(`${e.code} ${i}`),
      ),
  );
  await turn();
  t.same(
    sock.sent.map((d) => d.length),
    [MAX_BATCH],
    'at most MAX_BATCH in a datagram, one datagram in flight',
  );
  t.ok(
    sock.sent[0]!.reduce((sum, m) => sum + m.length, 0) < 208 * 1024,
    'a full datagram fits what one sendmsg may carry',
  );
  sock.answer((msg) => (msg === sock.sent[0]![100] ? 17 : 0));
  t.same(
    sock.sent.map((d) => d.length),
    [MAX_BATCH, 44],
    'the rest went out once the first datagram was answered',
  );
  t.same(
    sock.sent[1]!.map(addrOf),
    Array.from({ length: 44 }, (_, i) => v6(MAX_BATCH + i).bytes.toString('hex')),
    'in the order asked',
  );
  sock.answer();
  await Promise.all(ps);
  t.equal(settled.length, n);
  t.same(
    settled.filter((s) => !s.startsWith('ok')),
    ['EEXIST 100'],
    'the one the kernel refused, and no other',
  );
});

t.test('a failed send, a lost answer, a socket error and close reject what waits', async (t) => {
  const sock = new FakeSocket();
  const clock = new FakeClock();
  const b = new AddressBatcher(sock, { timeoutMs: 50, clock });
  const req = () => b.request((seq) => encodeAddressRequest(RTM_NEWADDR, 0, seq, ip('198.51.100.9'), 1));
  sock.failSend = Object.assign(new Error('Error when sending Netlink message'), { code: 'EMSGSIZE' });
  await t.rejects(req(), { code: 'EMSGSIZE', message: 'Error when sending Netlink message' });
  sock.failSend = undefined;
  const unanswered = req();
  await turn();
  clock.advance(49);
  t.equal(b.pending, 1, 'still waiting just before the timeout');
  clock.advance(1);
  await t.rejects(unanswered, { message: 'Timeout has been reached' });
  const dropped = req();
  await turn();
  sock.error('ENOBUFS');
  await t.rejects(dropped, { code: 'ENOBUFS', message: 'Request rejected: ENOBUFS' });
  const queued = req();
  b.close();
  await t.rejects(queued, { code: 'EBADF' });
  await t.rejects(req(), { code: 'EBADF' });
  t.ok(sock.closed);
  b.close();
});
