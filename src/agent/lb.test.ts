import t from 'tap';
import type { HealthReport } from '../api/agent-protocol.js';
import type { ApplyResult, Probe, Ruleset, StaleFlow } from '../lb/index.js';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { lbService, manyServices, TCP_CHECK } from '../testing/lb-services.js';
import { until } from '../testing/until.js';
import { AgentLb, MAX_REPORT_BYTES, REPORT_RETRY_MS } from './lb.js';

/** Endpoints listed in `down` fail their check; the rest pass. */
function setup(opts: { failReport?: boolean } = {}) {
  const down = new Set<string>();
  const probe: Probe = async (tgt) => {
    if (down.has(tgt.ip)) throw new Error('connect ECONNREFUSED');
  };
  const applied: Ruleset[] = [];
  let removed = 0;
  const table = {
    apply: async (rs: Ruleset): Promise<ApplyResult> => {
      applied.push(rs);
      return { mode: applied.length === 1 ? 'full' : 'diff', errors: [], nftMs: 1 };
    },
    start: () => undefined,
    remove: async () => {
      removed++;
    },
  };
  const reports: HealthReport[] = [];
  let failing = opts.failReport ?? false;
  let servingChanges = 0;
  const forgotten: StaleFlow[] = [];
  const registry = createRegistry();
  const clock = new FakeClock();
  const lb = new AgentLb({
    nodeName: 'n1',
    nodeIps: ['198.51.100.2'],
    table,
    conntrack: { forget: async (f) => forgotten.push(...f) },
    probe,
    report: async (r) => {
      if (failing) throw new Error('no handler');
      reports.push(r);
    },
    servingChanged: () => servingChanges++,
    clock,
    logger: silentLogger(),
    registry,
  });
  return {
    lb,
    /** Push `services` and hold their VIPs, as on the node that holds them. */
    serve: (services: Parameters<AgentLb['setServices']>[0]) => {
      lb.setHeld(services.flatMap((x) => x.vips));
      lb.setServices(services);
    },
    down,
    applied,
    reports,
    forgotten,
    registry,
    clock,
    removed: () => removed,
    servingChanges: () => servingChanges,
    setFailing: (f: boolean) => {
      failing = f;
    },
  };
}

const VIP = '198.51.100.10';

t.test(
  'a dead endpoint leaves the table and the report; a Service with none healthy closes the gate',
  async (t) => {
    const s = setup();
    t.equal(s.lb.allows(VIP), true, 'no Service yet: announced');
    s.serve([
      lbService('web', [VIP], ['198.18.1.2', '198.18.1.3'], { healthCheck: { ...TCP_CHECK, fall: 1 } }),
    ]);
    await s.lb.idle();
    t.equal(s.lb.allows(VIP), true);
    t.equal(s.lb.allows('198.51.100.99'), true, 'a VIP no Service is on');
    await until('the first report', () => s.reports.length > 0);
    s.down.add('198.18.1.3');
    s.clock.advance(TCP_CHECK.intervalMs);
    await until('198.18.1.3 out', () => s.lb.report.services[0]?.endpoints.some((e) => !e.healthy));
    await s.lb.idle();
    const rules = [...s.applied.at(-1)!.chains.values()].flatMap((c) => c.rules).join('\n');
    t.notMatch(rules, /198\.18\.1\.3/);
    t.match(rules, /198\.18\.1\.2:8080/);
    t.same(
      s.lb.report.services[0]?.endpoints.find((e) => e.ip === '198.18.1.3'),
      {
        ip: '198.18.1.3',
        port: 8080,
        healthy: false,
        reason: 'connect ECONNREFUSED',
      },
    );
    s.down.add('198.18.1.2');
    s.clock.advance(TCP_CHECK.intervalMs);
    await until('not serving', () => s.lb.report.services[0]?.serving === false);
    t.equal(s.lb.allows(VIP), false, 'no healthy endpoint: not announced');
    t.ok(s.servingChanges() >= 2);
    await until('reported', () => s.reports.at(-1)?.services[0]?.serving === false);
    const metrics = await s.registry.metrics();
    t.match(metrics, /vipmesh_lb_endpoint_healthy\{service="default\/web",endpoint="198.18.1.2"\} 0/);
    t.match(metrics, /vipmesh_lb_health_check_failures_total\{service="default\/web"\} [1-9]/);
    t.match(metrics, /vipmesh_lb_rule_updates_total\{mode="diff"\} [1-9]/);
    t.match(metrics, /vipmesh_lb_rule_update_duration_seconds_count [1-9]/);
    await s.lb.close();
    t.equal(s.removed(), 1);
    await s.lb.close();
    t.equal(s.removed(), 1, 'closed once');
  },
);

