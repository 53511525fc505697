/**
 * The shipped units under a real systemd: two containers boot the machine's systemd as PID 1
 * (test/netns/systemd-fixture.ts), each with its own network namespace on a lab bridge (server
 * 198.51.100.10, agent 198.51.100.11, a client namespace 198.51.100.99). vipmesh is installed in each as an
 * air-gapped node does it (the `npm pack` tarball unpacked under /usr/local, then the packaged
 * scripts/install.sh), and every check is what a user would do: systemctl, vipmesh get, arping from the
 * client, journalctl, then vipmesh-killall.sh and vipmesh-uninstall.sh.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { until } from '../../src/testing/until.js';
import { Lab } from './lab.js';
import { airGapPackage, Machine, systemdSkipReason } from './systemd-fixture.js';

const skip = systemdSkipReason();
const PKG = '/usr/local/lib/node_modules/vipmesh';
const EDGE_VIP = '198.51.100.200';
const CORE_VIP = '198.51.100.201';

/** Two pools, each announced only by the nodes its L2Advertisement selects, and one Service on each. */
const VIPS_YAML = ['edge', 'core']
  .map((name) => {
    const [ip, role] = name === 'edge' ? [EDGE_VIP, 'edge'] : [CORE_VIP, 'server'];
    return `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: ${name}, namespace: metallb-system}
spec: {addresses: [${ip}/32]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: ${name}, namespace: metallb-system}
spec:
  ipAddressPools: [${name}]
  nodeSelectors: [{matchLabels: {role: ${role}}}]
---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: ${ip}
  ports: [{name: http, protocol: TCP, port: 8080}]
`;
  })
  .join('---\n');

