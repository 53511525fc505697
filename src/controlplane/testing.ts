/**
 * Test helpers for the control plane and the controllers built on it: a real etcd on free loopback ports
 * and a throwaway CA + serving certificate. Not used by the daemon.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on 127.0.0.1 (the kernel's pick; closed again before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A running etcd. */
export interface TestEtcd {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * Start the Debian `etcd` binary on free loopback ports with a temporary data dir; resolves when it serves.
 * `stop()` kills it and removes the data dir.
 */
export async function startEtcd(binary = 'etcd'): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const c = `http://127.0.0.1:${client}`;
  const p = `http://127.0.0.1:${peer}`;
  const child: ChildProcess = spawn(
    binary,
    [
      '--name=test',
      `--data-dir=${dir}`,
      `--listen-client-urls=${c}`,
      `--advertise-client-urls=${c}`,
      `--listen-peer-urls=${p}`,
      `--initial-advertise-peer-urls=${p}`,
      `--initial-cluster=test=${p}`,
      '--log-level=error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`etcd exited (${child.exitCode}): ${stderr}`);
    }
    try {
      const res = await fetch(`${c}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not become healthy: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { endpoint: c, stop };
}

/** A test CA and a serving certificate for localhost / 127.0.0.1 (ECDSA P-256). */
export interface TestTls {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

function pem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

type X509 = typeof import('@peculiar/x509');
type KeyPair = Parameters<X509['X509CertificateGenerator']['createSelfSigned']>[0]['keys'];

/**
 * @peculiar/x509 loads tsyringe, which refuses to load without a `Reflect.getMetadata` polyfill
 * (reflect-metadata is not a dependency). The library only stores and reads constructor parameter types,
 * so a minimal map-backed polyfill is enough for the test certificates.
 */
function ensureReflectMetadata(): void {
  const R = Reflect as unknown as Record<string, unknown>;
  if (typeof R['getMetadata'] === 'function') return;
  const maps = new WeakMap<object, Map<unknown, Map<unknown, unknown>>>();
  const bucket = (target: object, prop: unknown, create: boolean) => {
    let byProp = maps.get(target);
    if (byProp === undefined && create) maps.set(target, (byProp = new Map()));
    let m = byProp?.get(prop);
    if (m === undefined && create && byProp !== undefined) byProp.set(prop, (m = new Map()));
    return m;
  };
  const define = (key: unknown, value: unknown, target: object, prop?: unknown) => {
    bucket(target, prop, true)!.set(key, value);
  };
  const get = (key: unknown, target: object, prop?: unknown): unknown => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const m = bucket(t, prop, false);
      if (m?.has(key)) return m.get(key);
    }
    return undefined;
  };
  R['defineMetadata'] = define;
  R['getMetadata'] = get;
  R['getOwnMetadata'] = (key: unknown, target: object, prop?: unknown) =>
    bucket(target, prop, false)?.get(key);
  R['hasMetadata'] = (key: unknown, target: object, prop?: unknown) => get(key, target, prop) !== undefined;
  R['metadata'] = (key: unknown, value: unknown) => (target: object, prop?: unknown) =>
    define(key, value, target, prop);
}

/** Make a throwaway CA and a server certificate it signed. */
export async function testTls(): Promise<TestTls> {
  ensureReflectMetadata();
  const x509: X509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 24 * 3600_000);
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as unknown as KeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=vipmesh-test-ca',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as unknown as KeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=vipmesh-test-server',
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingKey: caKeys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey);
  return { caCertPem: ca.toString('pem'), certPem: cert.toString('pem'), keyPem: pem(der, 'PRIVATE KEY') };
}