t.test('Local: serving needs a healthy endpoint on this node (by name, address or pod subnet)', async (t) => {
  const s = setup();
  const local = (ip: string, nodeName?: string) =>
    lbService('web', [VIP], [], {
      externalTrafficPolicy: 'Local',
      endpoints: [
        { ip, ports: [{ port: 8080, protocol: 'TCP' }], ready: true, ...(nodeName ? { nodeName } : {}) },
      ],
    });
  s.serve([local('198.18.2.2', 'n2')]);
  await s.lb.idle();
  t.equal(s.lb.report.services[0]?.serving, false, 'on another node');
  s.serve([local('198.18.2.2', 'n1')]);
  await s.lb.idle();
  t.equal(s.lb.report.services[0]?.serving, true, 'nodeName');
  s.serve([local('198.51.100.2')]);
  await s.lb.idle();
  t.equal(s.lb.report.services[0]?.serving, true, 'a node address');
  s.serve([local('198.18.1.7')]);
  await s.lb.idle();
  t.equal(s.lb.report.services[0]?.serving, false);
  s.lb.setLeases([{ node: 'n1', podCIDRs: ['198.18.1.0/24'], nodeIPs: ['198.51.100.2'] }]);
  s.lb.setLeases([{ node: 'n1', podCIDRs: ['198.18.1.0/24'], nodeIPs: ['198.51.100.2'] }]);
  await s.lb.idle();
  t.equal(s.lb.report.services[0]?.serving, true, 'inside this node’s pod subnet');
  await s.lb.close();
});

t.test(
  'no endpoints serves; UDP flows to a removed endpoint are forgotten; bad Services are left out',
  async (t) => {
    const s = setup();
    const dns = (eps: string[]) =>
      lbService('dns', [VIP], eps, { ports: [{ protocol: 'UDP', port: 53, targetPort: 5353 }] });
    s.serve([dns(['198.18.1.2', '198.18.1.3']), lbService('bad', ['nope'], [])]);
    await s.lb.idle();
    t.equal(s.lb.report.services.length, 1, 'the bad Service is not reported');
    t.equal(s.lb.report.services[0]?.serving, true, 'UDP only: not connect-checked, ready counts');
    s.serve([dns(['198.18.1.2'])]);
    await s.lb.idle();
    t.same(s.forgotten, [{ vip: VIP, port: 53, endpoint: '198.18.1.3' }]);
    s.serve([lbService('empty', [VIP], [])]);
    await s.lb.idle();
    t.same(s.lb.report.services[0], { namespace: 'default', name: 'empty', endpoints: [], serving: true });
    await s.lb.close();
    s.serve([dns([])]);
    t.equal(s.lb.report.services[0]?.name, 'empty', 'closed: pushes ignored');
  },
);

t.test('a report the server cannot take is sent again: after a pause, and on a new session', async (t) => {
  const s = setup({ failReport: true });
  s.serve([lbService('web', [VIP], [])]);
  await s.lb.idle();
  await new Promise((r) => setImmediate(r));
  t.equal(s.reports.length, 0, 'refused');
  s.setFailing(false);
  s.clock.advance(REPORT_RETRY_MS - 1);
  await new Promise((r) => setImmediate(r));
  t.equal(s.reports.length, 0, 'not before the pause');
  s.clock.advance(1);
  await until('sent after the pause, with no change and the same session', () => s.reports.length === 1);
  t.same(
    s.reports[0]!.services.map((x) => x.name),
    ['web'],
  );
  s.clock.advance(REPORT_RETRY_MS * 3);
  await new Promise((r) => setImmediate(r));
  t.equal(s.reports.length, 1, 'sent once: nothing is retried once taken');
  s.lb.resend();
  await until('sent again on a new session', () => s.reports.length === 2);
  await s.lb.close();
});

t.test('thousands of Services: the report goes in bounded requests, then only what changed', async (t) => {
  const s = setup();
  const services = manyServices(2500, 10);
  s.serve(services);
  await s.lb.idle();
  await until('every Service reported', () => s.reports.flatMap((r) => r.services).length >= services.length);
  const sizes = s.reports.map((r) => JSON.stringify(r).length);
  t.ok(
    sizes.reduce((a, b) => a + b) > 1 << 20,
    `more than the tunnel's 1 MiB frame in all (${sizes.length} requests)`,
  );
  t.ok(
    sizes.every((n) => n <= MAX_REPORT_BYTES + 4096),
    `each request is at most about ${MAX_REPORT_BYTES} bytes (largest ${Math.max(...sizes)})`,
  );
  t.same(
    new Set(s.reports.flatMap((r) => r.services.map((x) => x.name))).size,
    services.length,
    'every Service once',
  );
  const before = s.reports.length;
  const ip = services[1234]!.endpoints[3]!.ip;
  s.down.add(ip);
  // The check fails `fall` times in a row before the endpoint is out: one interval per poll.
  await until('the change reported', () => {
    if (s.reports.length > before) return true;
    s.clock.advance(TCP_CHECK.intervalMs);
    return false;
  });
  await s.lb.idle();
  t.same(
    s.reports.slice(before).flatMap((r) => r.services.map((x) => x.name)),
    ['svc-1234'],
    'only the Service that changed is sent again',
  );
  t.equal(s.reports.at(-1)!.services[0]!.endpoints[3]!.healthy, false);
  s.lb.resend();
  await until(
    'a new session: everything again',
    () => s.reports.slice(before + 1).flatMap((r) => r.services).length >= services.length,
  );
  await s.lb.close();
});

