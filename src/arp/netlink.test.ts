import type { RtNetlinkSocket } from 'netlink';
import t from 'tap';
import { parseIpAddr } from '../util/ip.js';
import type { DatagramSocket } from './addr-batch.js';
import { NetlinkTables } from './netlink.js';

const ip = (text: string) => parseIpAddr(text)!;
const LO = 1;

/** The package socket, as far as the tables use it for lo: a link dump and close. */
function fakeRt(): RtNetlinkSocket & { closed: boolean } {
  const fake = {
    closed: false,
    socket: {
      setRecvBufferSize: () => undefined,
      close: () => {
        fake.closed = true;
      },
    },
    getLinks: async () => [
      { data: { index: LO, flags: { up: true, loopback: true } }, attrs: { ifname: 'lo' } },
      { data: { index: 2, flags: { up: true, broadcast: true } }, attrs: { ifname: 'eth0' } },
    ],
  };
  return fake as unknown as RtNetlinkSocket & { closed: boolean };
}

/**
 * A kernel for lo's addresses: handles each message of a datagram in order, as rtnetlink does, and
 * answers a failed one with its errno (`refuse`) and the ones that ask with an ack.
 */
class FakeKernel implements DatagramSocket {
  readonly addrs = new Set<string>();
  readonly refuse = new Map<string, number>();
  readonly indexes = new Set<number>();
  datagrams = 0;
  closed = false;
  #deliver: ((buf: Buffer, port: number) => void) | undefined;

  send(parts: Buffer[], cb: (err?: Error) => void): void {
    this.datagrams++;
    const answers: Buffer[] = [];
    for (const msg of parts) {
      const type = msg.readUInt16LE(4);
      this.indexes.add(msg.readUInt32LE(20));
      const len = msg.readUInt16LE(24) - 4;
      const b = msg.subarray(28, 28 + len);
      const text = len === 4 ? [...b].join('.') : ip(b.toString('hex').replace(/(.{4})(?!$)/g, '$1:')).text;
      let errno = this.refuse.get(text) ?? 0;
      if (errno === 0 && type === 20) this.addrs.add(text);
      else if (errno === 0) {
        if (!this.addrs.delete(text)) errno = 99; // EADDRNOTAVAIL
      }
      if (errno === 0 && (msg.readUInt16LE(6) & 0x4) === 0) continue;
      const a = Buffer.alloc(36);
      a.writeUInt32LE(36, 0);
      a.writeUInt16LE(2, 4);
      a.writeUInt32LE(msg.readUInt32LE(8), 8);
      a.writeInt32LE(-errno, 16);
      answers.push(a);
    }
    // The answers are queued by the time sendmsg returns; the reader sees them on a later turn.
    setImmediate(() => {
      for (const a of answers) this.#deliver?.(a, 0);
    });
    queueMicrotask(() => cb());
  }
  onMessage(fn: (buf: Buffer, port: number) => void): void {
    this.#deliver = fn;
  }
  onError(): void {}
  ref(): void {}
  close(): void {
    this.closed = true;
  }
}

function rig() {
  const kernel = new FakeKernel();
  const nl = fakeRt();
  const events = fakeRt();
  return { kernel, nl, events, tables: new NetlinkTables(nl, events, kernel) };
}

t.test('concurrent adds share datagrams; a refused one fails naming its VIP', async (t) => {
  const { kernel, tables } = rig();
  const vips = [
    ...Array.from({ length: 200 }, (_, i) => `198.51.100.${20 + i}`),
    ...Array.from({ length: 400 }, (_, i) => `2001:db8::1:${(i + 1).toString(16)}`),
  ];
  kernel.refuse.set('198.51.100.77', 22);
  kernel.refuse.set('2001:db8::1:2a', 1);
  const results = await Promise.all(
    vips.map((v) =>
      tables.add(ip(v)).then(
        () => 'ok',
        (e: Error & { code?: string; details?: Record<string, unknown> }) => e,
      ),
    ),
  );
  t.equal(kernel.datagrams, 3, '600 adds in three datagrams (256 + 256 + 88)');
  t.equal(kernel.addrs.size, 598, 'every other VIP is on lo');
  t.same([...kernel.indexes], [LO], 'every request was for lo');
  const failed = results.filter((r) => r !== 'ok') as Array<
    Error & { code?: string; details?: Record<string, unknown> }
  >;
  t.equal(failed.length, 2);
  t.match(failed[0], {
    code: 'VIPMESH_ARP_ADDRESS',
    message: 'adding 198.51.100.77 on lo failed: Request rejected: EINVAL',
    details: { vip: '198.51.100.77', iface: 'lo', errno: 'EINVAL' },
  });
  t.match(failed[1], {
    code: 'VIPMESH_ARP_PERMISSION',
    message: 'adding 2001:db8::1:2a on lo needs CAP_NET_ADMIN (EPERM); run as root or grant the capability',
    details: { vip: '2001:db8::1:2a', errno: 'EPERM' },
  });
  t.equal((failed[0]!.cause as { code?: string }).code, 'EINVAL', "the kernel's errno is kept on the cause");
});

t.test('an address already there is added; an absent one is removed; others name the VIP', async (t) => {
  const { kernel, nl, events, tables } = rig();
  await tables.add(ip('198.51.100.5'));
  kernel.refuse.set('198.51.100.5', 17);
  await tables.add(ip('198.51.100.5'));
  t.same([...kernel.addrs], ['198.51.100.5'], 'EEXIST: already there is added');
  kernel.refuse.delete('198.51.100.5');
  await Promise.all([tables.remove(ip('198.51.100.5')), tables.remove(ip('2001:db8::5'))]);
  t.same([...kernel.addrs], [], 'removed; the absent one is "already done"');
  kernel.addrs.add('198.51.100.6');
  kernel.refuse.set('198.51.100.6', 1);
  await t.rejects(tables.remove(ip('198.51.100.6')), {
    code: 'VIPMESH_ARP_PERMISSION',
    message: 'removing 198.51.100.6 on lo needs CAP_NET_ADMIN (EPERM); run as root or grant the capability',
  });
  tables.close();
  t.ok(kernel.closed && nl.closed && events.closed, 'close closes all three sockets');
  await t.rejects(tables.add(ip('198.51.100.7')), {
    code: 'VIPMESH_ARP_ADDRESS',
    details: { vip: '198.51.100.7', errno: 'EBADF' },
  });
});
