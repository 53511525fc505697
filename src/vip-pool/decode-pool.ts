import { parse as parseYaml } from 'yaml';
import { type Checker, isObj, nameRuleOf, type Obj } from './checker.js';
import { Codes } from './codes.js';
import type { FieldPath } from './path.js';
import { formatRange, type IpRange, isEntryError, parseAddressEntry, rangesOverlap } from './range.js';
import type { AddressPool, AdvertisementRule, ServiceAllocation } from './types.js';

/** Common pool fields, shared by IPAddressPool and the legacy ConfigMap entries. */
function decodeAddresses(c: Checker, obj: Obj, key: string, path: FieldPath): string[] {
  const list = c.list(obj, key, path, true);
  if (list === undefined) return [];
  if (list.length === 0) c.add([...path, key], Codes.FIELD_REQUIRED, 'a pool needs at least one address');
  const out: string[] = [];
  const seen: Array<{ range: IpRange; index: number }> = [];
  list.forEach((v, i) => {
    const p = [...path, key, i];
    if (typeof v !== 'string') {
      c.add(p, Codes.FIELD_INVALID, 'must be a string: a CIDR, a start-end range or an address');
      return;
    }
    const e = parseAddressEntry(v);
    if (isEntryError(e)) {
      c.add(p, e.code, e.message);
      return;
    }
    const clash = seen.find((s) => rangesOverlap(s.range, e.range));
    if (clash !== undefined) {
      c.add(p, Codes.POOL_OVERLAP, `${e.text} overlaps ${key}[${clash.index}] (${formatRange(clash.range)})`);
      return;
    }
    seen.push({ range: e.range, index: i });
    out.push(e.text);
  });
  return out;
}

/** Decode `metadata`: name (required, by the kind's rule), namespace, labels, annotations. */
export function decodeMetadata(c: Checker, obj: Obj) {
  const meta = c.map(obj, 'metadata', [], true) ?? {};
  const name = c.str(meta, 'name', ['metadata'], true) ?? '';
  if (name !== '') c.name(name, ['metadata', 'name'], nameRuleOf(String(obj['kind'])));
  const namespace = c.str(meta, 'namespace', ['metadata']) ?? '';
  if (namespace !== '') c.name(namespace, ['metadata', 'namespace'], 'dns1123-label');
  const labels = c.stringMap(meta, 'labels', ['metadata']);
  const annotations = c.stringMap(meta, 'annotations', ['metadata']);
  return { name, namespace, labels, annotations };
}

/** metallb.io/v1beta1 IPAddressPool -> AddressPool. */
export function decodeIpAddressPool(c: Checker, obj: Obj): AddressPool {
  const { name, labels } = decodeMetadata(c, obj);
  const spec = c.map(obj, 'spec', [], true) ?? {};
  const sp = ['spec'];
  const pool: AddressPool = {
    name,
    labels,
    addresses: decodeAddresses(c, spec, 'addresses', sp),
    autoAssign: c.bool(spec, 'autoAssign', sp, true),
    avoidBuggyIPs: c.bool(spec, 'avoidBuggyIPs', sp, false),
  };
  const sa = c.map(spec, 'serviceAllocation', sp);
  if (sa !== undefined) pool.serviceAllocation = decodeServiceAllocation(c, sa, [...sp, 'serviceAllocation']);
  return pool;
}

function decodeServiceAllocation(c: Checker, sa: Obj, path: FieldPath): ServiceAllocation {
  const out: ServiceAllocation = {
    namespaces: c.uniqueStrings(sa, 'namespaces', path),
    namespaceSelectors: c.selectors(sa, 'namespaceSelectors', path),
    serviceSelectors: c.selectors(sa, 'serviceSelectors', path),
  };
  const prio = sa['priority'];
  if (prio !== undefined && prio !== null) {
    if (typeof prio === 'number' && Number.isSafeInteger(prio) && prio >= 0) out.priority = prio;
    else
      c.add([...path, 'priority'], Codes.FIELD_INVALID, 'must be a whole number >= 0 (lower is tried first)');
  }
  return out;
}

const IFNAME = /^[^\s/:]{1,15}$/;

/** metallb.io/v1beta1 L2Advertisement -> L2Advertisement. */
export function decodeL2Advertisement(c: Checker, obj: Obj): AdvertisementRule {
  const { name } = decodeMetadata(c, obj);
  const spec = c.map(obj, 'spec', []) ?? {};
  const sp = ['spec'];
  const interfaces = c.strings(spec, 'interfaces', sp);
  interfaces.forEach((ifname, i) => {
    if (!IFNAME.test(ifname))
      c.add([...sp, 'interfaces', i], Codes.FIELD_INVALID, `"${ifname}" is not an interface name`);
  });
  return {
    name,
    ipAddressPools: c.uniqueStrings(spec, 'ipAddressPools', sp),
    ipAddressPoolSelectors: c.selectors(spec, 'ipAddressPoolSelectors', sp),
    nodeSelectors: c.selectors(spec, 'nodeSelectors', sp),
    serviceSelectors: c.selectors(spec, 'serviceSelectors', sp),
    interfaces,
  };
}

const LEGACY_POOL_KEYS = [
  'name',
  'protocol',
  'addresses',
  'auto-assign',
  'avoid-buggy-ips',
  'bgp-advertisements',
];

/** The top-level keys of MetalLB's legacy configuration (as v0.12 read it). */
const LEGACY_KEYS = ['address-pools', 'peers', 'bgp-communities', 'bfd-profiles'];
const LEGACY_KEY_LINE = /^(address-pools|peers|bgp-communities|bfd-profiles)\s*:/m;
const BFD_PROFILE_KEYS = [
  'name',
  'receive-interval',
  'transmit-interval',
  'detect-multiplier',
  'echo-interval',
  'echo-mode',
  'passive-mode',
  'minimum-ttl',
];

