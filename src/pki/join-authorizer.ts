/**
 * The server's decision on an agent's tunnel connection: the join token must be the cluster's, and the
 * node name is bound to the password the node presented on its first join (k3s's node password), so a
 * second machine cannot take over a name. The tunnel asks this through its authorizer option; the types
 * here match the tunnel's shape without this module depending on the tunnel.
 */
import { type Clock, systemClock } from '../clock.js';
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
  | {
      accept: false;
      status: 400 | 401 | 403 | 429 | 500;
      reason: string;
      node?: string;
      retryAfterMs?: number;
    };

/** Options of {@link joinAuthorizer}. Defaults in brackets. */
export interface JoinAuthorizerOptions {
  /** The join token agents must present (`K10<hash>::server:<secret>`). */
  joinToken: string;
  passwords: NodePasswordStore;
  logger?: Logger;
  clock?: Clock;
  /**
   * At most this many node names seen for the first time per {@link newNodesWindowMs}; more are refused
   * with 429 until the window has room [32; 0: no limit]. Known nodes reconnect regardless.
   */
  maxNewNodes?: number;
  /** The window of {@link maxNewNodes} [60 s]. */
  newNodesWindowMs?: number;
  /**
   * At most this many nodes with a password; a new name beyond it is refused with 429 [no limit]. Needs a
   * store with `count()`.
   */
  maxNodes?: number;
}

/** How long a node refused by {@link JoinAuthorizerOptions.maxNodes} is asked to wait before trying again. */
const FULL_RETRY_MS = 60_000;

const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/i;
/** Shortest node password taken; agents make 64 hex characters. */
const MIN_PASSWORD_CHARS = 16;

/**
 * Decide on a connection attempt, in this order: 401 when the token is not the join token (compared in
 * constant time; an admin token is not a join token), 400 when the node name or password is missing or
 * malformed, 500 when the password store fails, 403 when the name is bound to another password, 429 (with
 * when to retry) when the name is new and the new-node rate or the node count is at its limit. A node seen
 * for the first time has its password recorded. Checks for one node run one at a time, so two first
 * joins under one name cannot both win.
 */
export function joinAuthorizer(o: JoinAuthorizerOptions): (attempt: JoinAttempt) => Promise<JoinVerdict> {
  const log = o.logger ?? silentLogger();
  const clock = o.clock ?? systemClock;
  const maxNew = o.maxNewNodes ?? 32;
  const windowMs = o.newNodesWindowMs ?? 60_000;
  if (o.maxNodes !== undefined && o.passwords.count === undefined) {
    throw new Error('joinAuthorizer: maxNodes needs a password store with count()');
  }
  const locks = new Map<string, Promise<unknown>>();
  /** When each first join of the current window happened (oldest first). */
  const firstJoins: number[] = [];
  /** First joins between their limit check and their password write (not yet in `count()`). */
  let joining = 0;

  /**
   * Why a new node may not join now, or undefined when it may: then it is counted in the window and holds
   * a place in `joining` that the caller gives back once its password is written.
   */
  const admitNew = async (): Promise<{ reason: string; retryAfterMs: number } | undefined> => {
    const now = clock.now();
    while (firstJoins.length > 0 && now - firstJoins[0]! >= windowMs) firstJoins.shift();
    if (maxNew > 0 && firstJoins.length >= maxNew) {
      return {
        reason: `too many new nodes: ${maxNew} joined within the last ${windowMs} ms (the limit)`,
        retryAfterMs: firstJoins[0]! + windowMs - now,
      };
    }
    // Reserve the places before asking the store, so joins running at the same time see each other (a
    // join may then count one being written twice and be refused early, never late).
    joining++;
    firstJoins.push(now);
    const unreserve = () => {
      joining--;
      const i = firstJoins.lastIndexOf(now);
      if (i >= 0) firstJoins.splice(i, 1);
    };
    if (o.maxNodes !== undefined) {
      let have: number;
      try {
        have = (await o.passwords.count!()) + joining - 1;
      } catch (err) {
        unreserve();
        throw err;
      }
      if (have >= o.maxNodes) {
        unreserve();
        return {
          reason: `the cluster has its maximum of ${o.maxNodes} nodes; delete a node to make room`,
          retryAfterMs: FULL_RETRY_MS,
        };
      }
    }
    return undefined;
  };

  /**
   * Check (or, on first join, record) `node`'s password; one check per node at a time. A refusal of a new
   * node by the limits is returned as such.
   */
  const checkPassword = (
    node: string,
    password: string,
  ): Promise<boolean | { reason: string; retryAfterMs: number }> => {
    const prev = locks.get(node) ?? Promise.resolve();
    const run = prev.then(async () => {
      const hash = await o.passwords.get(node);
      if (hash === undefined) {
        const refused = await admitNew();
        if (refused !== undefined) return refused;
        try {
          await o.passwords.set(node, hashNodePassword(password));
        } finally {
          joining--;
        }
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
    let ok: boolean | { reason: string; retryAfterMs: number };
    try {
      ok = await checkPassword(node, password);
    } catch (err) {
      log.error({ err, node }, 'node password store failed');
      return { accept: false, status: 500, reason: 'node password store failed', node };
    }
    if (typeof ok === 'object') {
      const reason = `node ${node} cannot join now: ${ok.reason}`;
      log.warn({ node }, reason);
      return { accept: false, status: 429, reason, node, retryAfterMs: ok.retryAfterMs };
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
