/**
 * A tiny server for the lab: answers every TCP connection and every UDP datagram on `port` (all
 * addresses) with its name and a newline. Run inside a node namespace: `name-server.js NAME PORT`.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const [name = 'node', portText = '8080'] = process.argv.slice(2);
const port = Number(portText);

const tcp = createServer((sock) => {
  sock.on('error', () => {});
  sock.end(`${name}\n`);
});
tcp.listen({ port, host: '::', ipv6Only: false }, () => process.stdout.write(`listening ${port}\n`));

for (const type of ['udp4', 'udp6'] as const) {
  const udp = createSocket({ type, ipv6Only: type === 'udp6' });
  udp.on('message', (_msg, rinfo) => udp.send(`${name}\n`, rinfo.port, rinfo.address));
  udp.on('error', () => {});
  udp.bind(port);
}
