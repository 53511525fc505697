/**
 * The server's own credentials: a CA and a serving certificate made on first start (ECDSA P-256), and the
 * join and admin tokens that name the CA by hash (see ./token.ts). Files live under `<dataDir>/server/`,
 * mode 0600, made once and reused.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { errnoOf, VipmeshError } from '../errors.js';
import { caHashOf } from '../util/ca-pin.js';
import { formatToken, type ParsedToken, parseToken } from './token.js';

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

function serialNumber(): string {
  return randomBytes(8)
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

/** A minute of slack for clocks that disagree a little, and the end of a lifetime in years from then. */
function validity(yearsValid: number): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Date.now() - 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + yearsValid * 365 * 86_400_000) };
}

/** What {@link issueCertificate} makes a certificate for. */
export interface LeafRequest {
  /** The subject's common name. */
  cn: string;
  /** DNS names and IP addresses (either, told apart by form). */
  sans: string[];
  /** serverAuth always; clientAuth too when true (an etcd member: peer, client URL and its own client). */
  client?: boolean;
}

/**
 * A certificate and its new key (PEM, PKCS#8) signed by the CA `caCertPem`/`caKeyPem` (as
 * {@link ensureServerCredentials} made them): ECDSA P-256, valid ten years.
 */
export async function issueCertificate(
  ca: { caCertPem: string; caKeyPem: string },
  req: LeafRequest,
): Promise<{ certPem: string; keyPem: string }> {
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(ca.caCertPem);
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    x509.PemConverter.decode(ca.caKeyPem)[0]!,
    EC,
    true,
    ['sign'],
  );
  const caPub = await caCert.publicKey.export(EC, ['verify']);
  const leafKeys = await keyPair();
  const usages = [x509.ExtendedKeyUsage.serverAuth];
  if (req.client === true) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const names = [...new Set(req.sans)];
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${req.cn}`,
    issuer: caCert.subject,
    ...validity(LEAF_YEARS),
    signingAlgorithm: SIGN,
    publicKey: leafKeys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(usages),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => ({ type: isIp(n) ? ('ip' as const) : ('dns' as const), value: n })),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caPub),
    ],
  });
  return { certPem: `${leaf.toString('pem')}\n`, keyPem: await pkcs8Pem(x509, leafKeys.privateKey) };
}

async function makeCa(): Promise<{ caCertPem: string; caKeyPem: string }> {
  const x509 = await loadX509();
  const caKeys = await keyPair();
  const v = validity(CA_YEARS);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=vipmesh-server-ca@${Math.floor(v.notBefore.getTime() / 1000)}`,
    ...v,
    signingAlgorithm: SIGN,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return { caCertPem: `${ca.toString('pem')}\n`, caKeyPem: await pkcs8Pem(x509, caKeys.privateKey) };
}

/** The serving certificate of the API: `CN=vipmesh-server`, loopback, the host name and `sans`. */
function servingCertificate(
  ca: { caCertPem: string; caKeyPem: string },
  sans: string[],
): Promise<{ certPem: string; keyPem: string }> {
  return issueCertificate(ca, {
    cn: 'vipmesh-server',
    sans: ['localhost', '127.0.0.1', '::1', hostname(), ...sans],
  });
}

function secret(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The server's CA, serving certificate and tokens: read from `<dataDir>/server/tls/` and
 * `<dataDir>/server/{token,admin-token}` when present, made (once) otherwise. `opts.sans` adds subject
 * alternative names to a certificate made now (an existing certificate is kept as it is). With
 * `create: false` (everything but the server) nothing is made: a missing file is
 * `VIPMESH_CREDENTIALS_MISSING` naming it, since credentials made anywhere else than on the server belong
 * to no cluster and a token from them would be useless.
 */
export async function ensureServerCredentials(
  dataDir: string,
  opts: { sans?: string[]; create?: boolean } = {},
): Promise<ServerCredentials> {
  const serverDir = join(dataDir, 'server');
  const tls = join(serverDir, 'tls');
  const files = {
    caCertPem: join(tls, 'server-ca.crt'),
    caKeyPem: join(tls, 'server-ca.key'),
    certPem: join(tls, 'serving.crt'),
    keyPem: join(tls, 'serving.key'),
  };
  if (opts.create === false) {
    const needed = [...Object.values(files), join(serverDir, 'token'), join(serverDir, 'admin-token')];
    const missing = needed.find((f) => !existsSync(f));
    if (missing !== undefined) {
      throw new VipmeshError(
        'VIPMESH_CREDENTIALS_MISSING',
        `no server credentials in ${dataDir}: ${missing} does not exist (only \`vipmesh server\` creates them; give the data directory of a server that has started, with --data-dir)`,
        { details: { dataDir, path: missing } },
      );
    }
  }
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
      // A CA without a serving certificate is one a joining server was handed: keep it, issue the rest.
      const haveCa = existsSync(files.caCertPem) && existsSync(files.caKeyPem);
      const ca = haveCa
        ? { caCertPem: readFileSync(files.caCertPem, 'utf8'), caKeyPem: readFileSync(files.caKeyPem, 'utf8') }
        : await makeCa();
      pems = { ...ca, ...(await servingCertificate(ca, opts.sans ?? [])) };
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
