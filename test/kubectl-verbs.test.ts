/**
 * Real clients, unchanged, against a real `vipmesh server` on loopback (no root, no local agent): Debian's
 * kubectl (apply twice, diff, edit, the three patch types, label, annotate, get with set-based selectors
 * and -o wide, get -w, wait, describe, delete, dry runs, the error messages) and Debian's python3-kubernetes
 * (list, then watch from the list's resourceVersion). Skipped, saying why, when kubectl is not installed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { until } from '../src/testing/until.js';

const haveKubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
const havePyKube =
  spawnSync('/usr/bin/python3', ['-c', 'import kubernetes'], { encoding: 'utf8' }).status === 0;
if (!haveKubectl) {
  t.comment('kubectl is not installed (apt-get install kubectl)');
  t.pass('skipped: no kubectl');
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kubectl-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** `vipmesh server` as a child process; resolves once it has written its admin config. */
/** `vipmesh server` as a child process; resolves once it is up and has written its kubeconfig. */
async function startServer(): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'server',
      '-c',
      '/dev/null',
      '--data-dir',
      join(dir, 'data'),
      '--https-listen-port',
      '0',
      '--bind-address',
      '127.0.0.1',
      '--disable-agent',
      '--metrics-bind-address',
      '',
      '--admin-config',
      kubeconfig,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' } },
  );
  process.once('exit', () => proc.kill('SIGKILL'));
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await until('the server to say it is up', () => out.includes('vipmesh server is up'), {
    timeoutMs: 60_000,
  });
  return { proc, out: () => out };
}

/** The admin config the server writes is a kubeconfig; kubectl and the Python client use it as it is. */
const kubeconfig = join(dir, 'kubeconfig.yaml');
const srv = await startServer();
t.teardown(async () => {
  srv.proc.kill('SIGTERM');
  await new Promise((r) => srv.proc.once('exit', r));
});

