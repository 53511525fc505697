import t from 'tap';
import { isVipmeshError } from '../errors.js';
import { lbService } from '../testing/lb-services.js';
import { render, targetPortOf } from './render.js';
import type { Endpoint, Service } from './types.js';

const V4 = '198.51.100.10';
const V6 = '2001:db8::10';
const ep = (ip: string, extra: Partial<Endpoint> = {}): Endpoint => ({
  ip,
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  ready: true,
  ...extra,
});

interface Case {
  name: string;
  services: Service[];
  unhealthy?: string[];
  local?: string[];
  /** Map elements wanted (`vip . proto . port` → chain name prefix match not needed: only keys). */
  elements?: string[];
  /** Substrings each expected somewhere in the chains' rules. */
  rules?: string[];
  /** Substrings that must not appear in any rule. */
  notRules?: string[];
  sets?: number;
  errCode?: string;
  errField?: string;
}

const cases: Case[] = [
  {
    name: 'three endpoints, random, Cluster: numgen over all three, masquerade mark',
    services: [lbService('web', [V4], ['198.18.1.2', '198.18.1.3', '198.18.1.4'])],
    elements: [`${V4} . tcp . 80`],
    rules: [
      'meta mark set meta mark | 0x00004000',
      'meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 198.18.1.2 . 8080, 1 : 198.18.1.3 . 8080, 2 : 198.18.1.4 . 8080 }',
    ],
  },
  {
    name: 'hash: jhash of the client side of the flow',
    services: [lbService('web', [V4], ['198.18.1.2', '198.18.1.3'], { algorithm: 'hash' })],
    rules: ['dnat ip to jhash ip saddr . th sport mod 2 map'],
  },
  {
    name: 'one endpoint: a plain dnat',
    services: [lbService('web', [V4], ['198.18.1.2'])],
    rules: ['meta l4proto tcp dnat ip to 198.18.1.2:8080'],
  },
  {
    name: 'unhealthy and not-ready endpoints are out of the spread',
    services: [
      lbService('web', [V4], [], {
        endpoints: [ep('198.18.1.2'), ep('198.18.1.3', { ready: false }), ep('198.18.1.4')],
      }),
    ],
    unhealthy: ['default/web/198.18.1.4'],
    rules: ['dnat ip to 198.18.1.2:8080'],
    notRules: ['198.18.1.3', '198.18.1.4'],
  },
  {
    name: 'every endpoint unhealthy: no element (the holder refuses the connection)',
    services: [lbService('web', [V4], ['198.18.1.2'])],
    unhealthy: ['default/web/198.18.1.2'],
    elements: [],
  },
  {
    name: 'no endpoints: the holder itself on targetPort',
    services: [lbService('web', [V4, V6], [])],
    elements: [`${V4} . tcp . 80`, `${V6} . tcp . 80`],
    rules: ['meta l4proto tcp redirect to :8080'],
    notRules: ['mark'],
  },
  {
    name: 'no endpoints and a named targetPort: nothing to redirect to',
    services: [lbService('web', [V4], [], { ports: [{ protocol: 'TCP', port: 80, targetPort: 'http' }] })],
    elements: [],
  },
  {
    name: 'Local: only this node’s endpoints, no masquerade',
    services: [
      lbService('web', [V4], [], {
        externalTrafficPolicy: 'Local',
        endpoints: [ep('198.18.1.2', { nodeName: 'n1' }), ep('198.18.2.2', { nodeName: 'n2' })],
      }),
    ],
    local: ['198.18.1.2'],
    rules: ['dnat ip to 198.18.1.2:8080'],
    notRules: ['198.18.2.2', 'mark'],
  },
  {
    name: 'Local with no endpoint here: no element',
    services: [lbService('web', [V4], ['198.18.2.2'], { externalTrafficPolicy: 'Local' })],
    elements: [],
  },
  {
    name: 'IPv6: a v6 VIP spreads over the v6 endpoints only',
    services: [lbService('web', [V4, V6], ['198.18.1.2', '2001:db8::5', '2001:db8::6'])],
    elements: [`${V4} . tcp . 80`, `${V6} . tcp . 80`],
    rules: [
      'dnat ip to 198.18.1.2:8080',
      'dnat ip6 to numgen random mod 2 map { 0 : 2001:db8::5 . 8080, 1 : 2001:db8::6 . 8080 }',
    ],
  },
  {
    name: 'named targetPort: resolved per endpoint, an endpoint without it skipped',
    services: [
      lbService('dns', [V4], [], {
        ports: [
          { name: 'dns-udp', protocol: 'UDP', port: 53, targetPort: 'dns' },
          { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 'dns' },
        ],
        endpoints: [
          ep('198.18.1.2', {
            ports: [
              { name: 'dns', port: 5353, protocol: 'UDP' },
              { name: 'dns', port: 5354, protocol: 'TCP' },
            ],
          }),
          ep('198.18.1.3', { ports: [{ name: 'other', port: 9, protocol: 'UDP' }] }),
        ],
      }),
    ],
    elements: [`${V4} . udp . 53`, `${V4} . tcp . 53`],
    rules: ['meta l4proto udp dnat ip to 198.18.1.2:5353', 'meta l4proto tcp dnat ip to 198.18.1.2:5354'],
    notRules: ['198.18.1.3'],
  },
  {
    name: 'ClientIP affinity: a timed dynamic set per endpoint, checked before the spread',
    services: [
      lbService('web', [V4], ['198.18.1.2', '198.18.1.3'], {
        sessionAffinity: 'ClientIP',
        affinityTimeoutSeconds: 600,
      }),
    ],
    sets: 2,
    rules: [
      'update @a_default_web_',
      'ip saddr @a_default_web_',
      'numgen random mod 2 vmap { 0 : goto e_default_web_',
      'dnat ip to 198.18.1.3:8080',
    ],
  },
  {
    name: 'a bad VIP names the Service and the field',
    services: [lbService('web', ['198.51.100.300'], ['198.18.1.2'])],
    errCode: 'VIPMESH_LB_INVALID_SERVICE',
    errField: 'vips[0]',
  },
  {
    name: 'a port out of range',
    services: [lbService('web', [V4], [], { ports: [{ protocol: 'TCP', port: 70_000, targetPort: 80 }] })],
    errCode: 'VIPMESH_LB_INVALID_SERVICE',
    errField: 'ports[0].port',
  },
  {
    name: 'an unknown protocol',
    services: [
      lbService('web', [V4], [], { ports: [{ protocol: 'SCTP' as 'TCP', port: 80, targetPort: 80 }] }),
    ],
    errField: 'ports[0].protocol',
  },
  {
    name: 'a bad endpoint address',
    services: [lbService('web', [V4], ['nope'])],
    errField: 'endpoints[0].ip',
  },
  {
    name: 'an affinity timeout beyond a day',
    services: [lbService('web', [V4], [], { sessionAffinity: 'ClientIP', affinityTimeoutSeconds: 90_000 })],
    errField: 'affinityTimeoutSeconds',
  },
  {
    name: 'an HTTP check without a path',
    services: [
      lbService('web', [V4], [], {
        healthCheck: { ...lbService('x', [], []).healthCheck, type: 'http', path: 'x' },
      }),
    ],
    errField: 'healthCheck.path',
  },
  {
    name: 'two Services on one VIP:port: the second is refused, the first served',
    services: [lbService('a', [V4], ['198.18.1.2']), lbService('b', [V4], ['198.18.1.3'])],
    elements: [`${V4} . tcp . 80`],
    rules: ['198.18.1.2'],
    notRules: ['198.18.1.3'],
    errCode: 'VIPMESH_LB_PORT_CONFLICT',
    errField: 'ports[0]',
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { ruleset, errors } = render({
      services: c.services,
      unhealthy: new Set(c.unhealthy ?? []),
      isLocal: (e) => (c.local ?? []).includes(e.ip),
    });
    const rules = [...ruleset.chains.values()].flatMap((ch) => ch.rules);
    if (c.errField !== undefined) {
      t.equal(errors.length, 1, 'one error');
      t.ok(isVipmeshError(errors[0], c.errCode ?? 'VIPMESH_LB_INVALID_SERVICE'), String(errors[0]));
      t.equal(errors[0]?.details['field'], c.errField);
      t.match(errors[0]?.message, /Service default\/\w+:/);
    } else t.same(errors, []);
    if (c.elements !== undefined) {
      t.same([...ruleset.elements[4].keys(), ...ruleset.elements[6].keys()].sort(), [...c.elements].sort());
    }
    for (const want of c.rules ?? [])
      t.ok(
        rules.some((r) => r.includes(want)),
        `a rule has ${want}`,
      );
    for (const not of c.notRules ?? [])
      t.notOk(
        rules.some((r) => r.includes(not)),
        `no rule has ${not}`,
      );
    if (c.sets !== undefined) t.equal(ruleset.sets.size, c.sets);
    for (const [, chain] of [...ruleset.elements[4], ...ruleset.elements[6]])
      t.ok(ruleset.chains.has(chain), `${chain} exists`);
  });
}

t.test(
  'targetPortOf: a number as is; a name through the endpoint, then through the Service port name',
  async (t) => {
    const e = ep('198.18.1.2', {
      ports: [
        { name: 'web', port: 8081, protocol: 'TCP' },
        { name: 'http', port: 8082, protocol: 'TCP' },
      ],
    });
    t.equal(targetPortOf({ protocol: 'TCP', port: 80, targetPort: 9000 }, e), 9000);
    t.equal(targetPortOf({ protocol: 'TCP', port: 80, targetPort: 'web' }, e), 8081);
    t.equal(targetPortOf({ name: 'http', protocol: 'TCP', port: 80, targetPort: 'gone' }, e), 8082);
    t.equal(targetPortOf({ protocol: 'UDP', port: 80, targetPort: 'web' }, e), undefined);
  },
);

t.test('names stay unique when sanitising would merge two Services', async (t) => {
  const { ruleset } = render({
    services: [lbService('a-b', [V4], ['198.18.1.2']), lbService('a.b', ['198.51.100.11'], ['198.18.1.2'])],
  });
  t.equal(ruleset.chains.size, 2);
});
