/**
 * `nft -f` text from the model: the whole table (first apply, restore) or the difference between two
 * models (one Service changed: its map elements, its chains flushed and refilled), each one transaction.
 * Every line carries the Service it belongs to, so an nft error (which names a line) names the Service.
 */
import { MASQ_MARK, type Ruleset } from './render.js';

/** The table vipmesh owns; it never touches another. */
export const TABLE = 'inet vipmesh';

/** An nft script and, for each line, the Service it came from (undefined: the fixed part). */
export interface Script {
  lines: string[];
  owners: Array<string | undefined>;
}

/**
 * Every node has the rules of every Service, but only the holder of a VIP has the VIP as a local address
 * (on lo): `fib daddr type local` keeps the rules of a VIP held elsewhere inert (a pod's or a local
 * process's packets to it go to its holder as before), and adding the address on a take-over is what
 * turns them on, with no rule to write then.
 */
const dispatch = [
  'fib daddr type local ip daddr . meta l4proto . th dport vmap @svc4',
  'fib daddr type local ip6 daddr . meta l4proto . th dport vmap @svc6',
];

/** The fixed part: the two verdict maps and the hooks that consult them. */
function baseLines(): string[] {
  return [
    '  map svc4 { type ipv4_addr . inet_proto . inet_service : verdict; }',
    '  map svc6 { type ipv6_addr . inet_proto . inet_service : verdict; }',
    // dstnat (-100): where kube-proxy and Docker rewrite too; the map lookup is one hash probe per packet
    // of a new connection, whatever the number of Services.
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...dispatch.map((r) => `    ${r}`),
    '  }',
    // Hairpin: a process on the holder connecting to a VIP the holder owns.
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    ...dispatch.map((r) => `    ${r}`),
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    meta mark & 0x${MASQ_MARK.toString(16).padStart(8, '0')} != 0 masquerade`,
    '  }',
  ];
}

class Builder implements Script {
  lines: string[] = [];
  owners: Array<string | undefined> = [];
  add(line: string, owner?: string): void {
    this.lines.push(line);
    this.owners.push(owner);
  }
}

/** Replace the whole table in one transaction (creating it first makes the delete valid when absent). */
export function fullScript(rs: Ruleset): Script {
  const b = new Builder();
  b.add(`table ${TABLE}`);
  b.add(`delete table ${TABLE}`);
  b.add(`table ${TABLE} {`);
  for (const l of baseLines()) b.add(l);
  for (const [name, s] of rs.sets) b.add(`  set ${name} { ${s.body} }`, s.service);
  for (const [name, c] of rs.chains) {
    b.add(`  chain ${name} {`, c.service);
    for (const r of c.rules) b.add(`    ${r}`, c.service);
    b.add('  }', c.service);
  }
  b.add('}');
  for (const family of [4, 6] as const) {
    for (const [el, chain] of rs.elements[family]) {
      b.add(`add element ${TABLE} svc${family} { ${el} : goto ${chain} }`, rs.chains.get(chain)?.service);
    }
  }
  return b;
}

/** Remove the table (creating it first, so that removing an absent table is not an error). */
export function deleteScript(): Script {
  const b = new Builder();
  b.add(`table ${TABLE}`);
  b.add(`delete table ${TABLE}`);
  return b;
}

const sameRules = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((r, i) => r === b[i]);

/**
 * The change from `prev` (what the kernel has) to `next`, as one transaction; empty when nothing changed.
 * Order matters inside it: map elements that point at a chain go before the chain is emptied, chains that
 * use a set are emptied before the set goes, and new elements come last, once their chains are filled.
 */
export function diffScript(prev: Ruleset, next: Ruleset): Script {
  const b = new Builder();
  const owner = (chain: string) => next.chains.get(chain)?.service ?? prev.chains.get(chain)?.service;
  // Sets whose body changed are replaced: every chain of their Service is refilled so none still uses them.
  const setsGone = [...prev.sets].filter(([n, s]) => next.sets.get(n)?.body !== s.body);
  const setsNew = [...next.sets].filter(([n, s]) => prev.sets.get(n)?.body !== s.body);
  const touched = new Set(setsGone.map(([, s]) => s.service));
  const refill = [...next.chains].filter(([n, c]) => {
    const old = prev.chains.get(n);
    return old !== undefined && (!sameRules(old.rules, c.rules) || touched.has(c.service));
  });
  const created = [...next.chains].filter(([n]) => !prev.chains.has(n));
  const removed = [...prev.chains].filter(([n]) => !next.chains.has(n));
  for (const family of [4, 6] as const) {
    for (const [el, chain] of prev.elements[family]) {
      if (next.elements[family].get(el) !== chain)
        b.add(`delete element ${TABLE} svc${family} { ${el} }`, owner(chain));
    }
  }
  for (const [name, c] of [...refill, ...removed]) b.add(`flush chain ${TABLE} ${name}`, c.service);
  for (const [name, c] of removed) b.add(`delete chain ${TABLE} ${name}`, c.service);
  for (const [name, s] of setsGone) b.add(`delete set ${TABLE} ${name}`, s.service);
  for (const [name, s] of setsNew) b.add(`add set ${TABLE} ${name} { ${s.body} }`, s.service);
  for (const [name, c] of created) b.add(`add chain ${TABLE} ${name}`, c.service);
  for (const [name, c] of [...refill, ...created]) {
    for (const r of c.rules) b.add(`add rule ${TABLE} ${name} ${r}`, c.service);
  }
  for (const family of [4, 6] as const) {
    for (const [el, chain] of next.elements[family]) {
      if (prev.elements[family].get(el) !== chain)
        b.add(`add element ${TABLE} svc${family} { ${el} : goto ${chain} }`, owner(chain));
    }
  }
  return b;
}
