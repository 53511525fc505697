/**
 * Differential test: one script of etcdctl 3.4 commands runs against vipmesh's datastore and against a real
 * etcd started in the same test; the normalized outputs (stdout, stderr, exit status) must match.
 * Normalized: cluster/member IDs, raft term and index, server-chosen lease IDs, timings, DB size, version.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { etcdctl, startEtcd } from './kine-peers.js';

interface Side {
  endpoint: string;
  leases: string[];
  /** The member ID in hex, as etcdctl prints it. */
  member: string;
}

interface Step {
  args: (s: Side) => string[];
  stdin?: string | Buffer;
  /** Kill after this many ms (watch) and compare what was printed. */
  killAfter?: number;
  /** Remember the lease ID this command granted. */
  grantsLease?: boolean;
}

const cmd = (...args: string[]): Step => ({ args: () => args });
const withLease = (f: (lease: string) => string[]): Step => ({ args: (s) => f(s.leases.at(-1) ?? '0') });
/** Where each side's `snapshot save` writes (the endpoint in the name is normalized like any other). */
const snapDir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-snap-'));
const snapFile = (s: Side) => join(snapDir, `snap-${s.endpoint}.db`);
/** The command with the endpoint written as a URL (`http://host:port`). */
const withUrl = (args: string[]): Step => ({ args: (s) => [`--endpoints=http://${s.endpoint}`, ...args] });
const withMember = (f: (member: string) => string[]): Step => ({ args: (s) => f(s.member) });

