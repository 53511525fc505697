import { isIP } from 'node:net';
import { VipmeshError } from '../errors.js';
import { joinHostPort } from '../util/host-port.js';

/** A stream target: `tcp` to `host:port`. */
export interface Target {
  network: 'tcp';
  host: string;
  port: number;
}

/** Parse `host:port` (`[v6]:port` for IPv6); undefined when it is not one. */
function parseAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address);
  if (m === null) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

/** Parse a wire target `tcp:host:port`. */
export function parseTarget(text: string): Target | undefined {
  if (!text.startsWith('tcp:')) return undefined;
  const a = parseAddress(text.slice(4));
  return a === undefined ? undefined : { network: 'tcp', ...a };
}

/** The wire form of `dial(network, address)`; a VIPMESH_TUNNEL_BAD_TARGET when it is not `tcp`, `host:port`. */
export function targetOf(network: string, address: string): string {
  const a = network === 'tcp' ? parseAddress(address) : undefined;
  if (a === undefined) {
    throw new VipmeshError(
      'VIPMESH_TUNNEL_BAD_TARGET',
      `cannot dial ${network} ${address}: want network "tcp" and address host:port`,
    );
  }
  return `tcp:${joinHostPort(a.host, a.port)}`;
}

/** Decides whether a stream to `target` may be opened here (true) or is refused. */
export type AllowFn = (target: Target) => boolean;

/** An allow-list of exact `host:port` entries (`[v6]:port` for IPv6). */
export function allowList(entries: Iterable<string>): AllowFn {
  const set = new Set<string>();
  for (const e of entries) {
    const a = parseAddress(e);
    if (a === undefined) {
      throw new VipmeshError('VIPMESH_TUNNEL_BAD_TARGET', `allow-list entry "${e}" is not host:port`);
    }
    set.add(joinHostPort(a.host, a.port));
  }
  return (t) => set.has(joinHostPort(t.host, t.port));
}

/** The agent's default allow-list: each registered port on 127.0.0.1 and ::1. */
export function loopbackPorts(ports: Iterable<number>): string[] {
  return [...ports].flatMap((p) => [`127.0.0.1:${p}`, `[::1]:${p}`]);
}
