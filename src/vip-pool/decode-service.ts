import { familyFromName, familyName, formatIp, type IpFamily, parseIp } from '../util/ip.js';
import { type Checker, isObj, type Obj } from './checker.js';
import { Codes } from './codes.js';
import { decodeMetadata } from './decode-pool.js';
import type { FieldPath } from './path.js';
import type { IpFamilyPolicy, NamespaceInfo, ProtocolPort, ServiceRequest } from './types.js';

/** The annotation prefixes MetalLB reads: the current one first, then the pre-0.13 one. */
const ANNOTATION_PREFIXES = ['metallb.io/', 'metallb.universe.tf/'] as const;

/** The value of a MetalLB annotation under either prefix, with the path it came from. */
export function annotation(
  c: Checker | undefined,
  annotations: Readonly<Record<string, string>>,
  suffix: string,
): { value: string; path: FieldPath } | undefined {
  const found = ANNOTATION_PREFIXES.map((p) => p + suffix).filter((k) => Object.hasOwn(annotations, k));
  if (found.length === 0) return undefined;
  const [first, second] = found as [string, string | undefined];
  if (second !== undefined && annotations[second]!.trim() !== annotations[first]!.trim()) {
    c?.add(
      ['metadata', 'annotations', second],
      Codes.FIELD_INVALID,
      `disagrees with ${first}; set only one of them`,
    );
  }
  return { value: annotations[first]!.trim(), path: ['metadata', 'annotations', first] };
}

const POLICIES: readonly IpFamilyPolicy[] = ['SingleStack', 'PreferDualStack', 'RequireDualStack'];

const TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

/**
 * core/v1 Service -> ServiceRequest, or undefined for a Service that is not vipmesh's: one whose type is
 * not LoadBalancer, or that names a `spec.loadBalancerClass` (another load balancer's, as MetalLB
 * treats it). Those are valid objects; only their metadata and type are checked.
 */
export function decodeService(c: Checker, obj: Obj): ServiceRequest | undefined {
  const meta = decodeMetadata(c, obj);
  const spec = c.map(obj, 'spec', [], true) ?? {};
  const sp = ['spec'];
  const type = c.str(spec, 'type', sp) ?? 'ClusterIP';
  if (!TYPES.includes(type)) {
    c.add([...sp, 'type'], Codes.FIELD_INVALID, `must be one of ${TYPES.join(', ')}, got "${type}"`);
    return undefined;
  }
  const lbClass = c.str(spec, 'loadBalancerClass', sp);
  if (type !== 'LoadBalancer' || (lbClass !== undefined && lbClass !== '')) return undefined;
  const svc: ServiceRequest = {
    namespace: meta.namespace === '' ? 'default' : meta.namespace,
    name: meta.name,
    labels: meta.labels,
    requestedIPs: [],
    ipFamilyPolicy: 'SingleStack',
    ipFamilies: [],
    ports: decodePorts(c, spec),
  };
  const pool = annotation(c, meta.annotations, 'address-pool');
  if (pool !== undefined) {
    if (pool.value === '') c.add(pool.path, Codes.FIELD_INVALID, 'names no pool');
    else svc.pool = pool.value;
  }
  const share = annotation(c, meta.annotations, 'allow-shared-ip');
  if (share !== undefined && share.value !== '') svc.sharingKey = share.value;
  const backend = decodeBackendKey(c, spec);
  if (backend !== undefined) svc.backendKey = backend;
  const policy = c.str(spec, 'ipFamilyPolicy', sp);
  const policyGiven = policy !== undefined;
  if (policy !== undefined) {
    if ((POLICIES as readonly string[]).includes(policy)) svc.ipFamilyPolicy = policy as IpFamilyPolicy;
    else
      c.add(
        [...sp, 'ipFamilyPolicy'],
        Codes.FIELD_INVALID,
        `must be one of ${POLICIES.join(', ')}, got "${policy}"`,
      );
  }
  c.strings(spec, 'ipFamilies', sp).forEach((name, i) => {
    const f = familyFromName(name);
    if (f === undefined)
      c.add([...sp, 'ipFamilies', i], Codes.FIELD_INVALID, `must be IPv4 or IPv6, got "${name}"`);
    else if (svc.ipFamilies.includes(f))
      c.add([...sp, 'ipFamilies', i], Codes.FIELD_INVALID, `${name} is listed twice`);
    else svc.ipFamilies.push(f);
  });
  if (svc.ipFamilyPolicy === 'SingleStack' && svc.ipFamilies.length > 1) {
    c.add(
      [...sp, 'ipFamilies'],
      Codes.FAMILY_MISMATCH,
      'two families need ipFamilyPolicy PreferDualStack or RequireDualStack',
    );
  }
  decodeRequestedIPs(c, spec, meta.annotations, svc, policyGiven);
  return svc;
}

/**
 * With `externalTrafficPolicy: Local`, the pod selector as `k=v,k2=v2`, keys sorted (what must match for
 * two Services to share an address: traffic for either goes only to nodes running their pods).
 */