/**
 * True when a ConfigMap is MetalLB's legacy configuration: its `data.config` mentions `address-pools`
 * or starts a line with another of MetalLB's top-level keys (`peers:`, `bgp-communities:`,
 * `bfd-profiles:`), or it is `metallb-system/config`, where MetalLB looked for it. Any other ConfigMap is
 * a valid object that vipmesh ignores.
 */
export function isLegacyMetallbConfig(obj: unknown): boolean {
  if (!isObj(obj) || !isObj(obj['data'])) return false;
  const text = obj['data']['config'];
  if (typeof text !== 'string') return false;
  if (text.includes('address-pools') || LEGACY_KEY_LINE.test(text)) return true;
  const meta = isObj(obj['metadata']) ? obj['metadata'] : {};
  return meta['namespace'] === 'metallb-system' && meta['name'] === 'config';
}

/** `bfd-profiles`: read and checked as MetalLB did (named, no name twice), then unused (BFD is for BGP). */
function checkBfdProfiles(c: Checker, cfg: Obj, base: FieldPath): void {
  const names = new Map<string, number>();
  (c.list(cfg, 'bfd-profiles', base) ?? []).forEach((v, i) => {
    const p = [...base, 'bfd-profiles', i];
    if (!isObj(v)) {
      c.add(p, Codes.FIELD_INVALID, 'must be a map with a name');
      return;
    }
    c.onlyKeys(v, BFD_PROFILE_KEYS, p);
    const name = c.str(v, 'name', p, true);
    if (name === undefined) return;
    if (name === '') c.add([...p, 'name'], Codes.FIELD_REQUIRED, 'a BFD profile needs a name');
    const first = names.get(name);
    if (first !== undefined)
      c.add([...p, 'name'], Codes.FIELD_INVALID, `bfd-profiles[${first}] is already named ${name}`);
    else names.set(name, i);
  });
}

/**
 * The legacy MetalLB ConfigMap (`data.config` holding `address-pools:`), which MetalLB itself stopped
 * reading in v0.13 and which most Pi-cluster guides still show, checked as MetalLB v0.12 checked it.
 * Layer 2 pools only. A ConfigMap that is not MetalLB's ({@link isLegacyMetallbConfig}): no pools, no
 * problems.
 */
export function decodeLegacyConfigMap(c: Checker, obj: Obj): AddressPool[] {
  decodeMetadata(c, obj);
  const data = c.map(obj, 'data', []) ?? {};
  const text = data['config'];
  // Any other ConfigMap is a valid object that vipmesh ignores (the control plane uses the same test).
  if (typeof text !== 'string' || !isLegacyMetallbConfig(obj)) return [];
  const base = ['data', 'config'];
  let cfg: unknown;
  try {
    cfg = parseYaml(text, { prettyErrors: false });
  } catch (err) {
    c.add(base, Codes.YAML_INVALID, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    return [];
  }
  if (!isObj(cfg)) {
    c.add(base, Codes.FIELD_INVALID, 'must hold a YAML map with address-pools:');
    return [];
  }
  c.onlyKeys(cfg, LEGACY_KEYS, base);
  const peers = cfg['peers'];
  if (Array.isArray(peers) && peers.length > 0) {
    c.add(
      [...base, 'peers'],
      Codes.BGP_UNSUPPORTED,
      'BGP peers are not supported yet (vipmesh announces in layer 2 only)',
    );
  }
  checkBfdProfiles(c, cfg, base);
  const list = c.list(cfg, 'address-pools', base) ?? [];
  const pools: AddressPool[] = [];
  list.forEach((v, i) => {
    const p = [...base, 'address-pools', i];
    if (!isObj(v)) {
      c.add(p, Codes.FIELD_INVALID, 'must be a map with name, protocol and addresses');
      return;
    }
    c.onlyKeys(v, LEGACY_POOL_KEYS, p);
    // Free-form, as MetalLB read it: only the metallb.io/address-pool annotation refers to it.
    const name = c.str(v, 'name', p, true) ?? '';
    if (name.trim() === '' && typeof v['name'] === 'string')
      c.add([...p, 'name'], Codes.FIELD_REQUIRED, 'a pool needs a name');
    const protocol = c.str(v, 'protocol', p, true);
    if (protocol === 'bgp') {
      c.add(
        [...p, 'protocol'],
        Codes.BGP_UNSUPPORTED,
        'protocol bgp is not supported yet (vipmesh announces in layer 2 only); use protocol: layer2',
      );
    } else if (protocol !== undefined && protocol !== 'layer2') {
      c.add([...p, 'protocol'], Codes.FIELD_INVALID, `must be layer2, got "${protocol}"`);
    } else if (protocol === 'layer2') {
      const ads = c.list(v, 'bgp-advertisements', p);
      if (ads !== undefined && ads.length > 0)
        c.add(
          [...p, 'bgp-advertisements'],
          Codes.FIELD_INVALID,
          'a layer2 pool cannot have bgp-advertisements (they belong to protocol bgp pools)',
        );
    }
    pools.push({
      name,
      labels: {},
      addresses: decodeAddresses(c, v, 'addresses', p),
      autoAssign: c.bool(v, 'auto-assign', p, true),
      avoidBuggyIPs: c.bool(v, 'avoid-buggy-ips', p, false),
    });
  });
  return pools;
}
