/**
 * What happens to connections already open to an endpoint that is removed or turns unhealthy.
 *
 * TCP drains: its conntrack entries stay, so an established connection keeps its endpoint until it ends
 * (a pod that is being replaced finishes its requests; one that died resets them itself). UDP is reset:
 * a UDP "connection" lives as long as packets keep coming within the conntrack timeout, so a client that
 * keeps querying (DNS, syslog, a game) would stay pinned to a dead endpoint forever; deleting its entries
 * makes the next packet go through the Service chain again and reach a healthy endpoint. kube-proxy
 * makes the same split.
 */
import type { Logger } from '../log.js';
import type { RunCommand } from './command.js';

/** One flow family to forget: UDP traffic to `vip:port` that was sent to `endpoint`. */
export interface StaleFlow {
  vip: string;
  port: number;
  endpoint: string;
}

/** Deletes conntrack entries with the `conntrack` tool (Debian package `conntrack`). */
export class ConntrackCleaner {
  readonly #run: RunCommand;
  readonly #log: Logger;
  readonly #bin: string;
  #missingLogged = false;

  constructor(o: { run: RunCommand; logger: Logger; conntrack?: string }) {
    this.#run = o.run;
    this.#log = o.logger;
    this.#bin = o.conntrack ?? 'conntrack';
  }

  /** Delete the UDP entries of each flow; returns how many commands succeeded (none found counts). */
  async forget(flows: readonly StaleFlow[]): Promise<number> {
    let done = 0;
    for (const f of flows) {
      const family = f.vip.includes(':') ? 'ipv6' : 'ipv4';
      const r = await this.#run(this.#bin, [
        '-D',
        '-f',
        family,
        '-p',
        'udp',
        '--orig-dst',
        f.vip,
        '--dport',
        String(f.port),
        '--reply-src',
        f.endpoint,
      ]);
      // conntrack exits 1 when no entry matched: nothing to forget is success here.
      if (r.code === 0 || (r.code === 1 && /0 flow entries/.test(r.stderr))) done++;
      else if (r.code === 127) {
        if (!this.#missingLogged)
          this.#log.warn(
            { err: r.stderr },
            'conntrack tool missing: UDP flows to removed endpoints are not reset',
          );
        this.#missingLogged = true;
      } else this.#log.warn({ flow: f, err: r.stderr.trim() }, 'cannot delete conntrack entries');
    }
    return done;
  }
}