const env = { ...process.env, KUBECONFIG: kubeconfig, HOME: dir };

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Run kubectl to its end. */
function kubectl(args: string[], extraEnv: Record<string, string> = {}, input?: string): Run {
  const r = spawnSync('kubectl', args, {
    encoding: 'utf8',
    env: { ...env, ...extraEnv },
    ...(input === undefined ? {} : { input }),
    timeout: 60_000,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function ok(t: Test, args: string[], extraEnv: Record<string, string> = {}): string {
  const r = kubectl(args, extraEnv);
  t.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.err}`);
  return r.out;
}

const SERVICE = (port: number) => `apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  type: LoadBalancer
  loadBalancerIP: 198.51.100.100
  ports:
    - name: hello
      protocol: TCP
      port: ${port}
`;
const svcFile = join(dir, 'svc.yaml');

t.test('apply: created, unchanged, configured; diff shows the change first', async (t) => {
  t.match(ok(t, ['apply', '-f', 'config/demo/pool.yaml']), /ipaddresspool.metallb.io\/demo created/);
  writeFileSync(svcFile, SERVICE(8080));
  t.equal(ok(t, ['apply', '-f', svcFile]), 'service/hello created\n');
  t.equal(ok(t, ['apply', '-f', svcFile]), 'service/hello unchanged\n');
  t.equal(
    ok(t, ['apply', '-f', 'config/demo/pool.yaml']).split('\n')[0],
    'ipaddresspool.metallb.io/demo unchanged',
  );
  writeFileSync(svcFile, SERVICE(8081));
  const d = kubectl(['diff', '-f', svcFile]);
  t.equal(d.code, 1, `kubectl diff exits 1 when there is a difference: ${d.err}`);
  t.match(d.out, /-\s+port: 8080\n\+\s+port: 8081/);
  t.equal(
    ok(t, ['get', 'svc', 'hello', '-o', 'jsonpath={.spec.ports[0].port}']),
    '8080',
    'diff stored nothing',
  );
  t.equal(ok(t, ['apply', '-f', svcFile]), 'service/hello configured\n');
  t.equal(ok(t, ['get', 'svc', 'hello', '-o', 'jsonpath={.spec.ports[0].port}']), '8081');
  t.equal(kubectl(['diff', '-f', svcFile]).code, 0, 'no difference now');
  const dry = ok(t, ['apply', '--dry-run=server', '-f', svcFile]);
  t.match(dry, /service\/hello unchanged \(server dry run\)/);
});

t.test('wait for the address, get -o wide, describe', async (t) => {
  const w = kubectl([
    'wait',
    '--for=jsonpath={.status.loadBalancer.ingress[0].ip}=198.51.100.100',
    'svc/hello',
    '--timeout=30s',
  ]);
  t.equal(w.code, 0, w.err);
  t.equal(w.out, 'service/hello condition met\n');
  const wide = ok(t, ['get', 'svc', '-o', 'wide']);
  t.match(wide, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\s+SELECTOR\s+POOL\s+HOLDER\n/);
  t.match(
    wide,
    /\nhello\s+LoadBalancer\s+<none>\s+198\.51\.100\.100\s+8081\/TCP\s+\d+s\s+<none>\s+demo\s+<none>\n/,
  );
  const plain = ok(t, ['get', 'svc']);
  t.match(plain, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\n/);
  t.match(
    ok(t, ['get', 'ipaddresspools', '-A']),
    /metallb-system\s+demo\s+true\s+false\s+198\.51\.100\.100-198\.51\.100\.150/,
  );
  const desc = ok(t, ['describe', 'svc', 'hello']);
  t.match(desc, /LoadBalancer Ingress:\s+198\.51\.100\.100/);
  t.match(desc, /IPAllocated/, 'describe finds the Service events by field selector');
});

t.test('patch (three types), label, annotate, edit, selectors', async (t) => {
  t.equal(ok(t, ['label', 'svc', 'hello', 'env=prod']), 'service/hello labeled\n');
  t.equal(ok(t, ['annotate', 'svc', 'hello', 'owner=ops']), 'service/hello annotated\n');
  t.equal(
    ok(t, ['patch', 'svc', 'hello', '--type=merge', '-p', '{"metadata":{"labels":{"tier":"fe"}}}']),
    'service/hello patched\n',
  );
  ok(t, [
    'patch',
    'svc',
    'hello',
    '--type=json',
    '-p',
    '[{"op":"replace","path":"/spec/ports/0/port","value":9090}]',
  ]);
  ok(t, ['patch', 'svc', 'hello', '-p', '{"spec":{"ports":[{"port":9443,"name":"tls"}]}}']);
  t.same(
    JSON.parse(ok(t, ['get', 'svc', 'hello', '-o', 'jsonpath={.spec.ports}'])),
    [
      { name: 'hello', port: 9090, protocol: 'TCP' },
      { name: 'tls', port: 9443 },
    ],
    'the strategic patch added a port by its key; the json patch replaced one',
  );
  t.match(ok(t, ['get', 'svc', 'hello', '-o', 'jsonpath={.metadata.annotations.owner}']), 'ops');
  const bad = kubectl(['patch', 'svc', 'hello', '--type=merge', '-p', '{"spec":{"ports":[{"port":0}]}}']);
  t.not(bad.code, 0);
  t.match(bad.err, /The Service "hello" is invalid: spec\.ports\[0\]\.port/);

  writeFileSync(join(dir, 'editor.sh'), '#!/bin/sh\nsed -i "s/port: 9090/port: 7070/" "$1"\n', {
    mode: 0o755,
  });
  const e = kubectl(['edit', 'svc', 'hello'], { EDITOR: join(dir, 'editor.sh'), KUBE_EDITOR: '' });
  t.equal(e.code, 0, e.err);
  t.equal(e.out, 'service/hello edited\n');
  t.equal(ok(t, ['get', 'svc', 'hello', '-o', 'jsonpath={.spec.ports[0].port}']), '7070');

  writeFileSync(
    join(dir, 'more.yaml'),
    ['dev', 'stage']
      .map((env) =>
        SERVICE(80)
          .replace('name: hello', `name: ${env}\n  labels: {env: ${env}}`)
          .replace('loadBalancerIP: 198.51.100.100', ''),
      )
      .join('---\n'),
  );
  ok(t, ['apply', '-f', join(dir, 'more.yaml')]);
  const names = (sel: string) => ok(t, ['get', 'svc', '-l', sel, '-o', 'name']).trim().split('\n').sort();
  t.same(names('env in (prod,dev)'), ['service/dev', 'service/hello']);
  t.same(names('env notin (prod)'), ['service/dev', 'service/stage']);
  t.same(names('env,env!=dev'), ['service/hello', 'service/stage']);
  t.match(ok(t, ['get', 'svc', 'hello', '--show-labels']), /LABELS\n.*env=prod,tier=fe/);
  const paged = kubectl(['get', 'svc', '--chunk-size=1', '-v=6']);
  t.match(paged.out, /^NAME .*\ndev\s.*\nhello\s.*\nstage\s/, 'pages of one, through continue tokens');
  t.match(paged.err, /services\?continue=\S+&limit=1 200 OK/, 'kubectl followed the continue token');
  t.match(
    ok(t, ['get', 'svc', '--field-selector', 'metadata.name=stage', '-o', 'name']),
    /^service\/stage\n$/,
  );
});

t.test('get -w prints the update', async (t) => {
  const w = spawn('kubectl', ['get', 'svc', 'hello', '-w'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => w.kill());
  let out = '';
  w.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await until('the first row', () => /\nhello\s/.test(out));
  ok(t, [
    'patch',
    'svc',
    'hello',
    '--type=json',
    '-p',
    '[{"op":"replace","path":"/spec/ports/0/port","value":6060}]',
  ]);
  await until('the updated row', () => /6060\/TCP/.test(out));
  t.match(out, /^NAME\s+TYPE/);
});

t.test('errors as kube-apiserver words them; dry-run delete; delete', async (t) => {
  const dup = kubectl(['create', '-f', svcFile]);
  t.match(
    dup.err,
    /Error from server \(AlreadyExists\): error when creating ".*": services "hello" already exists/,
  );
  const stale = ok(t, ['get', 'svc', 'hello', '-o', 'yaml']);
  ok(t, ['label', 'svc', 'hello', 'again=1']);
  writeFileSync(join(dir, 'stale.yaml'), stale);
  const conflict = kubectl(['replace', '-f', join(dir, 'stale.yaml')]);
  t.match(
    conflict.err,
    /Error from server \(Conflict\): .*Operation cannot be fulfilled on services "hello": the object has been modified; please apply your changes to the latest version and try again/,
  );
  writeFileSync(
    join(dir, 'bogus.yaml'),
    SERVICE(80).replace('      port: 80', '      port: 80\n      bogus: 1'),
  );
  const strict = kubectl(['apply', '-f', join(dir, 'bogus.yaml')]);
  t.not(strict.code, 0, 'an unknown field is refused (kubectl validates strictly by default)');
  t.match(strict.err, /unknown field "spec\.ports\[0\]\.bogus"/);
  const warn = kubectl(['apply', '--validate=warn', '-f', join(dir, 'bogus.yaml')]);
  t.equal(warn.code, 0, warn.err);
  t.match(
    warn.err,
    /^Warning: unknown field "spec\.ports\[0\]\.bogus"$/m,
    'the server warns; kubectl prints it',
  );
  t.notMatch(ok(t, ['get', 'svc', 'hello', '-o', 'jsonpath={.spec}']), /bogus/, 'and the field is dropped');
  t.match(
    ok(t, ['delete', 'svc', 'hello', '--dry-run=server']),
    /service "hello" deleted \(server dry run\)/,
  );
  t.equal(ok(t, ['get', 'svc', 'hello', '-o', 'name']), 'service/hello\n');
  t.equal(ok(t, ['delete', 'svc', 'hello']), 'service "hello" deleted\n');
  const gone = kubectl(['get', 'svc', 'hello']);
  t.equal(gone.err.trim(), 'Error from server (NotFound): services "hello" not found');
  const ns = kubectl(['get', 'ipaddresspool', '-n', 'metallb-system', 'nope']);
  t.equal(
    ns.err.trim(),
    'Error from server (NotFound): namespaces "metallb-system" not found',
    'kubectl names a missing namespace, as against a cluster without it',
  );
  // Not `kubectl create namespace`: that command sends protobuf, which vipmesh does not read (415).
  const nsYaml = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: metallb-system\n';
  const created = kubectl(['apply', '-f', '-'], {}, nsYaml);
  t.equal(created.out, 'namespace/metallb-system created\n', created.err);
  const pool = kubectl(['get', 'ipaddresspool', '-n', 'metallb-system', 'nope']);
  t.equal(pool.err.trim(), 'Error from server (NotFound): ipaddresspools.metallb.io "nope" not found');
});

t.test('the MetalLB manifests in config/ apply unchanged', async (t) => {
  for (const f of [
    'config/pools/ipaddresspool.yaml',
    'config/pools/dual-stack.yaml',
    'config/pools/legacy-configmap.yaml',
    'config/services/dual-stack.yaml',
    'config/services/loadbalancerips-annotation.yaml',
    'config/services/pinned-loadbalancerip.yaml',
    'config/services/shared-dns.yaml',
    'config/services/web-app.yaml',
  ]) {
    const r = kubectl(['apply', '-f', f]);
    t.equal(r.code, 0, `${f}: ${r.err}`);
    t.match(r.out, / (created|configured|unchanged)\n/);
    t.match(kubectl(['apply', '-f', f]).out, /unchanged/, `${f} a second time: unchanged`);
  }
  // An edited pool: kubectl sends a custom resource a merge patch; the list of addresses is replaced.
  const edited = readFileSync('config/pools/ipaddresspool.yaml', 'utf8').replace('    - 192.168.1.254\n', '');
  const r = kubectl(['apply', '-f', '-'], {}, edited);
  t.match(r.out, /^ipaddresspool\.metallb\.io\/lan configured\n/, r.err);
  t.same(
    ok(t, ['get', 'pool', 'lan', '-n', 'metallb-system', '-o', 'jsonpath={.spec.addresses}']),
    '["192.168.1.240-192.168.1.250","192.168.1.224/28"]',
  );
});

t.test('endpoints: get, explain, and field validation on the server', async (t) => {
  const ep = {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: 'web-app', namespace: 'default' },
    subsets: [{ addresses: [{ ip: '192.168.1.31' }, { ip: '192.168.1.32' }], ports: [{ port: 8080 }] }],
  };
  const applied = kubectl(['apply', '-f', '-'], {}, JSON.stringify(ep));
  t.match(applied.out, /^endpoints\/web-app (created|configured)/, applied.err);
  t.match(
    ok(t, ['get', 'ep', 'web-app']),
    /^NAME\s+ENDPOINTS\s+AGE\nweb-app\s+192\.168\.1\.31:8080,192\.168\.1\.32:8080\s/,
  );
  t.match(
    ok(t, ['get', 'endpointslices']),
    /^NAME\s+ADDRESSTYPE\s+PORTS\s+ENDPOINTS\s+AGE\nweb-app-1\s+IPv4\s+8080\s+192\.168\.1\.21,192\.168\.1\.22,192\.168\.1\.23\s/,
  );
  t.match(ok(t, ['explain', 'endpointslice.endpoints.nodeName']), /pod subnets/);
  const bad = kubectl(
    ['apply', '-f', '-'],
    {},
    JSON.stringify({ ...ep, subsets: [{ addresses: [{ ip: 'web-1' }] }] }),
  );
  t.not(bad.code, 0);
  t.match(bad.err, /subsets\[0\]\.addresses\[0\]\.ip.*not an IP address/);
  const typo = kubectl(['apply', '-f', '-'], {}, JSON.stringify({ ...ep, subsets: [{ adresses: [] }] }));
  t.not(typo.code, 0);
  t.match(typo.err, /adresses/);
});

t.test('nodes print STATUS, ROLES and VERSION', async (t) => {
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'pi1', labels: { 'node-role.kubernetes.io/control-plane': 'true' } },
    status: { nodeInfo: { version: 'v0.1.0' }, conditions: [{ type: 'Ready', status: 'True' }] },
  };
  const r = kubectl(['create', '-f', '-'], {}, JSON.stringify(node));
  t.equal(r.code, 0, r.err);
  t.match(
    ok(t, ['get', 'nodes']),
    /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\npi1\s+(Ready|NotReady|Unknown)\s+control-plane\s+\d+s\s+v0\.1\.0\n$/,
  );
});

t.test(
  'python3-kubernetes lists, then watches from the list and sees a change',
  { skip: havePyKube ? false : 'python3-kubernetes is not installed for /usr/bin/python3' },
  async (t) => {
    const script = `
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
lst = v1.list_namespaced_service('default')
print('LIST', ' '.join(sorted(s.metadata.name for s in lst.items)), flush=True)
w = watch.Watch()
for e in w.stream(v1.list_namespaced_service, 'default', resource_version=lst.metadata.resource_version, timeout_seconds=30):
    o = e['object']
    print(e['type'], o.metadata.name, o.metadata.labels.get('seen', ''), flush=True)
    if e['type'] == 'MODIFIED' and o.metadata.labels.get('seen') == 'py':
        w.stop()
`;
    const py = spawn('/usr/bin/python3', ['-c', script, kubeconfig], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => py.kill());
    let out = '';
    let err = '';
    py.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    py.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => py.once('exit', r));
    await until('the list', () => /^LIST.*\n/.test(out), { timeoutMs: 30_000 });
    t.match(out, /^LIST .*\bdev\b.*\bstage\b/);
    ok(t, ['label', 'svc', 'dev', 'seen=py']);
    t.equal(await exited, 0, err);
    t.match(out, /\nMODIFIED dev py\n/, 'the watch from the list resourceVersion saw the change');
    t.notMatch(out, /ADDED/, 'no replay of what the list already had');
  },
);
