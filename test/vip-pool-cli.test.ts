import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { applyConfig, loadConfig } from '../src/cli/config.js';
import { buildProgram, run } from '../src/cli/program.js';
import { captureCli } from '../src/testing/cli.js';

async function cli(...args: string[]) {
  const ctx = captureCli();
  const code = await run(['check-config', ...args], ctx);
  return { code, out: ctx.out(), err: ctx.err() };
}

t.test('check-config on the examples: exit 0, pools and Services printed', async (t) => {
  const r = await cli('-f', 'config/pools', '-f', 'config/services');
  t.equal(r.code, 0, r.err);
  t.equal(r.err, '');
  t.match(r.out, /^POOL +ADDRESSES/);
  t.match(r.out, /\ndns\/dns-udp +lan +192\.168\.1\.250\n/);
  t.match(r.out, /\nedge\/ingress +dual +192\.168\.10\.1,2001:db8:10::\n/);
});

t.test('check-config -o json prints one JSON object in the documented shape', async (t) => {
  const r = await cli(
    '-f',
    'config/pools/dual-stack.yaml',
    '-f',
    'config/services/dual-stack.yaml',
    '-o',
    'json',
  );
  t.equal(r.code, 0);
  const doc = JSON.parse(r.out);
  t.same(Object.keys(doc), ['pools', 'services', 'errors']);
  t.same(doc.pools, [
    {
      name: 'dual',
      addresses: ['192.168.10.0/24', '2001:db8:10::/64'],
      size: '18446744073709551870',
      autoAssign: true,
      avoidBuggyIPs: true,
    },
  ]);
  const own = (from: string, port: number) => ({ from, to: [`the holder's own port ${port}`] });
  t.same(doc.services, [
    {
      namespace: 'edge',
      name: 'ingress',
      ips: ['192.168.10.1', '2001:db8:10::'],
      pool: 'dual',
      routes: [own('192.168.10.1:443/TCP', 443), own('[2001:db8:10::]:443/TCP', 443)],
    },
    {
      namespace: 'edge',
      name: 'mqtt',
      ips: ['2001:db8:10::1883'],
      pool: 'dual',
      routes: doc.services[1].routes,
    },
  ]);
  t.match(doc.services[1].routes, [{ from: /^\[2001:db8:10::1883\]:\d+\/(TCP|UDP)$/ }]);
  t.same(doc.errors, []);
});

t.test('check-config on the broken example: exit 1, every problem on stderr', async (t) => {
  const r = await cli('-f', 'config/invalid/broken.yaml');
  t.equal(r.code, 1);
  const lines = r.err.trimEnd().split('\n');
  t.equal(lines.length, 12);
  t.equal(
    lines[0],
    'config/invalid/broken.yaml:18 IPAddressPool/branch spec.addresses[0]: range start 10.0.0.9 is after end 10.0.0.5',
  );
  t.equal(lines[11], '11 problems found');
  const yaml = await cli('-f', 'config/invalid/broken.yaml', '-o', 'yaml');
  t.equal(yaml.code, 1);
  t.match(
    yaml.out,
    /\nerrors:\n {2}- file: config\/invalid\/broken.yaml\n {4}line: 18\n {4}kind: IPAddressPool\n {4}name: branch\n {4}path: spec.addresses\[0\]\n {4}code: VIPMESH_RANGE_REVERSED\n/,
  );
  const json = JSON.parse((await cli('-f', 'config/invalid/broken.yaml', '-o', 'json')).out);
  t.same(json.services[3], {
    namespace: 'default',
    name: 'web2',
    error: {
      code: 'VIPMESH_IP_IN_USE',
      message: '10.0.0.1 is in use by default/web, which does not share it (no allow-shared-ip key)',
    },
  });
});

t.test('usage errors: no -f, a bad -o, a missing file', async (t) => {
  t.equal((await cli()).code, 1);
  const bad = await cli('-f', 'config/pools', '-o', 'xml');
  t.equal(bad.code, 1);
  t.match(bad.err, /xml/);
  const missing = await cli('-f', '/nonexistent/pools.yaml');
  t.equal(missing.code, 1);
  t.match(missing.err, /cannot read \/nonexistent\/pools.yaml.*\(VIPMESH_FILE_UNREADABLE\)/);
});

t.test('the real command: reads stdin, exits with the status', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-check-'));
  const file = join(dir, 'pool.yaml');
  writeFileSync(
    file,
    'apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x}\nspec: {addresses: [198.51.100.0/24]}\n',
  );
  // The children run the source through tsx, not tap's loader: keep them out of tap's coverage (two
  // transforms of one file corrupt the merged counts). tap's processinfo hook keeps a variable the
  // spawn options set explicitly, and '0' turns its coverage off.
  const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' };
  const exec = promisify(execFile);
  const ok = await exec(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'check-config', '-f', file, '-o', 'json'],
    { env },
  );
  t.equal(JSON.parse(ok.stdout).pools[0].size, 256);
  const child = execFile(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'check-config', '-f', '-'],
    {
      env,
    },
  );
  child.stdin!.end(
    'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n',
  );
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 1);
  t.match(err, /<stdin>:1 Service\/s: no autoAssign pool serves this Service/);
});