function decodeBackendKey(c: Checker, spec: Obj): string | undefined {
  const etp = c.str(spec, 'externalTrafficPolicy', ['spec']);
  if (etp !== undefined && etp !== 'Cluster' && etp !== 'Local') {
    c.add(['spec', 'externalTrafficPolicy'], Codes.FIELD_INVALID, `must be Cluster or Local, got "${etp}"`);
    return undefined;
  }
  if (etp !== 'Local') return undefined;
  const selector = c.stringMap(spec, 'selector', ['spec']);
  const key = Object.keys(selector)
    .sort()
    .map((k) => `${k}=${selector[k]}`)
    .join(',');
  return key === '' ? undefined : key;
}

function decodePorts(c: Checker, spec: Obj): ProtocolPort[] {
  const out: ProtocolPort[] = [];
  const list = c.list(spec, 'ports', ['spec'], true);
  if (list === undefined) return out;
  if (list.length === 0) c.add(['spec', 'ports'], Codes.FIELD_REQUIRED, 'a Service needs at least one port');
  list.forEach((v, i) => {
    const p = ['spec', 'ports', i];
    if (!isObj(v)) {
      c.add(p, Codes.FIELD_INVALID, 'must be a map with port and protocol');
      return;
    }
    const proto = c.str(v, 'protocol', p) ?? 'TCP';
    const port = v['port'];
    if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP') {
      c.add([...p, 'protocol'], Codes.FIELD_INVALID, `must be TCP, UDP or SCTP, got "${proto}"`);
      return;
    }
    if (port === undefined || port === null) {
      c.add([...p, 'port'], Codes.FIELD_REQUIRED, 'required');
      return;
    }
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      c.add([...p, 'port'], Codes.FIELD_INVALID, 'must be a port number 1-65535');
      return;
    }
    if (out.some((q) => q.protocol === proto && q.port === port)) {
      c.add(p, Codes.FIELD_INVALID, `${proto}/${port} is listed twice`);
      return;
    }
    out.push({ protocol: proto, port });
  });
  return out;
}

function decodeRequestedIPs(
  c: Checker,
  spec: Obj,
  annotations: Readonly<Record<string, string>>,
  svc: ServiceRequest,
  policyGiven: boolean,
): void {
  const lbip = c.str(spec, 'loadBalancerIP', ['spec']);
  const ann = annotation(c, annotations, 'loadBalancerIPs');
  if (lbip !== undefined && lbip !== '' && ann !== undefined) {
    c.add(
      ann.path,
      Codes.LBIP_CONFLICT,
      'set either spec.loadBalancerIP or the loadBalancerIPs annotation, not both',
    );
    return;
  }
  let path: FieldPath;
  let items: string[];
  if (ann !== undefined) {
    path = ann.path;
    items = ann.value.split(',').map((s) => s.trim());
  } else if (lbip !== undefined && lbip !== '') {
    path = ['spec', 'loadBalancerIP'];
    items = [lbip.trim()];
  } else {
    return;
  }
  const families: IpFamily[] = [];
  for (const item of items) {
    const ip = parseIp(item);
    if (ip === undefined) {
      c.add(path, Codes.BAD_ADDRESS, `"${item}" is not an IP address`);
      return;
    }
    if (families.includes(ip.family)) {
      c.add(path, Codes.LBIPS_FAMILY, `at most one ${familyName(ip.family)} address may be requested`);
      return;
    }
    families.push(ip.family);
    svc.requestedIPs.push(formatIp(ip));
  }
  const wrong = families.find((f) => svc.ipFamilies.length > 0 && !svc.ipFamilies.includes(f));
  if (wrong !== undefined) {
    c.add(
      path,
      Codes.FAMILY_MISMATCH,
      `an ${familyName(wrong)} address is requested but spec.ipFamilies is ${svc.ipFamilies.map(familyName).join(', ')}`,
    );
  } else if (families.length === 2 && svc.ipFamilyPolicy === 'SingleStack') {
    const hint = policyGiven ? '' : ' (set spec.ipFamilyPolicy: RequireDualStack)';
    c.add(path, Codes.FAMILY_MISMATCH, `two addresses are requested for a SingleStack Service${hint}`);
  } else if (families.length === 1 && svc.ipFamilyPolicy === 'RequireDualStack') {
    c.add(path, Codes.FAMILY_MISMATCH, 'RequireDualStack needs one IPv4 and one IPv6 address');
  } else if (families.length === 1 && svc.ipFamilies.length === 2) {
    c.add(
      path,
      Codes.FAMILY_MISMATCH,
      `one ${familyName(families[0]!)} address is requested but spec.ipFamilies makes the Service dual-stack; request one address of each family`,
    );
  }
}

/** core/v1 Namespace -> its labels (plus `kubernetes.io/metadata.name`, as Kubernetes adds). */
export function decodeNamespace(c: Checker, obj: Obj): NamespaceInfo {
  const meta = decodeMetadata(c, obj);
  return { name: meta.name, labels: { ...meta.labels, 'kubernetes.io/metadata.name': meta.name } };
}
