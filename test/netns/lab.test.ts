import t from 'tap';
import { canUseNetns, Lab, nsExec } from './lab.js';

const root = canUseNetns();

t.test(
  'the lab cables two nodes to one bridge and tears everything down',
  { skip: root ? false : 'needs root and ip netns' },
  async (t) => {
    const lab = await Lab.create();
    t.teardown(() => lab.destroy());
    await lab.addNode('n1', { ipv4: '198.51.100.11/24', ipv6: '2001:db8::11/64' });
    await lab.addNode('n2', { ipv4: '198.51.100.12/24', ipv6: '2001:db8::12/64' });
    const ping4 = await lab.exec('n1', ['ping', '-c1', '-W2', '198.51.100.12']);
    t.equal(ping4.code, 0, 'n1 pings n2 over IPv4');
    const ping6 = await lab.exec('n1', ['ping', '-6', '-c1', '-W2', '2001:db8::12']);
    t.equal(ping6.code, 0, 'n1 pings n2 over IPv6');
    await lab.cut('n2');
    const cut = await lab.exec('n1', ['ping', '-c1', '-W1', '198.51.100.12']);
    t.not(cut.code, 0, 'no answer with the cable pulled');
    await lab.restore('n2');
    const names = [...lab.nodes.values()].map((n) => n.ns).concat(lab.switchNs);
    await lab.destroy();
    const list = await nsExec(undefined, ['ip', 'netns', 'list']);
    for (const ns of names) t.notOk(list.stdout.includes(ns), `${ns} is gone`);
  },
);
