/**
 * Real kubectl (Debian's) against a real `vipmesh server` process on loopback, through the kubeconfig the
 * server writes: version, discovery (api-resources, short names), get in every output form, explain from
 * the served OpenAPI, apply of the example MetalLB pools (created, then unchanged), kubectl's own field
 * validation naming an unknown field, delete, and `vipmesh kubeconfig` for another address.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { until } from '../src/testing/until.js';
import { packageVersion } from '../src/util/package-version.js';

const haveKubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

/** tsx children stay out of tap's coverage (see childEnv in src/lab). */
const childEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' };

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function exec(
  file: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env: opts.env ?? childEnv, timeout: 60_000 }, (err, out, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, out, err: stderr });
    });
    child.stdin?.end(opts.input ?? '');
  });
}

async function startServer(dir: string): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'server',
      '--data-dir',
      join(dir, 'data'),
      '--https-listen-port',
      '0',
      '--bind-address',
      '127.0.0.1',
      '--disable-agent',
      '--metrics-bind-address',
      '',
      '--node-name',
      'kubectl-test',
      '--admin-config',
      join(dir, 'kubeconfig.yaml'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv },
  );
  process.once('exit', () => proc.kill('SIGKILL'));
  let log = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('"msg":"server ready"')) resolve();
    });
    proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    proc.once('exit', (code) => reject(new Error(`vipmesh server exited with ${code}: ${log}`)));
  });
  return proc;
}

