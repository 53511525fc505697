/**
 * Joining a server to a cluster whose servers run embedded etcd members: the route a running server
 * answers (`POST /v1/etcd/join`, the cluster's join token only) and the request a joining server sends.
 *
 * The joiner receives the cluster CA (certificate and key) and issues its own member certificate: a
 * server holds the CA key anyway (it reads the cluster's credentials, CA key included, from the datastore
 * as soon as its member runs), so certificates issued by the first server would not hold back anything,
 * and a joiner that issues its own can re-issue them when its address changes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:https';
import type { Etcd3 } from 'etcd3';
import { errnoOf, VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { checkToken, fetchAndPinCA, parseToken } from '../pki/index.js';

/** The path of the join route. */
export const JOIN_PATH = '/v1/etcd/join';

/** What a joining server sends. */
export interface JoinRequest {
  /** Its member (and node) name. */
  name: string;
  /** Its peer URL, `https://<node ip>:2380`. */
  peerUrl: string;
}

/** What it receives. */
export interface JoinAnswer {
  /** etcd's `--initial-cluster` with the joiner in it. */
  initialCluster: string;
  caCertPem: string;
  caKeyPem: string;
}

const NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const PEER_RE = /^https:\/\/(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}$/;

/** The request body checked field by field; `VIPMESH_ETCD_JOIN` naming the field otherwise. */
export function parseJoinRequest(body: unknown): JoinRequest {
  const b = body as Partial<JoinRequest> | null;
  if (typeof b?.name !== 'string' || !NAME_RE.test(b.name)) {
    throw new VipmeshError('VIPMESH_ETCD_JOIN', 'join request: name must be a lowercase DNS name');
  }
  if (typeof b.peerUrl !== 'string' || !PEER_RE.test(b.peerUrl)) {
    throw new VipmeshError('VIPMESH_ETCD_JOIN', 'join request: peerUrl must be https://<ip>:<port>');
  }
  return { name: b.name, peerUrl: b.peerUrl };
}

/** The `--initial-cluster` of `members`, naming the one with `peerUrl` `name` (a new member has no name yet). */
export function initialClusterOf(
  members: Array<{ name?: string; peerURLs?: string[] }>,
  joiner: JoinRequest,
): string {
  return members
    .map((m) => {
      const urls = m.peerURLs ?? [];
      const name = urls.includes(joiner.peerUrl) ? joiner.name : m.name;
      return urls.map((u) => `${name}=${u}`).join(',');
    })
    .filter(Boolean)
    .join(',');
}

/** Add `joiner` as a member (once: a retry of the same peer URL is not added again). */
export async function addMember(etcd: Etcd3, joiner: JoinRequest): Promise<string> {
  const list = await etcd.cluster.memberList({});
  let members = list.members;
  const same = members.find((m) => m.peerURLs.includes(joiner.peerUrl));
  if (same !== undefined && same.name !== '' && same.name !== joiner.name) {
    throw new VipmeshError(
      'VIPMESH_ETCD_JOIN',
      `join request: ${joiner.peerUrl} is already the peer URL of member ${same.name}`,
    );
  }
  const clash = members.find((m) => m.name === joiner.name && !m.peerURLs.includes(joiner.peerUrl));
  if (clash !== undefined) {
    throw new VipmeshError(
      'VIPMESH_ETCD_JOIN',
      `join request: a member named ${joiner.name} already exists at ${clash.peerURLs.join(',')} (remove it first: vipmesh etcd member remove ${joiner.name})`,
    );
  }
  if (same === undefined) {
    members = (await etcd.cluster.memberAdd({ peerURLs: [joiner.peerUrl] })).members;
  }
  return initialClusterOf(members, joiner);
}

/**
 * The join route: `POST /v1/etcd/join` with the cluster's join token (an admin token is refused: it is
 * not what servers join with). Answers the initial cluster and the CA. Returns false for other paths.
 */
