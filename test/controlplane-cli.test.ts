/**
 * The CLI (apply/get/describe/delete) run in-process against the HTTPS API on loopback (real TLS, a REAL
 * etcd behind it), reaching it by flags, by VIPMESH_URL/VIPMESH_TOKEN and by the admin config, with the CA
 * pinned from the admin token.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { writeAdminConfig } from '../src/api/index.js';
import { run } from '../src/cli/program.js';
import { silentLogger } from '../src/log.js';
import { captureCli } from '../src/testing/cli.js';
import { api, datastore, svc } from '../src/testing/controlplane.js';
import { tempDir } from '../src/testing/tmp.js';
import { until } from '../src/testing/until.js';

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const ctx = captureCli(silentLogger);
  const code = await run(argv, ctx);
  return { code, out: ctx.out(), err: ctx.err() };
}

t.test('CLI: apply, get, describe, delete against the API (CA pinned from the token)', async (t) => {
  const endpoint = await datastore(t, 'etcd');
  const { srv, store, c } = await api(t, endpoint);
  const dir = tempDir('vipmesh-cp-cli-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const conn = ['--server', srv.url, '--token', c.adminToken, '--admin-config', join(dir, 'none.yaml')];
  const file = join(dir, 'cluster.yaml');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Namespace
metadata: {name: metallb-system, labels: {team: net}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [198.51.100.10-198.51.100.20]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.51.100.15
  selector: {app: web}
  ports: [{name: http, port: 80, protocol: TCP}]
`,
  );
  const first = await cli(['apply', '-f', file, ...conn]);
  t.equal(first.code, 0, first.err);
  t.equal(
    first.out,
    'namespace/metallb-system created\nipaddresspool.metallb.io/lan created\nl2advertisement.metallb.io/lan created\nservice/web created\n',
  );
  const again = await cli(['apply', '-f', file, ...conn]);
  t.match(again.out, /service\/web unchanged/, 'applying the same file again changes nothing');
  writeFileSync(file, readFileSync(file, 'utf8').replace('port: 80', 'port: 8080'));
  t.match((await cli(['apply', '-f', file, ...conn])).out, /service\/web configured/);

  // The controllers (second wave) fill status and node state; stand in for them through the store.
  const web = await store.get('services', 'web');
  await store.updateStatus('services', {
    ...web,
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.15' }] } },
  });
  const n = await store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'pi1' } });
  await store.updateStatus('nodes', {
    ...n,
    status: {
      conditions: [{ type: 'Ready', status: 'True' }],
      addresses: [{ type: 'InternalIP', address: '198.51.100.2' }],
      vips: ['198.51.100.15'],
    },
  });
  await store.create('events', {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'web.a', namespace: 'default' },
    involvedObject: { kind: 'Service', name: 'web', namespace: 'default' },
    reason: 'IPAllocated',
    message: 'Assigned IP ["198.51.100.15"]',
    type: 'Normal',
    lastTimestamp: new Date().toISOString(),
    source: { component: 'vipmesh-ipam' },
  });

  const table = await cli(['get', 'services', ...conn]);
  t.equal(table.code, 0, table.err);
  t.match(table.out, /^NAMESPACE\s+NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\n/);
  t.match(table.out, /default\s+web\s+LoadBalancer\s+<none>\s+198\.51\.100\.15\s+8080\/TCP\s+\d+s\n/);
  const wide = await cli(['get', 'svc', '-o', 'wide', ...conn]);
  t.match(wide.out, /SELECTOR\s+POOL\s+HOLDER/);
  t.match(wide.out, /app=web\s+<none>\s+pi1\n/, 'wide shows which node announces the VIP');
  const json = JSON.parse((await cli(['get', 'services', '-o', 'json', ...conn])).out);
  t.match(json, { kind: 'ServiceList', items: [{ metadata: { name: 'web' } }] });
  const nodes = JSON.parse((await cli(['get', 'nodes', '-o', 'json', ...conn])).out);
  t.equal(
    nodes.items[0].status.conditions.find((x: { type: string }) => x.type === 'Ready').status,
    'True',
    "a Node's readiness is status.conditions[type=Ready].status",
  );
  t.match((await cli(['get', 'nodes', ...conn])).out, /pi1\s+Ready\s+<none>\s+\d+s/);
  t.equal((await cli(['cordon', 'pi1', ...conn])).out, 'node/pi1 cordoned\n');
  t.equal((await cli(['cordon', 'pi1', ...conn])).out, 'node/pi1 already cordoned\n');
  t.match((await cli(['get', 'nodes', ...conn])).out, /pi1\s+Ready,SchedulingDisabled\s/);
  t.equal((await store.get('nodes', 'pi1')).spec?.unschedulable, true);
  t.equal((await cli(['uncordon', 'pi1', ...conn])).out, 'node/pi1 uncordoned\n');
  t.notOk((await store.get('nodes', 'pi1')).spec?.unschedulable, 'spec.unschedulable cleared');
  // Drain: pi1 is the only node, so its VIP has nowhere to go; after the timeout the command names it.
  const drain = await cli(['drain', 'pi1', '--timeout', '300ms', ...conn]);
  t.equal(drain.code, 1, 'a drain that leaves a VIP behind exits 1');
  t.equal(drain.out, 'node/pi1 cordoned for draining\n');
  t.match(drain.err, /node\/pi1: still holds 198\.51\.100\.15 after 300ms \(no other Ready node may hold it/);
  const drained = await store.get('nodes', 'pi1');
  t.equal(drained.spec?.unschedulable, true, 'drain cordons');
  t.equal(drained.metadata.annotations?.['vipmesh.io/drain'], 'true', 'and marks the node drained');
  t.match((await cli(['drain', 'pi1', '--timeout', '0', ...conn])).out, /node\/pi1 already cordoned/);
  t.match((await cli(['drain', 'pi1', '--timeout', 'soon', ...conn])).err, /VIPMESH_BAD_DURATION/);
  t.equal((await cli(['uncordon', 'pi1', ...conn])).out, 'node/pi1 uncordoned\n');
  const undrained = await store.get('nodes', 'pi1');
  t.notOk(undrained.spec?.unschedulable, 'uncordon ends the drain: schedulable');
  t.equal(undrained.metadata.annotations?.['vipmesh.io/drain'], undefined, 'and the annotation is gone');
  t.match((await cli(['cordon', 'nope', ...conn])).err, /VIPMESH_API_NOT_FOUND/);
  t.match(
    (await cli(['get', 'nodes', '-o', 'wide', ...conn])).out,
    /198\.51\.100\.2\s+<none>\s+198\.51\.100\.15/,
  );
  t.match(
    (await cli(['get', 'ipaddresspools', ...conn])).out,
    /lan\s+true\s+false\s+198\.51\.100\.10-198\.51\.100\.20/,
  );
  t.match((await cli(['get', 'l2advertisements', '-o', 'yaml', ...conn])).out, /kind: L2AdvertisementList/);
  t.equal((await cli(['get', 'service', 'web', '-o', 'name', ...conn])).out, 'service/web\n');

  const desc = await cli(['describe', 'service', 'web', ...conn]);
  t.equal(desc.code, 0, desc.err);
  t.match(desc.out, /Name:\s+web\n/);
  t.match(desc.out, /LoadBalancer Ingress:\s+198\.51\.100\.15/);
  t.match(desc.out, /Announced by:\s+pi1/);
  t.match(desc.out, /Normal\s+IPAllocated\s+\d+s\s+vipmesh-ipam\s+Assigned IP/);
  const dn = await cli(['describe', 'node', 'pi1', ...conn]);
  t.match(dn.out, /Status:\s+Ready\n/);
  t.match(dn.out, /InternalIP:\s+198\.51\.100\.2\n/);
  t.match(dn.out, /VIPs:\s+198\.51\.100\.15\n/);
  const dp = await cli(['describe', 'ipaddresspool', 'lan', '-n', 'metallb-system', ...conn]);
  t.match(dp.out, /kind: IPAddressPool\n[\s\S]*Events: <none>/, 'other kinds: YAML and events');

  // Errors: printed as `error: ... (CODE)`, exit 1.
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    'apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {type: LoadBalancer, loadBalancerIP: nope}\n',
  );
  const inv = await cli(['apply', '-f', bad, ...conn]);
  t.equal(inv.code, 1);
  t.match(inv.err, /spec\.loadBalancerIP.*\(VIPMESH_API_INVALID\)/);
  writeFileSync(bad, 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n');
  t.match((await cli(['apply', '-f', bad, ...conn])).err, /unknown kind "Pod".*VIPMESH_CLI_BAD_INPUT/);
  t.match((await cli(['get', 'widgets', ...conn])).err, /VIPMESH_CLI_BAD_INPUT/);
  t.match((await cli(['get', 'services', '-o', 'xml', ...conn])).err, /VIPMESH_CLI_BAD_INPUT/);
  t.match((await cli(['delete', 'service', 'nope', ...conn])).err, /VIPMESH_API_NOT_FOUND/);

  // Wrong CA hash in the token: refused before any request carries the token.
  const otherHash = c.adminToken.replace(/^K10([0-9a-f])/, (_m, d: string) => `K10${d === '0' ? '1' : '0'}`);
  const pinned = await cli([
    'get',
    'services',
    '--server',
    srv.url,
    '--token',
    otherHash,
    '--admin-config',
    join(dir, 'x'),
  ]);
  t.equal(pinned.code, 1);
  t.match(pinned.err, /VIPMESH_TUNNEL_CA_MISMATCH/);
  t.match(
    (await cli(['get', 'services', '--admin-config', join(dir, 'none.yaml')])).err,
    /VIPMESH_API_NO_SERVER/,
  );

  // VIPMESH_URL / VIPMESH_TOKEN, then the admin config file the server writes.
  process.env['VIPMESH_URL'] = srv.url;
  process.env['VIPMESH_TOKEN'] = c.adminToken;
  const viaEnv = await cli(['get', 'services', '-n', 'default', '--admin-config', join(dir, 'none.yaml')]);
  delete process.env['VIPMESH_URL'];
  delete process.env['VIPMESH_TOKEN'];
  t.match(viaEnv.out, /^NAME\s+TYPE/, 'env works; with -n there is no NAMESPACE column');
  const adminCfg = join(dir, 'vipmesh.yaml');
  writeAdminConfig(adminCfg, { server: srv.url, token: c.adminToken, caCertPem: c.caCertPem });
  t.equal(statSync(adminCfg).mode & 0o777, 0o600, 'the admin config is private');
  const viaFile = await cli(['delete', 'svc', 'web', '--admin-config', adminCfg]);
  t.equal(viaFile.out, 'service "web" deleted\n');
  t.equal((await cli(['get', 'services', '--admin-config', adminCfg])).err, 'No resources found\n');

  // get -w: the (empty) list, then a row per change, until the server goes away.
  const watchCtx = captureCli(silentLogger);
  const watching = run(['get', 'services', '-w', '--admin-config', adminCfg], watchCtx);
  await until('get -w to print the empty list', () => watchCtx.err().includes('No resources found'));
  await store.create('services', svc('late'));
  await until('get -w to print the new row', () => watchCtx.out().includes('late'));
  await srv.close();
  t.equal(await watching, 0, 'get -w ends when the stream does');
  t.match(watchCtx.out(), /^NAMESPACE\s+NAME\s+TYPE.*\ndefault\s+late\s+LoadBalancer\s+<none>\s+<pending>/);
});

t.test(
  'get ipaddresspools lists the legacy ConfigMap pools too, marked; the API lists only stored ones',
  async (t) => {
    const endpoint = await datastore(t, 'kine');
    const { srv, store, c } = await api(t, endpoint);
    const dir = tempDir('vipmesh-cp-legacy-');
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const conn = ['--server', srv.url, '--token', c.adminToken, '--admin-config', join(dir, 'none.yaml')];
    const file = join(dir, 'pools.yaml');
    writeFileSync(
      file,
      `apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [198.51.100.10-198.51.100.20]
---
${readFileSync('config/pools/legacy-configmap.yaml', 'utf8')}`,
    );
    const applied = await cli(['apply', '-f', file, ...conn]);
    t.equal(applied.code, 0, applied.err);

    const table = (await cli(['get', 'ipaddresspools', ...conn])).out.split('\n');
    t.match(table[0], /^NAMESPACE\s+NAME\s+AUTO ASSIGN\s+AVOID BUGGY IPS\s+ADDRESSES\s+SOURCE$/);
    t.match(
      table[1],
      /^metallb-system\s+lan\s+true\s+false\s+198\.51\.100\.10-198\.51\.100\.20\s+IPAddressPool$/,
    );
    t.match(
      table[2],
      /^metallb-system\s+legacy\s+true\s+false\s+192\.168\.20\.100-192\.168\.20\.120,192\.168\.20\.128\/28\s+ConfigMap metallb-system\/config$/,
    );
    t.match(
      table[3],
      /^metallb-system\s+legacy-manual\s+false\s+true\s+192\.168\.21\.0\/24\s+ConfigMap metallb-system\/config$/,
    );

    const yaml = (await cli(['get', 'ipaddresspools', '-o', 'yaml', ...conn])).out;
    t.match(yaml, /kind: IPAddressPoolList/);
    t.match(
      yaml,
      /kind: IPAddressPool\n\s+metadata:\n\s+name: legacy\n\s+namespace: metallb-system\n\s+annotations:\n\s+vipmesh.io\/source: ConfigMap metallb-system\/config/,
    );
    const one = await cli(['get', 'pool', 'legacy-manual', '-n', 'metallb-system', '-o', 'json', ...conn]);
    t.equal(one.code, 0, one.err);
    t.same(JSON.parse(one.out).spec, {
      addresses: ['192.168.21.0/24'],
      autoAssign: false,
      avoidBuggyIPs: true,
    });
    t.match(
      (await cli(['get', 'pool', 'nothing', '-n', 'metallb-system', ...conn])).err,
      /VIPMESH_API_NOT_FOUND/,
    );
    t.match(
      (await cli(['get', 'pool', 'legacy', '-n', 'default', ...conn])).err,
      /VIPMESH_API_NOT_FOUND/,
      "a legacy pool lives in its ConfigMap's namespace",
    );

    // What the API (and so kubectl) lists is what is stored: the ConfigMap, not pools made from it.
    t.same(
      (await store.list('ipaddresspools')).items.map((p) => p.metadata.name),
      ['lan'],
    );
    // Without the ConfigMap, its pools are gone from the list.
    await store.delete('configmaps', 'config', 'metallb-system');
    t.equal(
      (await cli(['get', 'ipaddresspools', '-n', 'metallb-system', ...conn])).out.split('\n').length,
      3,
    );
  },
);
