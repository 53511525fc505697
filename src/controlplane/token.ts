import { createHash, timingSafeEqual } from 'node:crypto';
import { VipmeshError } from '../errors.js';

/**
 * A token as `vipmesh token` prints it: `K10<sha256 of the CA, hex>::<user>:<secret>` (k3s' form; `user` is
 * `server` for the join token, `admin` for the admin token). A bare secret (no `K10`) is accepted too, but
 * then the client cannot pin the CA.
 */
export interface ParsedToken {
  /** Lowercase hex sha256 of the server's CA certificate (PEM bytes as /cacerts serves them). */
  caHash?: string;
  user?: string;
  secret: string;
}

const FULL = /^K10([0-9a-fA-F]{64})::([^:\s]+):(\S+)$/;

/** Parse a token; `VIPMESH_API_TOKEN_INVALID` when it is neither the full form nor a bare secret. */
export function parseToken(text: string): ParsedToken {
  const t = text.trim();
  const m = FULL.exec(t);
  if (m !== null) return { caHash: m[1]!.toLowerCase(), user: m[2]!, secret: m[3]! };
  if (t.startsWith('K10') || t === '' || /[\s:]/.test(t)) {
    throw new VipmeshError(
      'VIPMESH_API_TOKEN_INVALID',
      'the token is not of the form K10<ca-sha256>::<user>:<secret>',
    );
  }
  return { secret: t };
}

/** Format a token: `K10<caHash>::<user>:<secret>`. */
export function formatToken(caHash: string, user: string, secret: string): string {
  return `K10${caHash}::${user}:${secret}`;
}

/** The sha256 (hex) the token pins: of the CA certificate PEM exactly as served at /cacerts. */
export function caHashOf(caCertPem: string | Buffer): string {
  return createHash('sha256').update(caCertPem).digest('hex');
}

/** Who a request is: the admin (CLI), an agent holding the join token, or nobody. */
export type Principal = 'admin' | 'join';

/** Maps an `Authorization` header to a principal, or undefined when the token is missing or wrong. */
export type Authenticator = (authorization: string | undefined) => Principal | undefined;

function same(a: string, b: string): boolean {
  // Compare digests so neither the length nor the content leaks through timing.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * Bearer-token authentication with the admin secret (and, when given, the join secret, which authenticates
 * but is not authorized on the admin API: 403). The bearer may be the full token or the bare secret; in
 * the full form the user must match (`admin` for the admin secret, `server`/`node` for the join secret).
 */
export function tokenAuthenticator(secrets: { adminSecret: string; joinSecret?: string }): Authenticator {
  return (authorization) => {
    if (authorization === undefined) return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) return undefined;
    let tok: ParsedToken;
    try {
      tok = parseToken(m[1]!);
    } catch {
      return undefined;
    }
    if (same(tok.secret, secrets.adminSecret) && (tok.user === undefined || tok.user === 'admin'))
      return 'admin';
    if (
      secrets.joinSecret !== undefined &&
      same(tok.secret, secrets.joinSecret) &&
      (tok.user === undefined || tok.user === 'server' || tok.user === 'node')
    ) {
      return 'join';
    }
    return undefined;
  };
}