async function main(t: Test): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kubectl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startServer(dir);
  t.teardown(async () => {
    const gone = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await gone;
  });
  const kubeconfig = join(dir, 'kubeconfig.yaml');
  // HOME too: nothing read from or written to the user's ~/.kube.
  const env = { ...childEnv, HOME: dir, KUBECONFIG: '' };
  const kubectl = (args: string[], input?: string, config = kubeconfig) =>
    exec('kubectl', ['--kubeconfig', config, '--cache-dir', join(dir, 'cache'), ...args], {
      env,
      ...(input === undefined ? {} : { input }),
    });
  const ok = async (t: Test, args: string[], input?: string): Promise<string> => {
    const r = await kubectl(args, input);
    t.equal(r.code, 0, `kubectl ${args.join(' ')}${r.code === 0 ? '' : `: ${r.err}`}`);
    return r.out;
  };

  t.test('the written admin config is a private kubeconfig kubectl uses as it is', async (t) => {
    t.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    t.match(parseYaml(readFileSync(kubeconfig, 'utf8')), { kind: 'Config', 'current-context': 'vipmesh' });
    const v = JSON.parse(await ok(t, ['version', '-o', 'json'])) as { serverVersion: Record<string, string> };
    t.match(v.serverVersion, { major: '1', minor: '32', gitVersion: `v1.32.0+vipmesh-${packageVersion()}` });
    t.same((await ok(t, ['api-versions'])).trim().split('\n'), [
      'discovery.k8s.io/v1',
      'metallb.io/v1beta1',
      'v1',
    ]);
  });

  t.test('api-resources: names, short names, scope and kinds', async (t) => {
    const rows = (await ok(t, ['api-resources', '--no-headers']))
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    t.same(rows, [
      ['configmaps', 'cm', 'v1', 'true', 'ConfigMap'],
      ['endpoints', 'ep', 'v1', 'true', 'Endpoints'],
      ['events', 'ev', 'v1', 'true', 'Event'],
      ['namespaces', 'ns', 'v1', 'false', 'Namespace'],
      ['nodes', 'no', 'v1', 'false', 'Node'],
      ['services', 'svc', 'v1', 'true', 'Service'],
      ['endpointslices', 'discovery.k8s.io/v1', 'true', 'EndpointSlice'],
      ['ipaddresspools', 'pool', 'metallb.io/v1beta1', 'true', 'IPAddressPool'],
      ['l2advertisements', 'l2adv', 'metallb.io/v1beta1', 'true', 'L2Advertisement'],
    ]);
  });

  t.test('apply the example MetalLB pools: created, then unchanged; get in every form', async (t) => {
    const pools = 'config/pools/ipaddresspool.yaml';
    t.same((await ok(t, ['apply', '-f', pools])).trim().split('\n'), [
      'ipaddresspool.metallb.io/lan created',
      'ipaddresspool.metallb.io/public created',
      'l2advertisement.metallb.io/lan created',
    ]);
    t.same((await ok(t, ['apply', '-f', pools])).trim().split('\n'), [
      'ipaddresspool.metallb.io/lan unchanged',
      'ipaddresspool.metallb.io/public unchanged',
      'l2advertisement.metallb.io/lan unchanged',
    ]);
    t.match(
      await ok(t, ['get', 'ipaddresspools', '-A']),
      /^NAMESPACE\s+NAME\s+AUTO ASSIGN\s+AVOID BUGGY IPS\s+ADDRESSES\nmetallb-system\s+lan\s+.*\nmetallb-system\s+public\s/,
    );
    t.equal(
      await ok(t, ['get', 'pool', '-n', 'metallb-system', '-o', 'name']),
      'ipaddresspool.metallb.io/lan\nipaddresspool.metallb.io/public\n',
    );
    const lan = parseYaml(await ok(t, ['get', 'ipaddresspool', 'lan', '-n', 'metallb-system', '-o', 'yaml']));
    t.match(lan, {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      spec: { addresses: ['192.168.1.240-192.168.1.250', '192.168.1.224/28', '192.168.1.254'] },
    });
    t.equal(
      await ok(t, ['get', 'l2adv', 'lan', '-n', 'metallb-system', '-o', 'jsonpath={.spec.interfaces[0]}']),
      'eth0',
    );

    // A Service: the server's IPAM gives it the pinned address, which kubectl reads back.
    t.equal(
      await ok(t, ['apply', '-f', 'config/services/pinned-loadbalancerip.yaml']),
      'service/web created\n',
    );
    t.match(
      await ok(t, ['get', 'svc', '-A']),
      /^NAMESPACE\s+NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\ndefault\s+web\s/,
    );
    const ip = await until('the Service to get its address', async () => {
      const out = await ok(t, ['get', 'svc', 'web', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}']);
      return out === '' ? undefined : out;
    });
    t.equal(ip, '192.168.1.245');
    t.match(await ok(t, ['describe', 'svc', 'web']), /Name:\s+web\nNamespace:\s+default\n/);
    t.equal(
      await ok(t, ['replace', '-f', 'config/services/pinned-loadbalancerip.yaml']),
      'service/web replaced\n',
    );
    const json = JSON.parse(await ok(t, ['get', 'services', '-o', 'json'])) as {
      kind: string;
      items: unknown[];
    };
    t.match(json, {
      kind: 'List',
      items: [{ kind: 'Service', metadata: { name: 'web', namespace: 'default' } }],
    });
    const ns = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: edge, labels: {zone: edge}}\n';
    t.equal(await ok(t, ['apply', '-f', '-'], ns), 'namespace/edge created\n');
    t.equal(await ok(t, ['get', 'ns', '-o', 'name']), 'namespace/edge\n');
  });

  t.test('explain reads the served OpenAPI', async (t) => {
    const ip = await ok(t, ['explain', 'service.spec.loadBalancerIP']);
    t.match(ip, /KIND:\s+Service\nVERSION:\s+v1\n\nFIELD: loadBalancerIP <string>/);
    t.match(ip, /must lie in a pool/);
    const spec = await ok(t, ['explain', 'ipaddresspool.spec']);
    t.match(spec, /GROUP:\s+metallb\.io\nKIND:\s+IPAddressPool\nVERSION:\s+v1beta1/);
    t.match(spec, /addresses\s+<\[\]string>/);
    t.match(spec, /autoAssign\s+<boolean>/);
    t.match(await ok(t, ['explain', 'svc.spec.ports.port']), /FIELD: port <integer>/);
    t.match(
      await ok(t, ['explain', 'service.spec.loadBalancerIP', '--output', 'plaintext-openapiv2']),
      /FIELD:\s+loadBalancerIP <string>\n\nDESCRIPTION:\n\s+The address to give this Service/,
    );
    t.match(await ok(t, ['explain', 'l2advertisements.spec.interfaces']), /FIELD: interfaces <\[\]string>/);
  });

  t.test("the server's strict field validation names an unknown field; nothing is created", async (t) => {
    const bad =
      'apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: typo, namespace: default}\nspec: {adresses: [198.51.100.0/28]}\n';
    const r = await kubectl(['apply', '-f', '-'], bad);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /Error from server \(BadRequest\): error when creating "STDIN": IPAddressPool in version "v1beta1" cannot be handled as a IPAddressPool: strict decoding error: unknown field "spec\.adresses"/,
    );
    const svc =
      'apiVersion: v1\nkind: Service\nmetadata: {name: typo}\nspec: {type: LoadBalancer, ports: [{port: 80}], loadBalancerIp: 198.51.100.1}\n';
    const r2 = await kubectl(['create', '-f', '-'], svc);
    t.equal(r2.code, 1);
    t.match(
      r2.err,
      /Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec\.loadBalancerIp"/,
    );
    const get = await kubectl(['get', 'pool', 'typo']);
    t.match(get.err, /NotFound.*"typo" not found/);
  });

  t.test('delete by name and by file', async (t) => {
    t.equal(await ok(t, ['delete', 'svc', 'web']), 'service "web" deleted\n');
    const gone = await kubectl(['get', 'svc', 'web']);
    t.equal(gone.code, 1);
    t.match(gone.err, /Error from server \(NotFound\): services "web" not found/);
    t.same((await ok(t, ['delete', '-f', 'config/pools/ipaddresspool.yaml'])).trim().split('\n'), [
      'ipaddresspool.metallb.io "lan" deleted',
      'ipaddresspool.metallb.io "public" deleted',
      'l2advertisement.metallb.io "lan" deleted',
    ]);
    t.equal((await kubectl(['get', 'pool', '-A'])).err, 'No resources found\n');
  });

  t.test('the join token discovers but reads no objects', async (t) => {
    const token = readFileSync(join(dir, 'data', 'server', 'token'), 'utf8').trim();
    const admin = (
      parseYaml(readFileSync(kubeconfig, 'utf8')) as { users: Array<{ user: { token: string } }> }
    ).users[0]!.user.token;
    const file = join(dir, 'join.yaml');
    writeFileSync(file, readFileSync(kubeconfig, 'utf8').replace(admin, token), { mode: 0o600 });
    const resources = await kubectl(['api-resources', '-o', 'name'], undefined, file);
    t.equal(resources.code, 0, resources.err);
    t.match(resources.out, /^services$/m);
    const get = await kubectl(['get', 'svc', '-A'], undefined, file);
    t.equal(get.code, 1);
    t.match(
      get.err,
      /Error from server \(Forbidden\): Forbidden: the join token does not grant access to the API/,
    );
  });

  t.test('vipmesh kubeconfig: one for another address, from the data directory', async (t) => {
    const url = (
      parseYaml(readFileSync(kubeconfig, 'utf8')) as { clusters: Array<{ cluster: { server: string } }> }
    ).clusters[0]!.cluster.server;
    const other = url.replace('127.0.0.1', 'localhost');
    const r = await exec(process.execPath, [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'kubeconfig',
      '--server',
      other,
      '--data-dir',
      join(dir, 'data'),
    ]);
    t.equal(r.code, 0, r.err);
    const file = join(dir, 'other.yaml');
    writeFileSync(file, r.out, { mode: 0o600 });
    t.match(parseYaml(r.out), { clusters: [{ cluster: { server: other } }] });
    const nodes = await kubectl(['get', 'nodes'], undefined, file);
    t.equal(nodes.code, 0, nodes.err);
    // And without --server: the URL of the admin config.
    const local = await exec(process.execPath, [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'kubeconfig',
      '--data-dir',
      join(dir, 'data'),
      '--admin-config',
      kubeconfig,
    ]);
    t.match(parseYaml(local.out), { clusters: [{ cluster: { server: url } }] });
  });
}

t.test(
  'kubectl against a vipmesh server',
  { skip: haveKubectl ? false : 'kubectl is not installed (Debian package kubectl)' },
  main,
);
