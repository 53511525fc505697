/**
 * Test fixture: one backend. HTTP on --http answers `<name> <client address>`; --udp echoes `<name>` to
 * each datagram; --tcp writes `<name>\n` to each connection and closes it. Prints `ready` when listening.
 *
 *   node --import tsx test/lb-fixtures/backend.ts --name b1 [--http 8080] [--udp 5353] [--tcp 5353]
 */
import { createSocket } from 'node:dgram';
import { createServer as createHttp } from 'node:http';
import { createServer as createTcp } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    http: { type: 'string' },
    udp: { type: 'string' },
    tcp: { type: 'string' },
  },
});
const name = values.name!;
const waits: Array<Promise<void>> = [];
if (values.http !== undefined) {
  // `/bulk?mb=N`: N MiB of zeros (throughput); anything else: who answered, and whom it saw.
  const chunk = Buffer.alloc(1 << 20);
  const s = createHttp((req, res) => {
    const mb = /^\/bulk\?mb=(\d+)$/.exec(req.url ?? '');
    if (mb === null) {
      res.end(`${name} ${req.socket.remoteAddress?.replace(/^::ffff:/, '')}\n`);
      return;
    }
    let left = Number(mb[1]);
    res.setHeader('content-length', left * chunk.length);
    const more = (): void => {
      while (left > 0) {
        left--;
        if (!res.write(chunk)) {
          res.once('drain', more);
          return;
        }
      }
      res.end();
    };
    more();
  });
  waits.push(new Promise((r) => s.listen(Number(values.http), '::', r)));
}
if (values.udp !== undefined) {
  const s = createSocket({ type: 'udp6', ipv6Only: false });
  s.on('message', (_m, from) => s.send(`${name}\n`, from.port, from.address));
  waits.push(new Promise((r) => s.bind(Number(values.udp), '::', r)));
}
if (values.tcp !== undefined) {
  const s = createTcp((c) => {
    c.on('error', () => undefined); // a health check resets its connection at once
    c.end(`${name}\n`);
  });
  waits.push(new Promise((r) => s.listen(Number(values.tcp), '::', r)));
}
await Promise.all(waits);
process.stdout.write('ready\n');
process.once('SIGTERM', () => process.exit(0));
