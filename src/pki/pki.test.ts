import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { run } from '../cli/program.js';
import { isVipmeshError } from '../errors.js';
import { tempDir } from '../testing/tmp.js';
import { createTunnelServer } from '../testing/tunnel-server.js';
import {
  checkToken,
  ensureServerCredentials,
  FileNodePasswordStore,
  fetchAndPinCA,
  formatToken,
  hashNodePassword,
  parseToken,
  verifyNodePassword,
} from './index.js';

/** A temporary directory, removed when the test process exits. */
t.test('server credentials: made once (ECDSA P-256, 0600), reused after, tokens pin the CA', async (t) => {
  const dir = tempDir('vipmesh-pki-');
  const a = await ensureServerCredentials(dir, { sans: ['198.51.100.1', 'server.example'] });
  const b = await ensureServerCredentials(dir);
  t.same(b, a, 'the second call reads what the first made');
  for (const f of [
    'tls/server-ca.crt',
    'tls/server-ca.key',
    'tls/serving.crt',
    'tls/serving.key',
    'token',
    'admin-token',
  ]) {
    t.equal(statSync(join(dir, 'server', f)).mode & 0o777, 0o600, `${f} is 0600`);
  }
  t.equal(readFileSync(join(dir, 'server', 'token'), 'utf8').trim(), a.joinToken);
  t.equal(a.caHash, createHash('sha256').update(a.caCertPem).digest('hex'));
  t.match(a.joinToken, new RegExp(`^K10${a.caHash}::server:[0-9a-f]{32}$`));
  t.match(a.adminToken, new RegExp(`^K10${a.caHash}::admin:[0-9a-f]{32}$`));
  t.not(parseToken(a.joinToken).secret, parseToken(a.adminToken).secret, 'join and admin secrets differ');
  const ca = new X509Certificate(a.caCertPem);
  const leaf = new X509Certificate(a.certPem);
  t.ok(ca.ca, 'the CA is a CA');
  t.ok(leaf.verify(ca.publicKey), 'the serving certificate is signed by the CA');
  t.ok(leaf.checkIssued(ca));
  t.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'ECDSA P-256');
  t.match(leaf.subjectAltName ?? '', /IP Address:198\.51\.100\.1/);
  t.match(leaf.subjectAltName ?? '', /DNS:server\.example/);
  t.ok(leaf.checkIP('127.0.0.1'));
});

t.test('tokens: the full form parses; anything else is VIPMESH_TUNNEL_BAD_TOKEN', async (t) => {
  const hash = 'a'.repeat(64);
  t.same(parseToken(`K10${hash}::server:s3cr3t-value\n`), {
    caHash: hash,
    role: 'server',
    secret: 's3cr3t-value',
  });
  t.same(parseToken(`K10${hash}::admin:0123456789`).role, 'admin');
  for (const bad of [
    '',
    's3cr3t-value',
    `K10${hash.slice(1)}::server:s3cr3t-value`,
    `K10${hash}::node:s3cr3t-value`,
    `K10${hash}:server:s3cr3t-value`,
    `K10${hash}::server:`,
  ]) {
    t.throws(() => parseToken(bad), { code: 'VIPMESH_TUNNEL_BAD_TOKEN' }, JSON.stringify(bad));
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      try {
        parseToken(s);
        return true;
      } catch (err) {
        // The message never repeats the input (it may be a secret pasted in the wrong place).
        return (
          isVipmeshError(err, 'VIPMESH_TUNNEL_BAD_TOKEN') &&
          (s.trim().length < 12 || !err.message.includes(s))
        );
      }
    }),
  );
  fc.assert(
    fc.property(
      fc.stringMatching(/^[0-9a-f]{64}$/),
      fc.constantFrom('server' as const, 'admin' as const),
      fc.stringMatching(/^[A-Za-z0-9]{8,64}$/),
      (caHash, role, secret) => {
        const p = parseToken(formatToken({ caHash, role, secret }));
        return p.caHash === caHash && p.role === role && p.secret === secret;
      },
    ),
  );
});

t.test('checkToken: a join token is not an admin token; secrets must match', async (t) => {
  const c = await ensureServerCredentials(tempDir('vipmesh-pki-'));
  t.ok(checkToken(c.joinToken, c.joinToken, 'server'));
  t.ok(checkToken(c.adminToken, c.adminToken, 'admin'));
  t.notOk(checkToken(c.adminToken, c.joinToken, 'admin'), 'join token refused as admin');
  t.notOk(checkToken(c.joinToken, c.adminToken, 'server'), 'admin token refused as join');
  const wrong = formatToken({ ...parseToken(c.joinToken), secret: 'not-the-secret' });
  t.notOk(checkToken(c.joinToken, wrong, 'server'));
  t.notOk(checkToken(c.joinToken, 'garbage', 'server'));
  const otherCa = formatToken({ ...parseToken(c.joinToken), caHash: 'b'.repeat(64) });
  t.notOk(checkToken(c.joinToken, otherCa, 'server'), 'another CA hash');
});

