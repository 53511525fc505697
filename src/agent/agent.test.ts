import t from 'tap';
import { localRegistration } from './agent.js';

t.test('localRegistration: the node IPs given, labels with the hostname label, interfaces', async (t) => {
  const r = localRegistration({ nodeName: 'pi1', nodeIps: ['198.51.100.7'], labels: { zone: 'a' } });
  t.same(
    r.addresses?.filter((a) => a.type === 'InternalIP'),
    [{ type: 'InternalIP', address: '198.51.100.7' }],
  );
  t.equal(r.labels?.['kubernetes.io/hostname'], 'pi1');
  t.equal(r.labels?.['zone'], 'a');
  t.ok(Array.isArray(r.interfaces));
  const auto = localRegistration({ nodeName: 'pi1' });
  t.ok(
    (auto.addresses ?? []).some((a) => a.type === 'InternalIP'),
    'an address is found without --node-ip',
  );
});
