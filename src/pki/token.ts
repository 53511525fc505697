/**
 * The server's tokens, in k3s's format: the join token `K10<sha256 of the CA PEM>::server:<secret>` that
 * agents join with (its hash lets them pin the CA), and the admin token `K10<hash>::admin:<secret>` for
 * the API.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { VipmeshError } from '../errors.js';

/** A parsed token. */
export interface ParsedToken {
  caHash: string;
  role: 'server' | 'admin';
  secret: string;
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