export function joinRoute(deps: {
  joinToken: string;
  ca: { caCertPem: string; caKeyPem: string };
  etcd: Etcd3;
  logger: Logger;
}): (req: IncomingMessage, res: ServerResponse) => boolean {
  const reply = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  };
  return (req, res) => {
    if (req.url !== JOIN_PATH) return false;
    if (req.method !== 'POST') {
      reply(res, 405, { message: `${JOIN_PATH} takes POST` });
      return true;
    }
    const auth = req.headers.authorization ?? '';
    const presented = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (!checkToken(deps.joinToken, presented, 'server')) {
      reply(res, 401, { message: 'a server joins with the cluster join token (<data-dir>/server/token)' });
      return true;
    }
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      text += c;
      if (text.length > 4096) req.destroy();
    });
    req.on('end', () => {
      void (async () => {
        try {
          const joiner = parseJoinRequest(JSON.parse(text));
          const initialCluster = await addMember(deps.etcd, joiner);
          deps.logger.info({ member: joiner.name, peerUrl: joiner.peerUrl }, 'etcd member added');
          reply(res, 200, { initialCluster, ...deps.ca } satisfies JoinAnswer);
        } catch (err) {
          const e = err as Error & { code?: string };
          const bad = e instanceof SyntaxError || e.code === 'VIPMESH_ETCD_JOIN';
          deps.logger.warn({ err: e.message }, 'join request refused');
          reply(res, bad ? 400 : 503, { message: e.message });
        }
      })();
    });
    return true;
  };
}

/**
 * Ask the server at `serverUrl` to add this server as a member: the CA is pinned by the token's hash
 * first. Errors are `VIPMESH_ETCD_JOIN` with the server's reason.
 */
export async function requestJoin(
  serverUrl: string,
  token: string,
  joiner: JoinRequest,
): Promise<JoinAnswer> {
  const { caHash, role } = parseToken(token);
  if (role !== 'server') {
    throw new VipmeshError(
      'VIPMESH_ETCD_JOIN',
      '--token: a server joins with the join token, not the admin token',
    );
  }
  const ca = await fetchAndPinCA(serverUrl, caHash);
  const url = new URL(JOIN_PATH, serverUrl);
  const body = JSON.stringify(joiner);
  return new Promise((resolve, reject) => {
    let status: number | undefined;
    const fail = (msg: string, cause?: unknown) =>
      reject(
        new VipmeshError('VIPMESH_ETCD_JOIN', `cannot join through ${serverUrl}: ${msg}`, {
          cause,
          details: { url: url.href, errno: errnoOf(cause), status },
        }),
      );
    const req = request(
      url,
      {
        method: 'POST',
        ca,
        // The CA is pinned by the token's hash: the server's name need not be in its certificate.
        checkServerIdentity: () => undefined,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        timeout: 30_000,
      },
      (res) => {
        status = res.statusCode;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (text.length < 1 << 20) text += c;
        });
        res.on('end', () => {
          let parsed: Partial<JoinAnswer> & { message?: string };
          try {
            parsed = JSON.parse(text) as typeof parsed;
          } catch (err) {
            fail(`HTTP ${res.statusCode}, not JSON`, err);
            return;
          }
          if (res.statusCode !== 200) {
            fail(`HTTP ${res.statusCode}: ${parsed.message ?? ''}`);
          } else if (
            typeof parsed.initialCluster !== 'string' ||
            typeof parsed.caCertPem !== 'string' ||
            typeof parsed.caKeyPem !== 'string'
          ) {
            fail('the answer lacks initialCluster, caCertPem or caKeyPem');
          } else {
            resolve(parsed as JoinAnswer);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) => fail(err.message, err));
    req.end(body);
  });
}

/**
 * {@link requestJoin} until it succeeds, for up to `timeoutMs`: the server answers 503 while etcd refuses a
 * new member (a member added less than 5 s ago is not counted healthy yet: etcd's strict reconfiguration
 * check), and may not be up yet. A refusal for cause (401, 400) is final at once.
 */
export async function joinWithRetry(
  serverUrl: string,
  token: string,
  joiner: JoinRequest,
  o: { timeoutMs: number; sleep: (ms: number) => Promise<void>; now: () => number; logger: Logger },
): Promise<JoinAnswer> {
  const deadline = o.now() + o.timeoutMs;
  for (;;) {
    try {
      return await requestJoin(serverUrl, token, joiner);
    } catch (err) {
      const e = err as VipmeshError;
      const status = e.details?.['status'];
      const unreachable = e.code === 'VIPMESH_TUNNEL_CA_FETCH' || e.details?.['errno'] !== undefined;
      if (!(status === 503 || unreachable) || o.now() >= deadline) throw err;
      o.logger.info({ err: e.message }, 'cannot join yet; trying again in 1 s');
      await o.sleep(1000);
    }
  }
}
