import { VipmeshError } from '../errors.js';
import { Checker, type Issue, isObj } from './checker.js';
import { Codes } from './codes.js';
import { decodeEndpointSlice, decodeEndpoints } from './decode-endpoints.js';
import { decodeLbSettings } from './decode-lb.js';
import { decodeIpAddressPool, decodeL2Advertisement, decodeLegacyConfigMap } from './decode-pool.js';
import { decodeNamespace, decodeService } from './decode-service.js';
import { type FieldPath, formatPath } from './path.js';
import { poolSetProblems } from './pools.js';
import { checkFields, SCHEMAS } from './schema.js';
import type {
  AddressPool,
  AdvertisementRule,
  BackendSet,
  ConfigProblem,
  LbSettings,
  NamespaceInfo,
  ServiceRequest,
} from './types.js';

/** What one object decodes to. */
export type Decoded =
  | { kind: 'IPAddressPool'; pool: AddressPool }
  | { kind: 'L2Advertisement'; advertisement: AdvertisementRule }
  | { kind: 'ConfigMap'; pools: AddressPool[] }
  /**
   * `service` (and `lb`) are undefined for a Service that is not vipmesh's (not LoadBalancer, or another
   * class); `lb` is what the holder of its addresses serves.
   */
  | { kind: 'Service'; service: ServiceRequest | undefined; lb: LbSettings | undefined }
  | { kind: 'Namespace'; namespace: NamespaceInfo }
  | { kind: 'Endpoints' | 'EndpointSlice'; backends: BackendSet };

/** The accepted kinds and the apiVersion each must have. */
const ACCEPTED_KINDS: Readonly<Record<Decoded['kind'], string>> = {
  IPAddressPool: 'metallb.io/v1beta1',
  L2Advertisement: 'metallb.io/v1beta1',
  ConfigMap: 'v1',
  Service: 'v1',
  Namespace: 'v1',
  Endpoints: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
};

/** Result of {@link decodeObject}: the decoded value only when there were no issues. */
interface DecodeResult {
  kind: string;
  name: string;
  decoded?: Decoded;
  issues: Issue[];
}

function strField(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  return typeof v === 'string' ? v : '';
}

function specOf(obj: Record<string, unknown>): Record<string, unknown> {
  return isObj(obj['spec']) ? obj['spec'] : {};
}

