/**
 * The server's own PKI and its tokens (DESIGN.md "Security"): a CA and a serving certificate made on first
 * start (ECDSA P-256), the join token `K10<sha256 of the CA PEM>::server:<secret>` that lets agents pin the
 * CA, and the admin token `K10<hash>::admin:<secret>` for the API. Files live under `<dataDir>/server/`, mode
 * 0600, made once and reused.
 */
import { createHash, randomBytes, timingSafeEqual, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { errnoOf, VipmeshError } from '../errors.js';

let x509lib: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509, loaded on first use: only a server making its credentials needs it, and it (with tsyringe
 * and the ASN.1 schemas) is several MB of an agent's RSS otherwise. tsyringe needs a Reflect metadata
 * polyfill loaded before it.
 */
function loadX509(): Promise<typeof X509> {
  x509lib ??= import('reflect-metadata').then(async () => {
    const lib = await import('@peculiar/x509');
    lib.cryptoProvider.set(webcrypto as never);
    return lib;
  });
  return x509lib;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** CA and serving certificate lifetime. k3s rotates its leaf certs yearly; a Pi cluster rarely does. */
const CA_YEARS = 10;
const LEAF_YEARS = 10;

/** What {@link ensureServerCredentials} returns. */
export interface ServerCredentials {
  caCertPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
  /** sha256 hex of the CA certificate PEM exactly as `/cacerts` serves it. */
  caHash: string;
  /** `K10<caHash>::server:<secret>`: what agents join with. */
  joinToken: string;
  /** `K10<caHash>::admin:<secret>`: what the API's admin clients use. A join token is not an admin token. */
  adminToken: string;
}

/** A parsed token. */
export interface ParsedToken {
  caHash: string;
  role: 'server' | 'admin';
  secret: string;
}

/** sha256 hex of `pem` (the CA hash of tokens). */
export function caHashOf(pem: string): string {
  return createHash('sha256').update(pem).digest('hex');
}

function writeSecret(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function toPem(x509: typeof X509, der: ArrayBuffer, label: string): string {
  return `${x509.PemConverter.encode(der, label)}\n`;
}

type KeyPair = webcrypto.CryptoKeyPair;

async function keyPair(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as KeyPair;
}

async function pkcs8Pem(x509: typeof X509, key: webcrypto.CryptoKey): Promise<string> {
  return toPem(x509, await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function isIp(s: string): boolean {
  return /^[\d.]+$/.test(s) || s.includes(':');
}

async function makeCredentials(sans: string[]): Promise<{
  caCertPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
}> {
  const x509 = await loadX509();
  const now = new Date(Date.now() - 60_000); // a minute of slack for clocks that disagree a little
  const years = (n: number) => new Date(now.getTime() + n * 365 * 86_400_000);
  const caKeys = await keyPair();
  const serial = () =>
    randomBytes(8)
      .toString('hex')
      .replace(/^[89a-f]/, '1');
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=vipmesh-server-ca@${Math.floor(now.getTime() / 1000)}`,
    notBefore: now,
    notAfter: years(CA_YEARS),
    signingAlgorithm: SIGN,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leafKeys = await keyPair();
  const names = [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...sans])];
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=vipmesh-server',
    issuer: ca.subject,
    notBefore: now,
    notAfter: years(LEAF_YEARS),
    signingAlgorithm: SIGN,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => ({ type: isIp(n) ? ('ip' as const) : ('dns' as const), value: n })),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    caCertPem: `${ca.toString('pem')}\n`,
    caKeyPem: await pkcs8Pem(x509, caKeys.privateKey),
    certPem: `${leaf.toString('pem')}\n`,
    keyPem: await pkcs8Pem(x509, leafKeys.privateKey),
  };
}

function secret(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The server's CA, serving certificate and tokens: read from `<dataDir>/server/tls/` and
 * `<dataDir>/server/{token,admin-token}` when present, made (once) otherwise. `opts.sans` adds subject
 * alternative names to a certificate made now (an existing certificate is kept as it is).
 */
export async function ensureServerCredentials(
  dataDir: string,
  opts: { sans?: string[] } = {},
): Promise<ServerCredentials> {
  const serverDir = join(dataDir, 'server');
  const tls = join(serverDir, 'tls');
  const files = {
    caCertPem: join(tls, 'server-ca.crt'),
    caKeyPem: join(tls, 'server-ca.key'),
    certPem: join(tls, 'serving.crt'),
    keyPem: join(tls, 'serving.key'),
  };
  try {
    mkdirSync(tls, { recursive: true, mode: 0o700 });
    let pems: Record<keyof typeof files, string>;
    if (Object.values(files).every((f) => existsSync(f))) {
      pems = {
        caCertPem: readFileSync(files.caCertPem, 'utf8'),
        caKeyPem: readFileSync(files.caKeyPem, 'utf8'),
        certPem: readFileSync(files.certPem, 'utf8'),
        keyPem: readFileSync(files.keyPem, 'utf8'),
      };
    } else {
      pems = await makeCredentials(opts.sans ?? []);
      for (const k of Object.keys(files) as Array<keyof typeof files>) writeSecret(files[k], pems[k]);
    }
    const caHash = caHashOf(pems.caCertPem);
    const tokenOf = (file: string, role: ParsedToken['role']): string => {
      const path = join(serverDir, file);
      if (existsSync(path)) {
        const parsed = parseToken(readFileSync(path, 'utf8'));
        if (parsed.caHash === caHash && parsed.role === role) return formatToken(parsed);
      }
      const token = formatToken({ caHash, role, secret: secret() });
      writeSecret(path, `${token}\n`);
      return token;
    };
    return {
      ...pems,
      caHash,
      joinToken: tokenOf('token', 'server'),
      adminToken: tokenOf('admin-token', 'admin'),
    };
  } catch (err) {
    if (err instanceof VipmeshError) throw err;
    throw new VipmeshError('VIPMESH_TUNNEL_PKI', `cannot set up the server credentials in ${serverDir}`, {
      cause: err,
      details: { dataDir, errno: errnoOf(err) },
    });
  }
}

/** `K10<caHash>::<role>:<secret>`. */
export function formatToken(t: ParsedToken): string {
  return `K10${t.caHash}::${t.role}:${t.secret}`;
}

const TOKEN_RE = /^K10([0-9a-f]{64})::(server|admin):([A-Za-z0-9._~+/=-]{8,256})$/;

/**
 * Parse a full token `K10<sha256 hex>::server:<secret>` (or `::admin:`). Anything else (a bare secret, a
 * truncated hash, another role) is a `VIPMESH_TUNNEL_BAD_TOKEN`; the message never repeats the input.
 */
export function parseToken(text: string): ParsedToken {
  const m = TOKEN_RE.exec(text.trim());
  if (m === null) {
    throw new VipmeshError(
      'VIPMESH_TUNNEL_BAD_TOKEN',
      'the token is not of the form K10<sha256 hex of the CA>::server:<secret> (see `vipmesh token`)',
    );
  }
  return { caHash: m[1]!, role: m[2] as ParsedToken['role'], secret: m[3]! };
}

/**
 * True when `presented` is a valid token for `expected` with the same role, CA hash and secret (compared in
 * constant time). A join token never passes as an admin token, and the reverse.
 */
export function checkToken(expected: string, presented: string, role: ParsedToken['role']): boolean {
  let a: ParsedToken;
  let b: ParsedToken;
  try {
    a = parseToken(expected);
    b = parseToken(presented);
  } catch {
    return false;
  }
  if (a.role !== role || b.role !== role || a.caHash !== b.caHash) return false;
  const x = createHash('sha256').update(a.secret).digest();
  const y = createHash('sha256').update(b.secret).digest();
  return timingSafeEqual(x, y);
}

/**
 * GET `<serverUrl>/cacerts` over TLS without verifying the server (we do not trust it yet), and return the
 * PEM when its sha256 is `caHash`. Refuses with `VIPMESH_TUNNEL_CA_MISMATCH` ("CA hash does not match the
 * token") otherwise. `serverUrl` is `https://host:port` (a `wss://` URL is accepted too).
 */
export function fetchAndPinCA(serverUrl: string, caHash: string, timeoutMs = 5000): Promise<string> {
  const url = new URL('/cacerts', serverUrl.replace(/^wss:/, 'https:'));
  return new Promise((resolve, reject) => {
    const fail = (err: unknown) =>
      reject(
        err instanceof VipmeshError
          ? err
          : new VipmeshError(
              'VIPMESH_TUNNEL_CA_FETCH',
              `cannot fetch ${url.href}: ${(err as Error).message}`,
              {
                cause: err,
                details: { url: url.href, errno: errnoOf(err) },
              },
            ),
      );
    const req = httpsRequest(url, { rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 1 << 20) req.destroy(new Error('response too large'));
        else chunks.push(c);
      });
      res.on('error', fail);
      res.on('end', () => {
        if (res.statusCode !== 200) {
          fail(new Error(`HTTP ${res.statusCode}`));
          return;
        }
        const pem = Buffer.concat(chunks).toString('utf8');
        if (caHashOf(pem) !== caHash) {
          fail(
            new VipmeshError('VIPMESH_TUNNEL_CA_MISMATCH', 'CA hash does not match the token', {
              details: { url: url.href },
            }),
          );
          return;
        }
        resolve(pem);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.end();
  });
}