t.test('the units under systemd as PID 1', { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-systemd-'));
  const machines: Machine[] = [];
  let lab: Lab | undefined;
  t.teardown(async () => {
    await Promise.all(machines.map((m) => m.stop()));
    await lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const pkg = airGapPackage(dir);
  lab = await Lab.create();
  await lab.addNode('srv', { ipv4: '198.51.100.10/24' });
  await lab.addNode('agt', { ipv4: '198.51.100.11/24' });
  await lab.addNode('cli', { ipv4: '198.51.100.99/24' });
  // Both boot at once; one that booted is stopped by the teardown even when the other failed.
  const booted = await Promise.allSettled([
    Machine.boot(dir, 'vmsrv', lab.node('srv').ns, pkg),
    Machine.boot(dir, 'vmagt', lab.node('agt').ns, pkg),
  ]);
  for (const b of booted) if (b.status === 'fulfilled') machines.push(b.value);
  for (const b of booted) if (b.status === 'rejected') throw b.reason;
  const [server, agent] = machines as [Machine, Machine];
  const theLab = lab;

  /** The MAC that answers ARP for `ip` at the client, or undefined when nobody answers within `waitS`. */
  const arpAnswer = async (ip: string, waitS = 5): Promise<string | undefined> => {
    const r = await theLab.exec('cli', ['arping', '-c', '1', '-w', String(waitS), '-I', 'eth0', ip]);
    return /\[([0-9A-Fa-f:]{17})\]/.exec(r.stdout)?.[1]?.toLowerCase();
  };
  /** HOLDER of each Service, from `vipmesh get services -o wide` on the server. */
  const holders = async (): Promise<Record<string, string>> => {
    const out = await server.run('vipmesh get services -o wide');
    const rows = out.trim().split('\n').slice(1);
    return Object.fromEntries(rows.map((r) => r.trim().split(/\s+/)).map((c) => [c[1]!, c.at(-1)!]));
  };
  const sysctls = (m: Machine) =>
    m.run('cat /proc/sys/net/ipv4/conf/eth0/arp_ignore /proc/sys/net/ipv4/conf/eth0/arp_announce');

  await t.test(
    'without RuntimeDirectory=, /run is read-only and the error names the file and EROFS',
    async (t) => {
      // What the units did before: ProtectSystem=strict with no RuntimeDirectory=vipmesh.
      const r = await agent.sh(
        `systemd-run --quiet --wait --pipe -p ProtectSystem=strict -p AmbientCapabilities=CAP_NET_ADMIN ` +
          `-p AmbientCapabilities=CAP_NET_RAW node ${PKG}/dist/cli/main.js announce --vip 198.51.100.250 --interface eth0`,
      );
      t.not(r.code, 0, 'the announcer cannot start');
      t.match(r.stdout + r.stderr, 'writing /run/vipmesh/arp-sysctl.json failed (EROFS)');
      t.notMatch(r.stdout + r.stderr, /CAP_NET_ADMIN/, 'no capability is blamed');
      t.equal((await sysctls(agent)).split('\n')[0], '0', 'arp_ignore was not touched');
    },
  );

  await t.test('the server, installed as the README says, is active once it serves', async (t) => {
    const out = await server.run(
      `cd ${PKG} && INSTALL_VIPMESH_SKIP_NPM=true ` +
        `INSTALL_VIPMESH_EXEC='--node-ip 198.51.100.10 --cluster-cidr 198.18.0.0/16 --node-label role=server' sh scripts/install.sh`,
    );
    t.match(out, 'installing vipmesh as server');
    t.equal((await server.run('systemctl is-active vipmesh-server')).trim(), 'active');
    // Type=notify: `systemctl restart` in the installer returned only after READY=1, so the API answers now.
    t.match(await server.run('vipmesh get nodes'), /^vmsrv\s+Ready/m);
    t.equal((await server.run('stat -c %a /var/lib/vipmesh')).trim(), '700', 'StateDirectoryMode');
    t.match(await server.run('cat /run/flannel/subnet.env'), 'FLANNEL_SUBNET=198.18.');
    // The sandbox as the daemon sees it: every path it writes is its own writable mount, the rest is
    // read-only. (systemd 252 in this container leaves /run itself writable once ProtectControlGroups=yes
    // is set, so a missing RuntimeDirectory= would not fail a write here; the mount table still tells.)
    const pid = (await server.run('systemctl show -P MainPID vipmesh-server')).trim();
    const mounts = new Map(
      (await server.run(`cat /proc/${pid}/mountinfo`))
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map((f) => [f[4]!, f[5]!.split(',')[0]!] as const),
    );
    for (const path of ['/run/vipmesh', '/run/flannel', '/var/lib/vipmesh', '/etc/vipmesh']) {
      t.equal(mounts.get(path), 'rw', `${path} is named in the unit (a writable mount for the daemon)`);
    }
    t.equal(mounts.get('/'), 'ro', 'the rest of / is read-only (ProtectSystem=strict)');
    t.equal(mounts.get('/usr/local'), 'ro', '/usr/local is read-only');
    const docs = (await server.run('systemctl show -P Documentation vipmesh-server')).trim().split(/\s+/);
    for (const url of docs) {
      t.equal((await server.sh(`test -f ${url.replace('file://', '')}`)).code, 0, `${url} exists`);
    }
  });

  await t.test('an agent installed in a second container joins', async (t) => {
    const token = (await server.run('vipmesh token')).trim();
    await agent.run(
      `cd ${PKG} && INSTALL_VIPMESH_SKIP_NPM=true VIPMESH_URL=https://198.51.100.10:6443 VIPMESH_TOKEN='${token}' ` +
        `INSTALL_VIPMESH_EXEC='--node-ip 198.51.100.11 --node-label role=edge' sh scripts/install.sh`,
    );
    t.equal((await agent.run('systemctl is-active vipmesh-agent')).trim(), 'active');
    await until('vmagt Ready on the server', async () =>
      /^vmagt\s+Ready/m.test(await server.run('vipmesh get nodes')),
    );
    // CAP_SYS_NICE lets the liveness worker make itself real-time; no other thread is.
    for (const [m, unit] of [
      [agent, 'vipmesh-agent'],
      [server, 'vipmesh-server'],
    ] as const) {
      await until(`${unit}: its liveness threads SCHED_RR 1, the rest normal`, async () => {
        const pid = (await m.run(`systemctl show -P MainPID ${unit}`)).trim();
        const classes = (await m.run(`ps -L -o cls=,rtprio= -p ${pid}`)).trim().split('\n');
        const rt = classes.filter((c) => !/^\s*TS\s+-$/.test(c));
        return rt.length > 0 && rt.every((c) => /^\s*RR\s+1$/.test(c));
      });
    }
  });

  await t.test('VIPs applied with vipmesh apply answer ARP from the client', async (t) => {
    await server.run(`cat > /root/vips.yaml <<'EOF'\n${VIPS_YAML}EOF\nvipmesh apply -f /root/vips.yaml`);
    t.same(
      await until('both Services held', async () => {
        const h = await holders();
        return h['edge'] !== '<none>' && h['core'] !== '<none>' && h['edge'] !== undefined && h;
      }),
      { edge: 'vmagt', core: 'vmsrv' },
    );
    t.equal(await arpAnswer(EDGE_VIP), theLab.node('agt').mac, `${EDGE_VIP} answered by the agent`);
    t.equal(await arpAnswer(CORE_VIP), theLab.node('srv').mac, `${CORE_VIP} answered by the server`);
    t.equal(await sysctls(agent), '1\n2\n', 'arp_ignore=1, arp_announce=2 on the agent');
  });

  // The server's own VIP may be held by no other node (its L2Advertisement selects role=server): its local
  // agent hands over (the leave marks the server's node NotReady, AgentStopping), nothing can take it, and
  // the server takes it back once it runs again. The agent's VIP and node are not touched.
  await t.test(
    'systemctl restart of the server: it leaves and comes back; the agent is untouched',
    async (t) => {
      const before = (await server.run('systemctl show -P MainPID vipmesh-server')).trim();
      const cursorOf = async (m: Machine, unit: string) =>
        /-- cursor: (\S+)/.exec(await m.run(`journalctl -u ${unit} -n 0 --show-cursor --no-pager`))?.[1];
      const cursor = await cursorOf(server, 'vipmesh-server');
      const agentCursor = await cursorOf(agent, 'vipmesh-agent');
      await server.run('systemctl restart vipmesh-server');
      t.equal((await server.run('systemctl is-active vipmesh-server')).trim(), 'active');
      t.not((await server.run('systemctl show -P MainPID vipmesh-server')).trim(), before, 'a new process');
      // The server's node is Ready again once its local agent is back; then its VIP is placed on it again.
      t.same(
        await until(
          'both VIPs held again',
          async () => {
            const h = await holders();
            return h['edge'] === 'vmagt' && h['core'] === 'vmsrv' && h;
          },
          { timeoutMs: 30_000, stepMs: 100 },
        ),
        { edge: 'vmagt', core: 'vmsrv' },
        'the same holders',
      );
      t.equal(
        await until('the server answers for its VIP', () => arpAnswer(CORE_VIP, 2), { timeoutMs: 30_000 }),
        theLab.node('srv').mac,
        'the server holds its VIP again',
      );
      t.equal(await arpAnswer(EDGE_VIP), theLab.node('agt').mac, 'the agent kept its VIP');
      const since = await server.run(
        `journalctl -u vipmesh-server --after-cursor '${cursor}' -o cat --no-pager`,
      );
      t.match(since, /asked to leave/, "the server's local agent asked to leave before the restart");
      if (!t.notMatch(since, /node NotReady.*vmagt/, "the agent's node never went NotReady")) {
        const agentSince = await agent.run(
          `journalctl -u vipmesh-agent --after-cursor '${agentCursor}' -o short-precise --no-pager`,
        );
        t.comment(`the agent meanwhile:\n${agentSince}`);
      }
      t.notMatch(
        since,
        /vip=198\.51\.100\.200 .*node=vmsrv|vip=198\.51\.100\.201 .*node=vmagt/,
        'no VIP assigned elsewhere',
      );
      t.match(since, 'server: shutting down signal=SIGTERM', 'the journal has the restart');
    },
  );

  await t.test('kill -9 of the agent: systemd restarts it and the VIP comes back', async (t) => {
    const pid = (await agent.run('systemctl show -P MainPID vipmesh-agent')).trim();
    await agent.run(`kill -9 ${pid}`);
    await until(
      'a new agent process, active',
      async () => {
        const now = (await agent.run('systemctl show -P MainPID vipmesh-agent')).trim();
        const active = (await agent.sh('systemctl is-active vipmesh-agent')).stdout.trim();
        return now !== '0' && now !== pid && active === 'active';
      },
      { timeoutMs: 30_000, stepMs: 100 },
    );
    t.ok(Number((await agent.run('systemctl show -P NRestarts vipmesh-agent')).trim()) >= 1, 'NRestarts');
    t.equal(
      await until('the VIP answered again', () => arpAnswer(EDGE_VIP, 2), { timeoutMs: 30_000 }),
      theLab.node('agt').mac,
    );
  });

  await t.test('systemctl stop releases the VIPs and restores the sysctls', async (t) => {
    await agent.run('systemctl stop vipmesh-agent');
    t.notMatch(await agent.run('ip -4 addr show dev lo'), EDGE_VIP, 'the VIP left lo');
    // The originals were saved before the kill -9 and kept in /run/vipmesh across the restart: 0 and 0.
    t.equal(await sysctls(agent), '0\n0\n', 'arp_ignore and arp_announce are back to 0');
    t.equal(await arpAnswer(EDGE_VIP, 2), undefined, 'nobody answers for the VIP');
  });

  await t.test('journalctl -u shows readable lines', async (t) => {
    const lines = (await agent.run('journalctl -u vipmesh-agent -o cat --no-pager')).trim().split('\n');
    t.ok(
      lines.some((l) => /holding VIP .*198\.51\.100\.200/.test(l)),
      'a line says which VIP is held',
    );
    t.same(
      lines.filter((l) => l.startsWith('{')),
      [],
      'no JSON lines',
    );
    const errs = await agent.run('journalctl -u vipmesh-agent -p warning -o cat --no-pager');
    t.notMatch(errs, /holding VIP/, 'info lines are not logged at warning priority');
  });

  await t.test(
    'vipmesh-killall.sh stops everything and releases the data plane, keeping state',
    async (t) => {
      t.match(await server.run('ip -4 route show proto 86'), /./, 'host-gw routes before');
      const token = (await server.run('vipmesh token')).trim();
      // What a daemon killed with SIGKILL leaves behind: a VIP on lo under vipmesh's label.
      await server.run('ip addr add 198.51.100.222/32 dev lo label lo:vm');
      await server.run('vipmesh-killall.sh');
      t.notMatch(await server.run('ip -4 addr show dev lo'), '198.51.100.222', 'a left-over VIP is removed');
      t.equal((await server.sh('systemctl is-active vipmesh-server')).stdout.trim(), 'inactive');
      t.notMatch(await server.run('ip -4 addr show dev lo'), CORE_VIP, 'the VIP left lo');
      t.equal(await server.run('ip -4 route show proto 86'), '', 'routes of protocol 86 flushed');
      t.equal(await sysctls(server), '0\n0\n', 'sysctls restored');
      // A re-install (an upgrade) that is told not to start: the flags of the first install are kept.
      const again = await server.run(
        `cd ${PKG} && INSTALL_VIPMESH_SKIP_NPM=true INSTALL_VIPMESH_SKIP_START=true sh scripts/install.sh`,
      );
      t.match(again, 'keeping the flags of the earlier install');
      t.equal(
        (await server.sh('systemctl is-active vipmesh-server')).stdout.trim(),
        'inactive',
        'not started',
      );
      t.match(
        await server.run('cat /etc/default/vipmesh-server'),
        'VIPMESH_ARGS=--node-ip 198.51.100.10 --cluster-cidr 198.18.0.0/16 --node-label role=server',
      );
      await server.run('systemctl start vipmesh-server');
      t.equal((await server.run('vipmesh token')).trim(), token, 'the same CA and token after a start');
    },
  );

  await t.test('vipmesh-uninstall.sh leaves nothing of vipmesh behind', async (t) => {
    await agent.run('systemctl start vipmesh-agent');
    await until('the agent holds its VIP again', () => arpAnswer(EDGE_VIP, 2), { timeoutMs: 30_000 });
    t.match(await agent.run('ip -4 route show proto 86'), /./, 'host-gw routes before');
    const out = await agent.run('vipmesh-uninstall.sh');
    t.match(out, 'vipmesh is uninstalled');
    const looked = {
      units: 'systemctl list-unit-files "vipmesh*" --no-legend',
      'loaded units': 'systemctl list-units --all "vipmesh*" --no-legend',
      processes: 'ps -e -o args= | grep -v grep | grep vipmesh || true',
      'VIPs on lo (label lo:vm, protocol 0x76)':
        'ip -4 addr show dev lo label lo:vm; ip addr show dev lo proto 0x76',
      'routes of protocol 86': 'ip -4 route show proto 86; ip -6 route show proto 86',
      'files named *vipmesh* (outside the journal)':
        'find / -xdev -name "*vipmesh*" -not -path "/var/log/journal/*" -not -path "/proc/*"',
      'subnet.env': 'ls /run/flannel 2>/dev/null || true',
    };
    for (const [what, cmd] of Object.entries(looked)) {
      const r = await agent.sh(cmd);
      t.equal(r.stdout.trim(), '', `no ${what}`);
    }
    t.equal(await sysctls(agent), '0\n0\n', 'arp_ignore and arp_announce as before the install');
    // /usr/local is its own mount in the container, so -xdev above skipped it: look there too.
    t.equal((await agent.run('find /usr/local -name "*vipmesh*"')).trim(), '', 'nothing in /usr/local');
    t.equal(await arpAnswer(EDGE_VIP, 2), undefined, 'nobody answers for the VIP');
    t.comment(`looked for: ${Object.keys(looked).join('; ')}; the sysctls; /usr/local`);
  });
});
