/**
 * The pure half of the data plane: Services (with the health the checker measured) in, an nftables model
 * out. No I/O, no timers; tested with case tables. src/lb/script.ts turns the model into `nft -f` text.
 */
import { VipmeshError } from '../errors.js';
import { formatIp, parseIp } from '../util/ip.js';
import type { Endpoint, Service, ServicePort } from './types.js';
import { endpointKey, serviceKey } from './types.js';
import { validateService } from './validate.js';

/**
 * The packet mark bit that asks the postrouting chain to masquerade (`externalTrafficPolicy: Cluster`):
 * only the first packet of a connection passes the nat chains, so a plain packet mark is enough to carry
 * the decision from the Service chain to postrouting. Bit 0x4000 is kube-proxy's choice for the same job:
 * sharing it means a node running both masquerades the same connections, and takes no second bit.
 */
export const MASQ_MARK = 0x4000;

/** The bound of each ClientIP affinity set (entries expire after the timeout; a full set stops adding). */
export const AFFINITY_SET_SIZE = 65_536;

/** A chain of one Service port in one family (or an endpoint chain under it). */
export interface NftChain {
  /** `namespace/name` of the Service that owns it (errors name it). */
  service: string;
  rules: string[];
}

/** A named set (ClientIP affinity: the clients recently sent to one endpoint). */
export interface NftSet {
  service: string;
  /** The set body (`type ipv4_addr; flags dynamic,timeout; ...`). */
  body: string;
}

/** The part of the table that depends on Services (the base chains and maps are fixed). */
export interface Ruleset {
  /** Elements of the `svc4`/`svc6` verdict maps: `<vip> . <proto> . <port>` → the chain to `goto`. */
  elements: { 4: Map<string, string>; 6: Map<string, string> };
  chains: Map<string, NftChain>;
  sets: Map<string, NftSet>;
}

/** What {@link render} takes. */
export interface RenderInput {
  services: readonly Service[];
  /** Endpoint keys (`namespace/name/ip`) the health checks found unhealthy [none]. */
  unhealthy?: ReadonlySet<string>;
  /** Whether an endpoint runs on this node (`externalTrafficPolicy: Local`) [none does]. */
  isLocal?: (e: Endpoint) => boolean;
}

/** The model, and the Services that were skipped (each error names the Service and the field). */
export interface RenderResult {
  ruleset: Ruleset;
  errors: VipmeshError[];
}

/** An empty model (no Service). */
export function emptyRuleset(): Ruleset {
  return { elements: { 4: new Map(), 6: new Map() }, chains: new Map(), sets: new Map() };
}

/** 32-bit FNV-1a, as 8 hex digits: keeps chain names unique when sanitising maps two names to one. */
function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** nft identifiers: letters, digits and `_` only here (names and addresses carry `-`, `.`, `:`). */
const ident = (text: string): string => text.replace(/[^A-Za-z0-9]/g, '_');

/** The port an endpoint serves `p` on; undefined when a named targetPort is not among its ports. */
export function targetPortOf(p: ServicePort, e: Endpoint): number | undefined {
  if (typeof p.targetPort === 'number') return p.targetPort;
  const same = (q: Endpoint['ports'][number]) => (q.protocol ?? 'TCP') === p.protocol;
  // The port named like the targetPort (a container port name); failing that the one named like the
  // Service port, which is how Endpoints objects carry a resolved port.
  const q =
    e.ports.find((q) => q.name === p.targetPort && same(q)) ??
    (p.name === undefined ? undefined : e.ports.find((q) => q.name === p.name && same(q)));
  return q?.port;
}

/**
 * The endpoints a Service port sends new connections to in one family: ready, not found unhealthy, on
 * this node when the policy is `Local`, and offering the target port; sorted, so that the rendered text
 * (and so the update) changes only when the membership does. (A validated Service: addresses parse.)
 */
export function backendsOf(
  s: Service,
  p: ServicePort,
  family: 4 | 6,
  unhealthy: ReadonlySet<string>,
  isLocal: (e: Endpoint) => boolean,
): Array<{ ip: string; port: number }> {
  const backends: Array<{ ip: string; port: number }> = [];
  for (const e of s.endpoints) {
    const ip = parseIp(e.ip);
    if (ip?.family !== family || !e.ready || unhealthy.has(endpointKey(s, e.ip))) continue;
    if (s.externalTrafficPolicy === 'Local' && !isLocal(e)) continue;
    const port = targetPortOf(p, e);
    if (port !== undefined) backends.push({ ip: formatIp(ip), port });
  }
  return backends.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
}

/** `198.18.1.2:8080` or `[2001:db8::2]:8080` as nft writes a dnat target. */
const target = (ip: string, port: number, family: 4 | 6): string =>
  family === 4 ? `${ip}:${port}` : `[${ip}]:${port}`;
/** The same pair as a concatenation inside a dnat map (`198.18.1.2 . 8080`). */
const pair = (ip: string, port: number): string => `${ip} . ${port}`;