const script: Step[] = [
  cmd('get', 'foo'),
  cmd('endpoint', 'hashkv', '-w', 'json'),
  cmd('put', 'foo', 'baz', '--prev-kv'),
  cmd('get', 'foo', '-w', 'json'),
  cmd('put', '/a/1', 'v1'),
  cmd('put', '/a/2', 'v2'),
  cmd('put', '/a/3', 'v3'),
  cmd('put', '/b/1', 'w1'),
  cmd('put', '/a/2', 'v2bis'),
  cmd('get', '--prefix', '/a'),
  cmd('get', '--prefix', '/a', '--limit', '2', '-w', 'json'),
  cmd('get', '--prefix', '/', '--keys-only'),
  cmd('get', '--prefix', '/', '--limit', '1', '--keys-only', '-w', 'json'),
  cmd('get', '--from-key', '/a/2'),
  cmd('get', '/a/1', '/a/3'),
  cmd('get', '--prefix', '/', '--sort-by=MODIFY', '--order=DESCEND'),
  cmd('get', '--prefix', '/', '--sort-by=VALUE', '--order=ASCEND'),
  cmd('get', '--prefix', '/', '--sort-by=CREATE', '--order=DESCEND', '--limit', '2'),
  cmd('get', '--prefix', '/', '--sort-by=VERSION', '--order=DESCEND'),
  cmd('get', '--prefix', '/', '--order=DESCEND', '-w', 'json'),
  cmd('get', 'foo', '--rev=2'),
  cmd('get', 'foo', '--rev=3', '-w', 'json'),
  cmd('get', 'foo', '--consistency=s'),
  cmd('put', 'foo', '--ignore-value'),
  cmd('put', 'missing', '--ignore-value'),
  cmd('put', 'missing', '--ignore-lease', 'x'),
  cmd('get', 'foo', '-w', 'json'),
  cmd('del', '/a/1'),
  cmd('del', 'nothing-here'),
  cmd('del', '--prefix', '/a', '--prev-kv'),
  cmd('get', '--prefix', '/'),
  cmd('endpoint', 'hashkv', '-w', 'json'),
  cmd('endpoint', 'hashkv'),
  { args: () => ['txn'], stdin: 'create("new") = "0"\n\nput new v1\n\nget new\n\n' },
  { args: () => ['txn'], stdin: 'create("new") = "0"\n\nput new v2\n\nget new\n\n' },
  { args: () => ['txn', '-w', 'json'], stdin: 'ver("new") = "1"\nvalue("new") = "v1"\n\nput new v3\n\n\n' },
  {
    args: () => ['txn', '-w', 'json'],
    stdin: 'mod("new") > "1"\nver("foo") < "5"\nvalue("foo") != "x"\n\ndel new\nput k2 z\nget k2\n\n\n',
  },
  { args: () => ['txn'], stdin: 'mod("foo") < "3"\n\nput never v\n\nget foo\nget k2\n\n' },
  { args: () => ['txn'], stdin: 'value("absent") = ""\n\nput never v\n\nput yes v\n\n' },
  { args: () => ['txn'], stdin: 'create("foo") > "0"\n\nput dup 1\nput dup 2\n\n\n' },
  cmd('endpoint', 'hashkv', '-w', 'json'),
  cmd('watch', '--prefix', '/a', '--rev=1'),
  cmd('watch', '--prev-kv', 'foo', '--rev=2'),
  cmd('watch', 'new', '--rev=5'),
  { args: () => ['lease', 'grant', '60'], grantsLease: true },
  withLease((l) => ['put', '--lease', l, 'lk', 'v']),
  withLease((l) => ['put', '--lease', l, 'lk2', 'v2']),
  withLease((l) => ['lease', 'timetolive', l, '--keys']),
  cmd('lease', 'list'),
  withLease((l) => ['lease', 'keep-alive', '--once', l]),
  cmd('get', 'lk', '-w', 'json'),
  cmd('put', 'lk', '--ignore-lease', 'v3'),
  withLease((l) => ['lease', 'revoke', l]),
  cmd('get', '--prefix', 'lk'),
  withLease((l) => ['lease', 'timetolive', l]),
  withLease((l) => ['lease', 'revoke', l]),
  cmd('put', '--lease', '1234abcd', 'x', 'y'),
  cmd('lease', 'keep-alive', '--once', '1234abcd'),
  { args: () => ['lease', 'grant', '1'], grantsLease: true },
  withLease((l) => ['lease', 'timetolive', l]),
  withLease((l) => ['lease', 'revoke', l]),
  cmd('watch', '--prefix', 'lk', '--rev=16', '--prev-kv'),
  { args: () => ['put', 'big'], stdin: Buffer.alloc(1_600_000, 0x61) },
  cmd('get', 'foo', '--rev=1000'),
  cmd('compaction', '6'),
  cmd('compaction', '4'),
  cmd('compaction', '100000'),
  cmd('get', 'foo', '--rev=3'),
  cmd('get', 'foo', '--rev=6', '-w', 'json'),
  cmd('watch', 'foo', '--rev=2'),
  cmd('watch', 'foo', '--rev=2', '-w', 'json'),
  cmd('get', '--prefix', '', '--keys-only'),
  // The history since the leases holds server-chosen lease IDs, which differ: delete and compact it away.
  cmd('del', '--prefix', ''),
  // --physical: etcd hashes its backend, and a compaction still running there changes the hash.
  cmd('compaction', '--physical', '19'),
  cmd('endpoint', 'hashkv', '-w', 'json'),
  cmd('put', 'after', 'all'),
  cmd('put', 'after', 'again'),
  cmd('endpoint', 'hashkv', '-w', 'json'),
  cmd('endpoint', 'hashkv', '--rev=20', '-w', 'json'),
  cmd('endpoint', 'hashkv', '--rev=5'),
  cmd('endpoint', 'hashkv', '--rev=50'),
  cmd('endpoint', 'status'),
  cmd('endpoint', 'health'),
  // Endpoints written as URLs: etcdctl dials them as they are and sends the URL as the HTTP/2 authority.
  withUrl(['get', 'after']),
  withUrl(['endpoint', 'status']),
  withUrl(['endpoint', 'hashkv']),
  withUrl(['endpoint', 'health']),
  withUrl(['defrag']),
  // --cluster: the endpoints come from MemberList's client URLs (http://...).
  cmd('endpoint', 'status', '--cluster'),
  cmd('endpoint', 'hashkv', '--cluster'),
  withUrl(['endpoint', 'hashkv', '--cluster', '-w', 'json']),
  withUrl(['defrag', '--cluster']),
  cmd('member', 'list'),
  withMember((m) => ['member', 'update', m, '--peer-urls=http://127.0.0.1:2380']),
  cmd('member', 'list', '-w', 'json'),
  cmd('member', 'update', '1234', '--peer-urls=http://127.0.0.1:2380'),
  cmd('member', 'remove', '1234'),
  withMember((m) => ['member', 'remove', m]),
  cmd('member', 'promote', '1234'),
  withMember((m) => ['member', 'promote', m]),
  withMember((m) => ['move-leader', m]),
  { args: (s) => [`--endpoints=http://${s.endpoint}`, 'move-leader', s.member] },
  cmd('move-leader', '1234'),
  cmd('--user', 'someone:secret', 'put', 'with-user', 'v'),
  cmd('--user', 'someone:secret', 'get', 'with-user'),
  { args: (s) => ['snapshot', 'save', snapFile(s)] },
  cmd('alarm', 'list'),
  cmd('defrag'),
  cmd('get', 'foo'),
];

