import { createServer as createHttp } from 'node:http';
import { type AddressInfo, createServer as createTcp, type Server } from 'node:net';
import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { TCP_CHECK } from '../testing/lb-services.js';
import { HealthChecker, type HealthState } from './health.js';
import { httpProbe, type Probe, type ProbeTarget, probeFor, tcpProbe } from './probes.js';

/** A probe the test answers by hand: each call waits for `ok()` or `fail(reason)`. */
function manualProbe() {
  const calls: Array<{ ok: () => void; fail: (r: string) => void; signal: AbortSignal }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const probe: Probe = (_t, signal) =>
    new Promise((resolve, reject) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const done = () => inFlight--;
      signal.addEventListener('abort', () => {
        done();
        reject(new Error('aborted'));
      });
      calls.push({
        ok: () => {
          done();
          resolve();
        },
        fail: (r) => {
          done();
          reject(new Error(r));
        },
        signal,
      });
    });
  return { probe, calls, max: () => maxInFlight };
}

const tick = () => new Promise((r) => setImmediate(r));
const target = (check = TCP_CHECK): ProbeTarget => ({ ip: '198.18.1.2', port: 8080, check });

t.test('rise and fall: the first result decides, then consecutive runs count', async (t) => {
  const clock = new FakeClock();
  const m = manualProbe();
  const changes: Array<[string, HealthState]> = [];
  const failures: string[] = [];
  const hc = new HealthChecker({
    clock,
    probe: m.probe,
    onChange: (k, s) => changes.push([k, s]),
    onFailure: (_k, r) => failures.push(r),
  });
  hc.set(new Map([['default/web/198.18.1.2', target()]]));
  t.same(
    hc.state('default/web/198.18.1.2'),
    { healthy: true },
    'healthy until the first check says otherwise',
  );
  m.calls[0]!.fail('connect ECONNREFUSED');
  await tick();
  t.same(changes, [['default/web/198.18.1.2', { healthy: false, reason: 'connect ECONNREFUSED' }]]);
  // rise = 2: one success is not enough.
  clock.advance(1000);
  m.calls[1]!.ok();
  await tick();
  t.equal(changes.length, 1);
  clock.advance(1000);
  m.calls[2]!.ok();
  await tick();
  t.same(changes[1], ['default/web/198.18.1.2', { healthy: true }]);
  // fall = 3: two failures keep it up, the third takes it down.
  for (let i = 3; i < 6; i++) {
    clock.advance(1000);
    m.calls[i]!.fail('HTTP 503');
    await tick();
    t.equal(changes.length, i < 5 ? 2 : 3);
  }
  t.same(changes[2], ['default/web/198.18.1.2', { healthy: false, reason: 'HTTP 503' }]);
  t.equal(failures.length, 4);
  hc.close();
  t.equal(clock.pending, 0);
});

t.test('a check that does not answer times out, and only one is ever in flight', async (t) => {
  const clock = new FakeClock();
  const m = manualProbe();
  const changes: HealthState[] = [];
  const hc = new HealthChecker({ clock, probe: m.probe, onChange: (_k, s) => changes.push(s) });
  hc.set(new Map([['k', target({ ...TCP_CHECK, intervalMs: 100, timeoutMs: 500 })]]));
  for (let i = 0; i < 10; i++) {
    clock.advance(100);
    await tick();
  }
  t.equal(m.max(), 1, 'never two checks of one endpoint at once');
  t.ok(
    m.calls.length >= 2 && m.calls.length <= 3,
    `${m.calls.length} checks in 1 s at 500 ms timeout + 100 ms interval`,
  );
  t.ok(m.calls[0]!.signal.aborted);
  t.same(changes[0], { healthy: false, reason: 'timeout after 500 ms' });
  hc.close();
});

t.test('set: gone endpoints stop, a changed check starts over, none needs no probe', async (t) => {
  const clock = new FakeClock();
  const m = manualProbe();
  const hc = new HealthChecker({ clock, probe: m.probe, onChange: () => undefined });
  hc.set(
    new Map([
      ['a', target()],
      ['b', target()],
      ['c', target({ ...TCP_CHECK, type: 'none' })],
    ]),
  );
  t.equal(hc.size, 3);
  t.equal(m.calls.length, 2, 'type none runs no probe');
  hc.set(new Map([['a', target({ ...TCP_CHECK, intervalMs: 2000 })]]));
  t.equal(hc.size, 1);
  t.ok(
    m.calls[0]!.signal.aborted && m.calls[1]!.signal.aborted,
    'in-flight checks of stopped entries aborted',
  );
  t.equal(m.calls.length, 3, 'the changed one started over');
  m.calls[0]!.ok(); // a late answer of a stopped check changes nothing
  await tick();
  t.same(hc.state('a'), { healthy: true });
  t.equal(hc.state('b'), undefined);
  hc.close();
  hc.set(new Map([['z', target()]]));
  t.equal(hc.size, 0, 'closed: nothing starts');
});

t.test('a probe that throws synchronously counts as a failure', async (t) => {
  const clock = new FakeClock();
  const changes: HealthState[] = [];
  const hc = new HealthChecker({
    clock,
    probe: () => {
      throw 'no socket';
    },
    onChange: (_k, s) => changes.push(s),
  });
  hc.set(new Map([['k', target()]]));
  await tick();
  t.same(changes, [{ healthy: false, reason: 'no socket' }]);
  hc.close();
});

async function listen(s: Server | ReturnType<typeof createHttp>): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

t.test('real probes: TCP connect, HTTP status range, refused, aborted', async (t) => {
  const tcp = createTcp((c) => c.destroy());
  const tcpPort = await listen(tcp);
  let status = 200;
  const http = createHttp((_req, res) => {
    res.statusCode = status;
    res.end('ok');
  });
  const httpPort = await listen(http);
  // A server that accepts and never answers: the HTTP check must be aborted by its signal.
  const silent = createTcp(() => undefined);
  const silentPort = await listen(silent);
  t.teardown(() => {
    tcp.close();
    http.closeAllConnections();
    http.close();
    silent.close();
    for (const s of [tcp, silent]) s.unref();
  });
  const sig = () => new AbortController().signal;
  await t.resolves(tcpProbe({ ip: '127.0.0.1', port: tcpPort, check: TCP_CHECK }, sig()));
  const httpCheck = {
    ...TCP_CHECK,
    type: 'http' as const,
    path: '/healthz',
    expectStatus: [200, 299] as [number, number],
  };
  await t.resolves(probeFor({ ip: '127.0.0.1', port: httpPort, check: httpCheck }, sig()));
  status = 503;
  await t.rejects(httpProbe({ ip: '127.0.0.1', port: httpPort, check: httpCheck }, sig()), {
    message: 'HTTP 503',
  });
  await t.rejects(probeFor({ ip: '127.0.0.1', port: 1, check: TCP_CHECK }, sig()), {
    message: 'connect ECONNREFUSED',
  });
  await t.rejects(httpProbe({ ip: '127.0.0.1', port: 1, check: httpCheck }, sig()), {
    message: 'connect ECONNREFUSED',
  });
  const ac = new AbortController();
  const p = httpProbe({ ip: '127.0.0.1', port: silentPort, check: httpCheck }, ac.signal);
  ac.abort();
  await t.rejects(p, { message: 'aborted' });
  const ac2 = new AbortController();
  const p2 = tcpProbe({ ip: '127.0.0.1', port: silentPort, check: TCP_CHECK }, ac2.signal);
  ac2.abort();
  await t.rejects(p2, { message: 'aborted' });
});