t.test(
  'a Service on a VIP held elsewhere: in the table, not checked nor reported; holding it needs no apply',
  async (t) => {
    const s = setup();
    const other = '198.51.100.11';
    s.lb.setHeld([VIP]);
    s.lb.setServices([
      lbService('mine', [VIP], ['198.18.1.2']),
      lbService('standby', [other], ['198.18.2.2', '198.18.2.3'], { healthCheck: { ...TCP_CHECK, fall: 1 } }),
    ]);
    await s.lb.idle();
    await until('the first report', () => s.reports.length > 0);
    t.same(
      s.reports.flatMap((r) => r.services.map((x) => x.name)),
      ['mine'],
      'only the Service on the held VIP is reported',
    );
    t.ok(
      [...s.applied.at(-1)!.chains.values()].some((c) => c.service === 'default/standby'),
      "the other VIP's Service has its rules",
    );
    t.equal(s.lb.allows(other), true, 'and would be let through at once');
    // Its endpoints are not checked: one going down changes nothing here.
    s.down.add('198.18.2.3');
    const applies = s.applied.length;
    s.clock.advance(TCP_CHECK.intervalMs * 2);
    await s.lb.idle();
    t.equal(s.applied.length, applies, 'no check, no change');
    // The VIP comes here: reported and checked from now on, without a new apply first.
    s.lb.setHeld([VIP, other]);
    t.equal(s.applied.length, applies, 'holding it wrote no rule');
    t.equal(s.lb.allows(other), true);
    await until('standby reported', () =>
      s.reports.some((r) => r.services.some((x) => x.name === 'standby')),
    );
    await until('the dead endpoint found', () => {
      if (s.applied.length > applies) return true;
      s.clock.advance(TCP_CHECK.intervalMs);
      return false;
    });
    await s.lb.idle();
    t.same(
      s.reports
        .at(-1)!
        .services.find((x) => x.name === 'standby')
        ?.endpoints.map((e) => e.healthy),
      [true, false],
    );
    // Let go again: its checks stop, and the endpoint they found dead goes back into its (inert) rules.
    s.lb.setHeld([VIP]);
    await s.lb.idle();
    const chains = [...s.applied.at(-1)!.chains.values()].filter((c) => c.service === 'default/standby');
    t.match(chains.map((c) => c.rules.join()).join(), /198\.18\.2\.3/, 'the endpoint is back in its rules');
    await s.lb.close();
  },
);

t.test("a VIP is let through only once its Services' rules are in the table", async (t) => {
  // A table whose applies wait until the test lets each one finish.
  const pending: Array<() => void> = [];
  const applied: Ruleset[] = [];
  let servingChanges = 0;
  const lb = new AgentLb({
    nodeName: 'n1',
    nodeIps: ['198.51.100.2'],
    table: {
      apply: (rs: Ruleset) =>
        new Promise<ApplyResult>((resolve) =>
          pending.push(() => {
            applied.push(rs);
            resolve({ mode: 'diff', errors: [], nftMs: 1 });
          }),
        ),
      start: () => undefined,
      remove: async () => undefined,
    },
    conntrack: { forget: async () => undefined },
    probe: async () => undefined,
    report: async () => undefined,
    servingChanged: () => servingChanges++,
    clock: new FakeClock(),
    logger: silentLogger(),
  });
  const other = '198.51.100.11';
  lb.setServices([lbService('a', [VIP], ['198.18.1.2'])]);
  await until('the first apply started', () => pending.length === 1);
  t.equal(lb.allows(VIP), false, 'its Service is known, its rules are not in yet: not announced');
  // A Service on another VIP arrives while that apply runs.
  lb.setServices([lbService('a', [VIP], ['198.18.1.2']), lbService('b', [other], ['198.18.2.2'])]);
  t.equal(lb.allows(other), false);
  pending.shift()!();
  await until('the second apply started', () => pending.length === 1);
  t.equal(lb.allows(VIP), true, "the first apply's Service: announced");
  t.equal(lb.allows(other), false, 'the Service set during the first apply is not let through on that apply');
  t.equal(servingChanges, 1);
  pending.shift()!();
  await lb.idle();
  t.equal(lb.allows(other), true, 'once its own rules are in');
  t.equal(servingChanges, 2);
  t.equal(applied.length, 2);
  t.ok([...applied[1]!.chains.values()].some((c) => c.service === 'default/b'));
  await lb.close();
});