function normalize(text: string, side: Side): string {
  let out = text
    .split('\n')
    .filter((l) => !l.startsWith('{"level":'))
    .join('\n');
  side.leases.forEach((id, i) => {
    out = out.replaceAll(id, `LEASE${i}`).replaceAll(String(BigInt(`0x${id}`)), `LEASE${i}`);
  });
  out = out
    .replaceAll(side.endpoint, 'ENDPOINT')

    .replace(/"(cluster_id|member_id|raft_term)":\d+/g, '"$1":N')
    .replace(/took = [^\s]+/g, 'took = T')
    .replace(/[0-9a-f]{12,16}, started, default, [^,]*,/g, 'MEMBER, started, default, PEERS,')
    .replace(
      /ENDPOINT, [0-9a-f]+, [^,]+, [^,]+, (true|false), (true|false), \d+, \d+, \d+,/g,
      'ENDPOINT, $1, $2,',
    )
    // Member IDs are printed %16x: padded with spaces when shorter.
    .replace(new RegExp(`\\s*\\b${side.member}\\b`, 'g'), ' MEMBER')
    .replace(/in cluster\s+[0-9a-f]+/g, 'in cluster CLUSTER')
    .replace(/"ID":\d+/g, '"ID":N')
    // Remaining TTLs are read a moment apart on each side: compare them to the nearest 10 s (or as "<10s").
    .replace(/remaining\((\d+)s\)/g, (_m, n: string) =>
      Number(n) < 10 ? 'remaining(<10s)' : `remaining(~${Math.round(Number(n) / 10) * 10}s)`,
    )
    // etcd lists a lease's keys from a Go map: the order is random there.
    .replace(
      /attached keys\(\[([^\]]*)\]\)/g,
      (_m, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`,
    );
  return out;
}

t.test('etcdctl gives the same answers from vipmesh as from etcd', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-'));
  const ds = await startDatastore({ dataDir: dir, listenAddress: '127.0.0.1:0', logger: silentLogger() });
  t.teardown(async () => {
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const sides: [Side, Side] = [
    { endpoint: etcd.endpoint, leases: [], member: '' },
    { endpoint: ds.address, leases: [], member: '' },
  ];
  for (const side of sides) {
    side.member = (await etcdctl(side.endpoint, ['member', 'list'])).stdout.split(',')[0]!;
  }
  for (const step of script) {
    const outs = await Promise.all(
      sides.map(async (side) => {
        const args = step.args(side);
        const timeout = args[0] === 'watch' ? 1500 : 10_000;
        const r = await etcdctl(side.endpoint, args, step.stdin, timeout);
        if (step.grantsLease) {
          const m = /lease ([0-9a-f]+) granted/.exec(r.stdout);
          if (m) side.leases.push(m[1]!);
        }
        const code = args[0] === 'watch' ? 'killed' : r.code;
        return `exit ${code}\n${normalize(r.stdout, side)}\n--stderr--\n${normalize(r.stderr, side)}`;
      }),
    );
    const label = step.args({ endpoint: '', leases: ['LEASE'], member: 'MEMBER' }).join(' ');
    if (process.env['KINE_DIFF_DEBUG']) t.comment(`${label}\n${outs[0]}`);
    t.equal(outs[1], outs[0], `etcdctl ${label}`);
  }
  t.teardown(() => rmSync(snapDir, { recursive: true, force: true }));
  // vipmesh's snapshot is a SQLite database (with etcd's SHA-256 trailer), not a bbolt file.
  const snap = new Database(snapFile(sides[1]), { readonly: true });
  t.same(snap.pragma('integrity_check'), [{ integrity_check: 'ok' }], 'the snapshot is a sound SQLite file');
  const live = snap
    .prepare(
      'SELECT name FROM kine k WHERE deleted = 0 AND NOT EXISTS (SELECT 1 FROM kine n WHERE n.name = k.name AND n.revision > k.revision)',
    )
    .all() as Array<{ name: Buffer }>;
  snap.close();
  t.same(
    live.map((r) => r.name.toString()).sort(),
    ['after', 'with-user'],
    'it holds the keys live when it was taken',
  );
  const status = await etcdctl(sides[1].endpoint, ['snapshot', 'status', snapFile(sides[1])]);
  t.match(status.stderr, 'invalid database', 'etcdctl snapshot status cannot read it');
});

t.test(
  'etcdctl on unix:///path (the embedded default) runs the commands that dial it as written',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-unix-'));
    const sock = `unix://${join(dir, 'kine.sock')}`;
    const ds = await startDatastore({ dataDir: dir, listenAddress: sock, logger: silentLogger() });
    t.teardown(async () => {
      await ds.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const run = async (...args: string[]) => {
      const r = await etcdctl(sock, args);
      t.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    t.equal(await run('put', 'k', 'v'), 'OK\n');
    t.equal(await run('get', 'k'), 'k\nv\n');
    t.match(await run('endpoint', 'status'), new RegExp(`^${sock}, [0-9a-f]+, 3\\.4\\.0, `));
    t.match(await run('endpoint', 'status', '--cluster'), new RegExp(`^${sock}, [0-9a-f]+, 3\\.4\\.0, `));
    const hash = await run('endpoint', 'hashkv');
    t.match(hash, new RegExp(`^${sock}, \\d+\\n$`));
    t.equal(await run('endpoint', 'hashkv', '--cluster'), hash);
    t.equal(await run('defrag'), `Finished defragmenting etcd member[${sock}]\n`);
    t.match(await run('snapshot', 'save', join(dir, 'snap.db')), /Snapshot saved at/);
  },
);
