/**
 * `host:port` text: IPv6 hosts go in brackets (`[2001:db8::1]:80`, as in URLs), so the port is what
 * follows the last colon. One splitter and one joiner for the listen flags, the URLs the daemons print
 * and the tunnel's targets.
 */

/** `host` as it goes before `:port` or into a URL: an IPv6 address (any host with a colon) in brackets. */
export function bracketHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** `host:port`, `[v6]:port` for an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return `${bracketHost(host)}:${port}`;
}

/**
 * Split `host:port` / `[v6]:port` at the last colon. The host loses its brackets; without one (`:port`, or
 * a bare port with no colon) it is `defaultHost`. The port is `Number()` of the rest, unchecked: see
 * {@link isPortNumber}. Callers decide which forms they accept and word their own errors.
 */
export function splitHostPort(address: string, defaultHost: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = i > 0 ? address.slice(0, i).replace(/^\[(.*)\]$/, '$1') : defaultHost;
  return { host, port: Number(address.slice(i + 1)) };
}

/** True for an integer 0-65535 (0: any free port). */
export function isPortNumber(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}
