/**
 * The server's decision on an agent's tunnel connection: the join token must be the cluster's, and the
 * node name is bound to the password the node presented on its first join (k3s's node password), so a
 * second machine cannot take over a name. The tunnel asks this through its authorizer option; the types
 * here match the tunnel's shape without this module depending on the tunnel.
 */
import { type Logger, silentLogger } from '../log.js';
import { hashNodePassword, type NodePasswordStore, verifyNodePassword } from './node-passwords.js';
import { checkToken } from './token.js';

/** What an agent presents when it connects. */
interface JoinAttempt {
  /** The bearer token of the request (`''` when it has none). */
  token: string;
  /** The node name the agent claims (`''` when absent). */
  node: string;
  /** The node password (`''` when absent). */
  password: string;
}

/** The answer: the node's identity when accepted, else an HTTP status and a reason (no secret in it). */
type JoinVerdict =
  | { accept: true; node: string }
  | { accept: false; status: 400 | 401 | 403 | 500; reason: string; node?: string };

/** Options of {@link joinAuthorizer}. */
interface JoinAuthorizerOptions {
  /** The join token agents must present (`K10<hash>::server:<secret>`). */
  joinToken: string;
  passwords: NodePasswordStore;
  logger?: Logger;
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/i;
/** Shortest node password taken; agents make 64 hex characters. */
const MIN_PASSWORD_CHARS = 16;

/**
 * Decide on a connection attempt, in this order: 401 when the token is not the join token (compared in
 * constant time; an admin token is not a join token), 400 when the node name or password is missing or
 * malformed, 500 when the password store fails, 403 when the name is bound to another password. A node
 * seen for the first time has its password recorded. Checks for one node run one at a time, so two first
 * joins under one name cannot both win.
 */
export function joinAuthorizer(o: JoinAuthorizerOptions): (attempt: JoinAttempt) => Promise<JoinVerdict> {
  const log = o.logger ?? silentLogger();
  const locks = new Map<string, Promise<unknown>>();

  /** Check (or, on first join, record) `node`'s password; one check per node at a time. */
  const checkPassword = (node: string, password: string): Promise<boolean> => {
    const prev = locks.get(node) ?? Promise.resolve();
    const run = prev.then(async () => {
      const hash = await o.passwords.get(node);
      if (hash === undefined) {
        await o.passwords.set(node, hashNodePassword(password));
        log.info({ node }, 'node joined for the first time');
        return true;
      }
      return verifyNodePassword(password, hash);
    });
    const tail = run.catch(() => {});
    locks.set(node, tail);
    void tail.then(() => {
      if (locks.get(node) === tail) locks.delete(node);
    });
    return run;
  };

  return async ({ token, node, password }) => {
    if (!checkToken(o.joinToken, token, 'server')) {
      return { accept: false, status: 401, reason: 'invalid join token' };
    }
    if (!NODE_NAME.test(node) || password.length < MIN_PASSWORD_CHARS) {
      return { accept: false, status: 400, reason: 'missing or invalid node name or node password' };
    }
    let ok: boolean;
    try {
      ok = await checkPassword(node, password);
    } catch (err) {
      log.error({ err, node }, 'node password store failed');
      return { accept: false, status: 500, reason: 'node password store failed', node };
    }
    if (!ok) {
      return {
        accept: false,
        status: 403,
        reason: `node ${node} is already registered with another password`,
        node,
      };
    }
    return { accept: true, node };
  };
}
