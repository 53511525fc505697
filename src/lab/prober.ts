/**
 * The lab's client: connects to TARGET:PORT over TCP every INTERVAL ms (each attempt times out after
 * TIMEOUT ms) and prints one JSON line per attempt: `{"t": epoch ms, "ok": true, "from": "n2"}` or
 * `{"t": ..., "ok": false, "why": "ECONNRESET"}`. `t` is when the attempt started. Run inside the client namespace:
 * `prober.js TARGET PORT [INTERVAL=5] [TIMEOUT=200]`.
 */
import { connect } from 'node:net';

const [target = '198.51.100.100', portText = '8080', intervalText = '5', timeoutText = '200'] =
  process.argv.slice(2);
const port = Number(portText);
const interval = Number(intervalText);
const timeout = Number(timeoutText);

function now(): number {
  return performance.timeOrigin + performance.now();
}

function attempt(): void {
  const t = now();
  let data = '';
  let done = false;
  const finish = (ok: boolean, why?: string): void => {
    if (done) return;
    done = true;
    sock.destroy();
    const line = ok ? { t, ok, from: data.trim() } : { t, ok, why: why ?? 'closed without an answer' };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  const sock = connect({ host: target, port, timeout });
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    data += d;
  });
  sock.on('end', () => finish(data.length > 0));
  sock.on('timeout', () => finish(false, 'timeout'));
  sock.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
}

// Real time on purpose: the lab measures failover as a client on the wire sees it.
setInterval(attempt, interval);
