import { checkToken } from '../pki/index.js';

/**
 * Who a request is: the admin (the CLI, with the admin token), an agent holding the join token, or nobody.
 * Tokens are src/pki's: `K10<CA sha256>::admin:<secret>` and `K10<...>::server:<secret>`.
 */
type Principal = 'admin' | 'join';

/** Maps an `Authorization` header to a principal, or undefined when the token is missing or wrong. */
export type Authenticator = (authorization: string | undefined) => Principal | undefined;

/**
 * Bearer-token authentication: the full admin token is the admin; the full join token authenticates (so
 * the API answers 403, not 401) but is never the admin. Compared in constant time by src/pki's
 * `checkToken`, which also checks role and CA hash.
 */
export function tokenAuthenticator(tokens: { adminToken: string; joinToken?: string }): Authenticator {
  return (authorization) => {
    if (authorization === undefined) return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) return undefined;
    if (checkToken(tokens.adminToken, m[1]!, 'admin')) return 'admin';
    if (tokens.joinToken !== undefined && checkToken(tokens.joinToken, m[1]!, 'server')) return 'join';
    return undefined;
  };
}
