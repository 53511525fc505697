import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import t from 'tap';
import { VipmeshError } from '../errors.js';
import { silentLogger } from '../log.js';
import { tempDir } from '../testing/tmp.js';
import type { Connector } from '../tunnel/index.js';
import { Agent, type AgentAnnouncer, localRegistration } from './agent.js';

/** An announcer that holds nothing: these tests never get a session. */
class IdleAnnouncer extends EventEmitter implements AgentAnnouncer {
  readonly vips: string[] = [];
  async hold() {
    return { held: true };
  }
  async release() {
    return true;
  }
  async probe() {
    return { answered: false };
  }
  async close() {}
}

function agent(token: string, connector?: Connector, logger = silentLogger()): Agent {
  return new Agent({
    servers: ['https://a:6443'],
    token,
    nodeName: 'pi1',
    dataDir: tempDir('vipmesh-agent-'),
    registration: {},
    announcer: new IdleAnnouncer(),
    logger,
    ...(connector === undefined ? {} : { tunnel: { connector } }),
  });
}

t.test('a token not of the K10 form is refused up front', async (t) => {
  t.throws(() => agent('nope'), { code: 'VIPMESH_TUNNEL_BAD_TOKEN' });
  t.throws(() => agent(`K10${'a'.repeat(63)}::server:abcdef0123456789`), {
    code: 'VIPMESH_TUNNEL_BAD_TOKEN',
  });
});

t.test("the tunnel pins the token's CA hash and presents the token as it is", async (t) => {
  const caHash = 'b'.repeat(64);
  const token = `K10${caHash}::server:abcdef0123456789`;
  const pinned: string[] = [];
  const sent: string[] = [];
  const a = agent(token, {
    fetchCA: async (_url, hash) => {
      pinned.push(hash);
      return 'a PEM';
    },
    open: async (_url, o) => {
      sent.push(o.headers['authorization'] ?? '');
      throw new VipmeshError('VIPMESH_TUNNEL_UNAUTHORIZED', 'refused');
    },
  });
  t.teardown(() => a.close());
  await t.rejects(a.start(), { code: 'VIPMESH_TUNNEL_UNAUTHORIZED' });
  t.same(pinned, [caHash]);
  t.same(sent, [`Bearer ${token}`]);
});

t.test('localRegistration: the node IPs given, labels with the hostname label, interfaces', async (t) => {
  const r = localRegistration({ nodeName: 'pi1', nodeIps: ['198.51.100.7'], labels: { zone: 'a' } });
  t.same(
    r.addresses?.filter((a) => a.type === 'InternalIP'),
    [{ type: 'InternalIP', address: '198.51.100.7' }],
  );
  t.equal(r.labels?.['kubernetes.io/hostname'], 'pi1');
  t.equal(r.labels?.['zone'], 'a');
  t.ok(Array.isArray(r.interfaces));
  const auto = localRegistration({ nodeName: 'pi1' });
  t.ok(
    (auto.addresses ?? []).some((a) => a.type === 'InternalIP'),
    'an address is found without --node-ip',
  );
});

t.test('a clean stop logs what happens once, not "lost the server"', async (t) => {
  const lines: Array<{ msg: string; level: number }> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const a = agent(`K10${'b'.repeat(64)}::server:abcdef0123456789`, undefined, logger);
  await Promise.all([a.close(), a.close()]);
  // The tunnel reports the session it ends on close as a disconnect.
  a.client.emit('disconnected', { reason: 'agent shutting down' });
  t.same(
    lines.filter((l) => /lost the server/.test(l.msg)),
    [],
    'no warning that the server was lost',
  );
  t.equal(lines.filter((l) => /^stopping/.test(l.msg)).length, 1, 'one line saying it is stopping');
});
