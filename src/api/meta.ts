/** Object names, datastore keys and the canonical JSON the store compares and writes. */
import { randomBytes } from 'node:crypto';
import { nameProblem, nameRuleOf } from '../vip-pool/index.js';
import type { FieldProblem } from './status.js';
import type { KubeObject, ResourceInfo } from './types.js';

/**
 * Problems with `metadata.name` / `metadata.namespace`: Kubernetes' rules for the kind (Services DNS-1035
 * labels, Namespaces DNS-1123 labels, the rest DNS-1123 subdomains), in the words check-config uses.
 */
export function checkMeta(r: ResourceInfo, name: unknown, namespace: unknown): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (typeof name !== 'string' || name === '') {
    out.push({ path: 'metadata.name', code: 'Required', message: 'name is required' });
  } else {
    const why = nameProblem(name, nameRuleOf(r.kind));
    if (why !== undefined) out.push({ path: 'metadata.name', code: 'FieldValueInvalid', message: why });
  }
  if (r.namespaced && namespace !== undefined) {
    const why =
      typeof namespace === 'string'
        ? nameProblem(namespace, 'dns1123-label')
        : `${JSON.stringify(namespace)} must be a string`;
    if (why !== undefined) out.push({ path: 'metadata.namespace', code: 'FieldValueInvalid', message: why });
  }
  return out;
}

/** The datastore key of an object: `/registry/services/default/web`, `/registry/nodes/pi1`. */
export function keyOf(r: ResourceInfo, name: string, namespace?: string): string {
  return r.namespaced
    ? `/registry/${r.resource}/${namespace ?? 'default'}/${name}`
    : `/registry/${r.resource}/${name}`;
}

/** The prefix that lists a resource (in one namespace, or all). */
export function prefixOf(r: ResourceInfo, namespace?: string): string {
  return r.namespaced && namespace !== undefined
    ? `/registry/${r.resource}/${namespace}/`
    : `/registry/${r.resource}/`;
}

/** Kubernetes' generateName alphabet (no vowels, no look-alikes), five characters. */
export function nameSuffix(): string {
  const abc = 'bcdfghjklmnpqrstvwxz2456789';
  return [...randomBytes(5)].map((b) => abc[b % abc.length]).join('');
}

/** JSON with object keys sorted, so two equal objects compare equal whatever their key order. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'object' && x !== null && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

export function stripVolatile(o: KubeObject): string {
  const { resourceVersion: _rv, ...meta } = o.metadata;
  return canonicalJson({ ...o, metadata: meta });
}

export function specPart(o: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return canonicalJson(rest);
}