t.test('fetchAndPinCA: the pinned hash is checked', async (t) => {
  const dir = tempDir('vipmesh-pki-');
  const srv = await createTunnelServer({ dataDir: dir, port: 0, host: '127.0.0.1' });
  t.teardown(() => srv.close());
  const pem = await fetchAndPinCA(srv.url, srv.credentials.caHash);
  t.equal(pem, srv.credentials.caCertPem);
  await t.rejects(fetchAndPinCA(srv.url, 'c'.repeat(64)), {
    code: 'VIPMESH_TUNNEL_CA_MISMATCH',
    message: 'CA hash does not match the token',
  });
  await t.rejects(fetchAndPinCA(`${srv.url.replace('https', 'wss')}/`, 'c'.repeat(64)), {
    code: 'VIPMESH_TUNNEL_CA_MISMATCH',
  });
  // A port with nothing on it.
  const other = await createTunnelServer({ dataDir: dir, port: 0, host: '127.0.0.1' });
  const dead = other.url;
  await other.close();
  await t.rejects(fetchAndPinCA(dead, srv.credentials.caHash), { code: 'VIPMESH_TUNNEL_CA_FETCH' });
});

t.test(
  "`vipmesh token` prints the server's join token (or --admin the admin token) and never makes credentials",
  async (t) => {
    const dir = tempDir('vipmesh-pki-');
    const out = (args: string[]) => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let text = '';
      let err = '';
      stdout.on('data', (d) => (text += d));
      stderr.on('data', (d) => (err += d));
      const ctx = {
        stdout,
        stderr,
        exitCode: 0,
        logger: () => {
          throw new Error('no logger');
        },
      };
      return run(args, ctx).then((code) => ({ code, text, err }));
    };
    // A directory no server has used: an error naming what is missing, and nothing made there.
    const empty = await out(['token', '--data-dir', dir]);
    t.equal(empty.code, 1);
    t.equal(empty.text, '', 'no token printed');
    t.match(empty.err, `${join(dir, 'server', 'tls', 'server-ca.crt')} does not exist`);
    t.match(empty.err, /VIPMESH_CREDENTIALS_MISSING/);
    t.notOk(existsSync(join(dir, 'server')), 'no CA made');
    await t.rejects(ensureServerCredentials(dir, { create: false }), { code: 'VIPMESH_CREDENTIALS_MISSING' });
    // The server makes them; then the command prints them.
    const creds = await ensureServerCredentials(dir);
    const join1 = await out(['token', '--data-dir', dir]);
    t.equal(join1.code, 0);
    t.equal(join1.text, `${creds.joinToken}\n`);
    const admin = await out(['token', '--data-dir', dir, '--admin']);
    t.equal(admin.text, `${creds.adminToken}\n`);
    // A lost token file is not replaced by one the running server would not know.
    rmSync(join(dir, 'server', 'token'));
    const lost = await out(['token', '--data-dir', dir]);
    t.equal(lost.code, 1);
    t.match(lost.err, `${join(dir, 'server', 'token')} does not exist`);
    const file = join(tempDir('vipmesh-pki-'), 'a-file');
    writeFileSync(file, 'x');
    await t.rejects(ensureServerCredentials(file), { code: 'VIPMESH_TUNNEL_PKI' });
    const bad = await out(['token', '--data-dir', file]);
    t.equal(bad.code, 1);
  },
);

t.test('node passwords: salted hash, verified in constant time, persisted 0600', async (t) => {
  const h = hashNodePassword('correct horse battery');
  t.ok(verifyNodePassword('correct horse battery', h));
  t.notOk(verifyNodePassword('wrong', h));
  t.notOk(verifyNodePassword('x', 'md5:zz'));
  t.not(hashNodePassword('same'), hashNodePassword('same'), 'salted');
  const path = join(tempDir('vipmesh-pki-'), 'server', 'node-passwords.json');
  const store = new FileNodePasswordStore(path);
  t.equal(await store.get('pi1'), undefined);
  await store.set('pi1', h);
  await store.set('pi2', 'h2');
  await store.delete('pi2');
  t.equal(statSync(path).mode & 0o777, 0o600);
  const again = new FileNodePasswordStore(path);
  t.equal(await again.get('pi1'), h, 'read back by a new store');
  t.equal(await again.get('pi2'), undefined);
  writeFileSync(path, '{not json');
  await t.rejects(new FileNodePasswordStore(path).get('pi1'), { code: 'VIPMESH_TUNNEL_PASSWORD_STORE' });
});
