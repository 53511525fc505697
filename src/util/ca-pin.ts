/**
 * Pinning a server's CA by hash: a client holding only the sha256 of the CA PEM (the hash a `K10...` token
 * carries) fetches the PEM from the server's unauthenticated `/cacerts` and trusts it only when the hash
 * matches. Shared by the agent's tunnel client and the API client; the tokens themselves are src/pki's.
 */
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { errnoOf, VipmeshError } from '../errors.js';

/** sha256 hex of `pem` (the CA hash of tokens). */
export function caHashOf(pem: string): string {
  return createHash('sha256').update(pem).digest('hex');
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
