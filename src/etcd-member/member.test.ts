import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { etcdArgs, etcdPaths, localEtcdClient, type MemberConfig, peerUrlOf } from './config.js';
import { EtcdMember } from './member.js';

const config: MemberConfig = {
  name: 's1',
  paths: etcdPaths('/var/lib/vipmesh'),
  peerIp: '198.51.100.11',
  initialCluster: 's1=https://198.51.100.11:2380',
  initialClusterState: 'new',
};

t.test('the command line: TLS with client certificates on loopback and the peer address', async (t) => {
  const args = etcdArgs(config);
  t.ok(args.includes('--data-dir=/var/lib/vipmesh/server/db/etcd'), 'data under <data-dir>/server/db/etcd');
  t.ok(args.includes('--listen-client-urls=https://127.0.0.1:2379'), 'client URL on loopback only');
  t.ok(args.includes('--listen-peer-urls=https://198.51.100.11:2380'), 'peer URL on the node IP');
  t.ok(
    args.includes('--client-cert-auth') && args.includes('--peer-client-cert-auth'),
    'both ask for certificates',
  );
  t.notOk(args.includes('--force-new-cluster'), 'no reset unless asked');
  t.ok(etcdArgs({ ...config, forceNewCluster: true }).includes('--force-new-cluster'), '--cluster-reset');
  t.equal(peerUrlOf({ peerIp: '2001:db8::1' }), 'https://[2001:db8::1]:2380', 'IPv6 peer URL');
  t.equal(localEtcdClient('/nonexistent'), undefined, 'no member: no local client');
});

/** A process stand-in: `exit(code)` ends it; stderr is writable by the test. */
class FakeChild extends EventEmitter {
  stderr = new PassThrough();
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  pid = 4242;
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.stderr.end();
    this.emit('close', code, signal);
  }
  kill(signal: NodeJS.Signals): boolean {
    queueMicrotask(() => this.exit(null, signal));
    return true;
  }
}

t.test('a member that dies is restarted with a doubling backoff; close stops it', async (t) => {
  const clock = new FakeClock();
  const children: FakeChild[] = [];
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)) as { level: number; msg: string });
        cb();
      },
    }),
  );
  const m = new EtcdMember({
    config,
    logger,
    clock,
    spawn: () => {
      const c = new FakeChild();
      children.push(c);
      return c as unknown as ChildProcess;
    },
  });
  m.start();
  t.equal(m.pid, 4242);
  children[0]!.stderr.write('{"level":"warn","msg":"slow fdatasync","took":"2s"}\nnot json\n');
  await new Promise((r) => setImmediate(r));
  t.ok(
    lines.some((l) => l.level === 40 && l.msg === 'etcd: slow fdatasync'),
    "etcd's warning is a warning in vipmesh's log",
  );
  t.ok(
    lines.some((l) => l.msg === 'etcd'),
    'a line that is not JSON is passed on as it is',
  );
  children[0]!.exit(1);
  t.equal(children.length, 1, 'not restarted at once');
  clock.advance(499);
  t.equal(children.length, 1);
  clock.advance(1);
  t.equal(children.length, 2, 'restarted after 500 ms');
  children[1]!.exit(1);
  clock.advance(999);
  t.equal(children.length, 2);
  clock.advance(1);
  t.equal(children.length, 3, 'the second death in a row waits 1 s');
  clock.advance(60_000);
  children[2]!.exit(1);
  clock.advance(500);
  t.equal(children.length, 4, 'a long run resets the backoff');
  t.equal(m.starts, 4);
  await m.close(10);
  t.equal(children[3]!.signalCode, 'SIGTERM', 'close stops the member');
  clock.advance(60_000);
  t.equal(children.length, 4, 'and it is not restarted');
  await t.rejects(m.waitHealthy(10), { code: 'VIPMESH_ETCD_UNHEALTHY' }, 'a closed member is never healthy');
});