t.test('the example config.yaml loads as flags and documents every server and agent flag', async (t) => {
  const loaded = loadConfig('config/config.yaml', true);
  const active = [
    'data-dir',
    'https-listen-port',
    'bind-address',
    'cluster-cidr',
    'disable-agent',
    'heartbeat-interval',
    'node-lost-after',
    'node-startup-grace',
    'node-gc-after',
    'max-new-nodes-per-minute',
    'election-ttl',
    'metrics-bind-address',
    'admin-config',
    'flannel-backend',
    'flannel-subnet-env',
    'state-dir',
  ];
  t.same([...loaded.values.keys()], active);
  const lines = readFileSync('config/config.yaml', 'utf8').split('\n');
  const keyLine = /^(?:# )?([a-z][a-z-]*):(?: \S|$)/;
  const keys = lines.flatMap((l, i) => {
    const m = keyLine.exec(l);
    return m === null ? [] : [{ key: m[1]!, i }];
  });
  const commented = [
    'node-ip',
    'node-name',
    'node-label',
    'datastore-endpoint',
    'max-nodes',
    'flannel-iface',
    'server',
    'token',
    'probe-interval',
    'handover-timeout',
    'api-max-connections',
    'api-max-connections-per-source',
    'api-request-timeout',
    'snapshot-schedule',
    'snapshot-retention',
    'snapshot-dir',
    'disable-snapshots',
  ];
  t.same(keys.map((k) => k.key).sort(), [...active, ...commented].sort(), 'every flag is shown once');
  for (const { key, i } of keys) {
    let j = i - 1;
    while (j >= 0 && keyLine.test(lines[j]!)) j--;
    t.match(lines[j], /^# \S/, `${key} has a comment above it`);
  }
});

t.test('vipmesh server knows every key the example config.yaml sets', async (t) => {
  const program = await buildProgram(captureCli(), ['server']);
  const server = program.commands.find((c) => c.name() === 'server')!;
  t.same(applyConfig(server, loadConfig('config/config.yaml', true)).unknown, []);
});

t.test(
  'check-config and apply -f refuse YAML nested deeper than the API takes, naming file and line',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vipmesh-deep-'));
    const file = join(dir, 'deep.yaml');
    let deep = 'apiVersion: v1\nkind: Service\nmetadata: { name: deep }\nspec:\n';
    for (let i = 0; i < 5000; i++) deep += `${' '.repeat(i + 1)}k${i}:\n`;
    writeFileSync(file, deep);
    const r = await cli('-f', file);
    t.equal(r.code, 1);
    t.equal(
      r.err.split('\n')[0],
      `${file}:106: nests maps and lists deeper than 100 levels; refused`,
      'one problem at the line the nesting passes the limit (a List may wrap objects in two more)',
    );
    const ctx = captureCli();
    const code = await run(['apply', '-f', file, '--server', 'https://127.0.0.1:9', '--token', 'x'], ctx);
    t.not(code, 0);
    t.match(ctx.err(), `${file}:106: nests maps and lists deeper than 100 levels (the API's limit); refused`);
  },
);

t.test(
  'check-config answers as MetalLB: dual-stack pool choice, Local sharing, legacy ConfigMap',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vipmesh-metallb-'));
    const pools = join(dir, 'pools.yaml');
    writeFileSync(
      pools,
      `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a-v4}
spec: {addresses: [198.51.100.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b-v6}
spec: {addresses: ['2001:db8::/120']}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: c-dual}
spec: {addresses: [198.51.100.64/28, '2001:db8:1::/120']}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: public}
spec:
  serviceSelectors: [{matchLabels: {exposure: public}}]
`,
    );
    const services = join(dir, 'services.yaml');
    const lb = (name: string, spec: string, ann = '') =>
      `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}${ann}}\nspec: {type: LoadBalancer, ports: [{port: PORT}], ${spec}}\n`;
    writeFileSync(
      services,
      [
        lb('dual', 'ipFamilyPolicy: PreferDualStack').replace('PORT', '80'),
        lb('v4', 'ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv4]').replace('PORT', '80'),
        lb(
          'web',
          'externalTrafficPolicy: Local, selector: {app: web}, loadBalancerIP: 198.51.100.9',
          ', annotations: {metallb.io/allow-shared-ip: k}',
        ).replace('PORT', '80'),
        lb(
          'db',
          'externalTrafficPolicy: Local, selector: {app: db}, loadBalancerIP: 198.51.100.9',
          ', annotations: {metallb.io/allow-shared-ip: k}',
        ).replace('PORT', '5432'),
      ].join('---\n'),
    );
    const r = await cli('-f', pools, '-f', services);
    t.equal(r.code, 1);
    t.match(r.out, /\ndefault\/dual +c-dual +198\.51\.100\.64,2001:db8:1::\n/);
    t.match(r.out, /\ndefault\/v4 +a-v4 +198\.51\.100\.0\n/);
    t.match(r.out, /\ndefault\/web +a-v4 +198\.51\.100\.9\n/);
    t.match(
      r.err,
      /Service\/db spec\.loadBalancerIP: 198\.51\.100\.9 is in use by default\/web .*only Services selecting the same pods/,
    );

    const cm = join(dir, 'cm.yaml');
    writeFileSync(
      cm,
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: {name: config, namespace: metallb-system}',
        'data:',
        '  config: |',
        '    peers: []',
        '    address-pools:',
        '    - name: Office',
        '      protocol: layer2: x',
        '      addresses: [10.0.0.0/24]',
        '',
      ].join('\n'),
    );
    const bad = await cli('-f', cm);
    t.equal(bad.code, 1);
    t.match(
      bad.err,
      new RegExp(`^${cm.replace(/[.]/g, '\\.')}:9 ConfigMap/config data\\.config: not valid YAML`),
      'the failing line, not the config: | line',
    );
  },
);
