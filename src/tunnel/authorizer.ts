/**
 * How the tunnel server decides whether to take an agent's connection. The tunnel reads the credentials
 * off the upgrade request (its wire format) and hands them to a {@link ConnectAuthorizer}; what makes them
 * valid (tokens, node passwords) is the caller's business, so the tunnel holds no keys or secrets itself.
 */

/** What an agent presents on `/v1/connect`. */
interface ConnectCredentials {
  /** The token of `Authorization: Bearer <token>` (`''` when there is none). */
  token: string;
  /** The node name header (`''` when absent). */
  node: string;
  /** The node password header (`''` when absent). */
  password: string;
  /** The peer address, for the caller's logs. */
  remote: string | undefined;
}

/**
 * The decision: accept with the node's identity (the name its session is kept under), or refuse with the
 * HTTP status the agent gets (the agent gives up on 401 and 403, and retries after others) and a reason
 * that is logged and sent in the body, so it must not hold a secret. `node`, when known, is logged with a
 * refusal. A 429 (too many new nodes) may say when to retry (`retryAfterMs`, sent as `Retry-After`).
 */
export type ConnectVerdict =
  | { accept: true; node: string }
  | {
      accept: false;
      status: 400 | 401 | 403 | 429 | 500;
      reason: string;
      node?: string;
      retryAfterMs?: number;
    };

/** Decides on one connection attempt; a rejected promise is answered 500. */
export type ConnectAuthorizer = (credentials: ConnectCredentials) => Promise<ConnectVerdict>;

/**
 * A claim on a node's session across every server of a cluster: granted (with the `release` to call when
 * the session ends, once), or refused because another server holds a live session for the node.
 */
export type ClaimVerdict =
  | { ok: true; release: () => void }
  | { ok: false; holder: string; retryAfterMs: number };

/**
 * Makes a node's live session cluster-wide: the tunnel server claims the node before it takes a session
 * (after its own check for a live session here), so a second server refuses a node another server holds.
 * A rejected promise is answered 500.
 */
export interface SessionClaims {
  claim(node: string): Promise<ClaimVerdict>;
}
