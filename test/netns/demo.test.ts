import { spawn } from 'node:child_process';
import t from 'tap';
import { canUseNetns, childEnv, nsExec } from './lab.js';

t.test(
  'vipmesh demo: the client reaches the VIP, survives a pulled cable, and the lab is gone after',
  { skip: canUseNetns() ? false : 'needs root and ip netns' },
  async (t) => {
    const before = (await nsExec(undefined, ['ip', 'netns', 'list'])).stdout;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo', '--cuts', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv(['--import', 'tsx'], process.env),
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    t.equal(code, 0, `demo exits 0:\n${out}`);
    t.match(out, /the client reaches 198\.51\.100\.100:8080 and n[12] answers/);
    t.match(
      out,
      /hello\s+LoadBalancer\s+\S+\s+198\.51\.100\.100\s+8080\/TCP\s+\S+\s+\S+\s+demo\s+n[12]/,
      'get services -o wide shows the pool and the holder',
    );
    const outages = [...out.matchAll(/without service for (\d+) ms; (n[12]) answers now/g)];
    t.equal(outages.length, 2, 'two cuts measured');
    for (const m of outages)
      t.ok(Number(m[1]) > 0 && Number(m[1]) < 5000, `outage ${m[1]} ms is a real, bounded figure`);
    t.match(out, /tearing the lab down/);
    const after = (await nsExec(undefined, ['ip', 'netns', 'list'])).stdout;
    const mine = (s: string) => s.split('\n').filter((l) => l.startsWith(`vmlab-${child.pid}-`));
    t.same(mine(after), [], 'no namespace of the demo is left');
    t.ok(mine(before).length === 0);
  },
);

t.test(
  'vipmesh demo: Ctrl-C says it is tearing down, removes the lab and ends by SIGINT',
  { skip: canUseNetns() ? false : 'needs root and ip netns' },
  async (t) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv(['--import', 'tsx'], process.env),
    });
    let out = '';
    const serverUp = new Promise<void>((resolve) => {
      const onData = (d: Buffer): void => {
        out += d;
        if (/server up on https:/.test(out)) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, sig) => resolve(sig)),
    );
    await Promise.race([serverUp, exited]);
    const during = (await nsExec(undefined, ['ip', 'netns', 'list'])).stdout;
    const mine = (s: string) => s.split('\n').filter((l) => l.startsWith(`vmlab-${child.pid}-`));
    t.ok(mine(during).length > 0, `the lab exists while the demo runs:\n${out}`);
    child.kill('SIGINT');
    t.equal(await exited, 'SIGINT', 'the process ends by the signal, as an interrupted program does');
    t.match(out, /Ctrl-C: tearing the lab down \(daemons, namespaces, temp files\)\.\.\.\n.*the lab is gone/);
    const after = (await nsExec(undefined, ['ip', 'netns', 'list'])).stdout;
    t.same(mine(after), [], 'no namespace of the demo is left');
  },
);