/** Render every Service; a Service that fails validation or clashes with an earlier one is skipped. */
export function render(input: RenderInput): RenderResult {
  const rs = emptyRuleset();
  const errors: VipmeshError[] = [];
  const unhealthy = input.unhealthy ?? new Set<string>();
  const isLocal = input.isLocal ?? (() => false);
  for (const s of input.services) {
    try {
      validateService(s);
      renderService(s, unhealthy, isLocal, rs);
    } catch (err) {
      if (!(err instanceof VipmeshError)) throw err;
      errors.push(err);
    }
  }
  return { ruleset: rs, errors };
}

function renderService(
  s: Service,
  unhealthy: ReadonlySet<string>,
  isLocal: (e: Endpoint) => boolean,
  rs: Ruleset,
): void {
  const key = serviceKey(s);
  const id = `${ident(s.namespace)}_${ident(s.name)}_${fnv(key)}`;
  // Staged so that a clash found halfway leaves nothing of this Service behind.
  const elements: Array<[4 | 6, string, string]> = [];
  const chains = new Map<string, NftChain>();
  const sets = new Map<string, NftSet>();
  const vips = s.vips.map((v) => parseIp(v)!);
  s.ports.forEach((p, i) => {
    const proto = p.protocol === 'TCP' ? 'tcp' : 'udp';
    for (const family of [4, 6] as const) {
      const famVips = vips.filter((v) => v.family === family).map(formatIp);
      if (famVips.length === 0) continue;
      const chain = `s_${id}_${proto}${p.port}_${family}`;
      const rules = portRules(s, p, proto, family, id, key, unhealthy, isLocal, chains, sets);
      if (rules === undefined) continue;
      chains.set(chain, { service: key, rules });
      for (const vip of famVips) {
        const el = `${vip} . ${proto} . ${p.port}`;
        if (rs.elements[family].has(el) || elements.some(([f, e]) => f === family && e === el)) {
          throw new VipmeshError(
            'VIPMESH_LB_PORT_CONFLICT',
            `Service ${key}: ports[${i}] ${vip}:${p.port}/${p.protocol} is already served by another Service`,
            { details: { service: key, field: `ports[${i}]` } },
          );
        }
        elements.push([family, el, chain]);
      }
    }
  });
  for (const [family, el, chain] of elements) rs.elements[family].set(el, chain);
  for (const [n, c] of chains) rs.chains.set(n, c);
  for (const [n, st] of sets) rs.sets.set(n, st);
}

/** The rules of one Service port in one family; undefined when it has nothing to send traffic to. */
function portRules(
  s: Service,
  p: ServicePort,
  proto: 'tcp' | 'udp',
  family: 4 | 6,
  id: string,
  key: string,
  unhealthy: ReadonlySet<string>,
  isLocal: (e: Endpoint) => boolean,
  chains: Map<string, NftChain>,
  sets: Map<string, NftSet>,
): string[] | undefined {
  const l4 = `meta l4proto ${proto}`;
  if (s.endpoints.length === 0) {
    // No endpoints: the holder serves the port itself (a process listening on targetPort).
    return typeof p.targetPort === 'number' ? [`${l4} redirect to :${p.targetPort}`] : undefined;
  }
  const backends = backendsOf(s, p, family, unhealthy, isLocal);
  if (backends.length === 0) return undefined;
  const rules: string[] = [];
  if (s.externalTrafficPolicy === 'Cluster') rules.push(`meta mark set meta mark | ${hex(MASQ_MARK)}`);
  const n = backends.length;
  const pick =
    s.algorithm === 'random'
      ? `numgen random mod ${n}`
      : `jhash ${family === 4 ? 'ip' : 'ip6'} saddr . th sport mod ${n}`;
  const nat = `${l4} dnat ${family === 4 ? 'ip' : 'ip6'} to`;
  if (s.sessionAffinity === 'None') {
    if (n === 1) rules.push(`${nat} ${target(backends[0]!.ip, backends[0]!.port, family)}`);
    else
      rules.push(
        `${nat} ${pick} map { ${backends.map((b, i) => `${i} : ${pair(b.ip, b.port)}`).join(', ')} }`,
      );
    return rules;
  }
  // ClientIP: a dynamic set per endpoint of the clients sent there, as kube-proxy's nftables mode keeps it.
  const saddr = family === 4 ? 'ip saddr' : 'ip6 saddr';
  const base = `${id}_${proto}${p.port}`;
  const goes: string[] = [];
  for (const b of backends) {
    const tag = `${base}_${ident(b.ip)}_${b.port}`;
    const set = `a_${tag}`;
    const chain = `e_${tag}`;
    sets.set(set, {
      service: key,
      body: `type ${family === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags dynamic,timeout; timeout ${s.affinityTimeoutSeconds}s; size ${AFFINITY_SET_SIZE};`,
    });
    chains.set(chain, {
      service: key,
      rules: [`update @${set} { ${saddr} }`, `${nat} ${target(b.ip, b.port, family)}`],
    });
    rules.push(`${saddr} @${set} goto ${chain}`);
    goes.push(chain);
  }
  rules.push(`${pick} vmap { ${goes.map((c, i) => `${i} : goto ${c}`).join(', ')} }`);
  return rules;
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