function annotationsOf(obj: Record<string, unknown>): Record<string, string> {
  const meta = isObj(obj['metadata']) ? obj['metadata'] : {};
  const ann = isObj(meta['annotations']) ? meta['annotations'] : {};
  return Object.fromEntries(
    Object.entries(ann).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
}

/** Decode and validate one already-parsed object. Never throws. */
export function decodeObject(obj: unknown): DecodeResult {
  if (!isObj(obj)) {
    return {
      kind: '',
      name: '',
      issues: [
        {
          path: [],
          code: Codes.YAML_INVALID,
          message: 'an object must be a map with apiVersion, kind and metadata',
        },
      ],
    };
  }
  const kind = strField(obj, 'kind');
  const meta = isObj(obj['metadata']) ? obj['metadata'] : {};
  const name = strField(meta, 'name');
  const c = new Checker();
  const apiVersion = c.str(obj, 'apiVersion', [], true);
  c.str(obj, 'kind', [], true);
  if (kind === '' || apiVersion === undefined) return { kind, name, issues: c.issues };
  const want = Object.hasOwn(ACCEPTED_KINDS, kind) ? ACCEPTED_KINDS[kind as Decoded['kind']] : undefined;
  if (want === undefined) {
    const list = Object.keys(ACCEPTED_KINDS).join(', ');
    c.add(['kind'], Codes.UNSUPPORTED_KIND, `kind ${kind} is not accepted (accepted: ${list})`);
    return { kind, name, issues: c.issues };
  }
  if (apiVersion !== want) {
    c.add(['apiVersion'], Codes.UNSUPPORTED_KIND, `${kind} must have apiVersion ${want}, got ${apiVersion}`);
    return { kind, name, issues: c.issues };
  }
  checkFields(c, obj, SCHEMAS[kind]!);
  let decoded: Decoded;
  switch (kind as Decoded['kind']) {
    case 'IPAddressPool':
      decoded = { kind: 'IPAddressPool', pool: decodeIpAddressPool(c, obj) };
      break;
    case 'L2Advertisement':
      decoded = { kind: 'L2Advertisement', advertisement: decodeL2Advertisement(c, obj) };
      break;
    case 'ConfigMap':
      decoded = { kind: 'ConfigMap', pools: decodeLegacyConfigMap(c, obj) };
      break;
    case 'Service': {
      const service = decodeService(c, obj);
      const lb = service === undefined ? undefined : decodeLbSettings(c, specOf(obj), annotationsOf(obj));
      decoded = { kind: 'Service', service, lb };
      break;
    }
    case 'Endpoints':
      decoded = { kind: 'Endpoints', backends: decodeEndpoints(c, obj) };
      break;
    case 'EndpointSlice':
      decoded = { kind: 'EndpointSlice', backends: decodeEndpointSlice(c, obj) };
      break;
    case 'Namespace':
      decoded = { kind: 'Namespace', namespace: decodeNamespace(c, obj) };
      break;
  }
  return c.issues.length === 0 ? { kind, name, decoded, issues: [] } : { kind, name, issues: c.issues };
}

/**
 * Validate one already-parsed object (what the API receives as JSON; it answers 422 with these).
 * Problems carry kind, name, path, code and message; `file` is empty and `line` 0 (JSON has no lines).
 * Pool-set checks (overlap between pools, duplicate names) need every pool: see `poolSetProblems`.
 */
export function validateObject(obj: unknown): ConfigProblem[] {
  const r = decodeObject(obj);
  return r.issues.map((i) => ({
    file: '',
    line: 0,
    kind: r.kind,
    name: r.name,
    path: formatPath(i.path),
    code: i.code,
    message: i.message,
  }));
}

function expect<K extends Decoded['kind']>(obj: unknown, kind: K): Extract<Decoded, { kind: K }> {
  const r = decodeObject(obj);
  if (r.decoded === undefined || r.decoded.kind !== kind) {
    const first = r.issues[0];
    const code = first?.code ?? Codes.UNSUPPORTED_KIND;
    const where = first === undefined || first.path.length === 0 ? '' : `${formatPath(first.path)}: `;
    const msg =
      first === undefined ? `expected a ${kind}, got ${r.kind || 'no kind'}` : `${where}${first.message}`;
    throw new VipmeshError(code, `${kind}/${r.name}: ${msg}`, { details: { problems: validateObject(obj) } });
  }
  return r.decoded as Extract<Decoded, { kind: K }>;
}

/** IPAddressPool object -> AddressPool; throws VipmeshError (code of the first problem) when invalid. */
export function toAddressPool(obj: unknown): AddressPool {
  return expect(obj, 'IPAddressPool').pool;
}

/** Legacy MetalLB ConfigMap -> its layer 2 pools; throws VipmeshError when invalid. */
export function fromLegacyConfigMap(obj: unknown): AddressPool[] {
  return expect(obj, 'ConfigMap').pools;
}

/** L2Advertisement object -> L2Advertisement; throws VipmeshError when invalid. */
export function toL2Advertisement(obj: unknown): AdvertisementRule {
  return expect(obj, 'L2Advertisement').advertisement;
}

/**
 * LoadBalancer Service object -> ServiceRequest; throws VipmeshError when invalid, and
 * SERVICE_NOT_LOADBALANCER for a valid Service that is not vipmesh's (another type or loadBalancerClass).
 */
export function toServiceRequest(obj: unknown): ServiceRequest {
  const svc = expect(obj, 'Service').service;
  if (svc === undefined) {
    throw new VipmeshError(
      Codes.SERVICE_NOT_LOADBALANCER,
      'vipmesh gives addresses only to type LoadBalancer Services without a loadBalancerClass',
    );
  }
  return svc;
}

/**
 * A stored LoadBalancer Service's load-balancing settings, or undefined for a Service that is not
 * vipmesh's. Values that fail validation (an object stored before a check existed) fall back to their
 * defaults rather than dropping the Service.
 */
export function lbSettingsOf(obj: unknown): LbSettings | undefined {
  if (!isObj(obj)) return undefined;
  const c = new Checker();
  if (decodeService(c, obj) === undefined) return undefined;
  return decodeLbSettings(c, specOf(obj), annotationsOf(obj));
}

/**
 * A stored Endpoints or EndpointSlice object's backends (the valid ones: an entry that fails validation is
 * left out), or undefined for another kind.
 */
export function backendSetOf(obj: unknown): BackendSet | undefined {
  if (!isObj(obj)) return undefined;
  const c = new Checker();
  if (obj['kind'] === 'Endpoints') return decodeEndpoints(c, obj);
  if (obj['kind'] === 'EndpointSlice') return decodeEndpointSlice(c, obj);
  return undefined;
}

/** The pools an object holds (an IPAddressPool, or a legacy ConfigMap's), with where each came from. */
function poolsOf(obj: unknown): Array<{ pool: AddressPool; base: FieldPath; addresses: FieldPath }> {
  const d = decodeObject(obj).decoded;
  if (d?.kind === 'IPAddressPool') return [{ pool: d.pool, base: [], addresses: ['spec', 'addresses'] }];
  if (d?.kind === 'ConfigMap') {
    return d.pools.map((pool, i) => {
      const base = ['data', 'config', 'address-pools', i];
      return { pool, base, addresses: [...base, 'addresses'] };
    });
  }
  return [];
}

/**
 * What check-config's pool-set check says about `obj` (an IPAddressPool or legacy ConfigMap) next to the
 * pools already stored (`existing`, without `obj`'s own earlier version): addresses another pool holds,
 * a name another pool has. The API refuses the write with these (422); empty when `obj` holds no pool.
 */
export function poolConflicts(obj: unknown, existing: readonly unknown[]): ConfigProblem[] {
  const mine = poolsOf(obj);
  if (mine.length === 0) return [];
  const others = existing.flatMap(poolsOf);
  const r = decodeObject(obj);
  return poolSetProblems([...others, ...mine].map((p) => p.pool))
    .filter((p) => p.pool >= others.length)
    .map((p) => {
      const src = mine[p.pool - others.length]!;
      const namePath = src.base.length > 0 ? [...src.base, 'name'] : ['metadata', 'name'];
      const path = p.entry === undefined ? namePath : [...src.addresses, p.entry];
      return {
        file: '',
        line: 0,
        kind: r.kind,
        name: r.name,
        path: formatPath(path),
        code: p.code,
        message: p.message,
      };
    });
}
