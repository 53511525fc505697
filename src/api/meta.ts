/** Object names, datastore keys and the canonical JSON the store compares and writes. */
import { randomBytes } from 'node:crypto';
import type { FieldProblem } from './status.js';
import type { KubeObject, ResourceInfo } from './types.js';

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Problems with `metadata.name` / `metadata.namespace` (Kubernetes' DNS-1123 rules). */
export function checkMeta(r: ResourceInfo, name: unknown, namespace: unknown): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (typeof name !== 'string' || name === '') {
    out.push({ path: 'metadata.name', code: 'Required', message: 'name is required' });
  } else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    out.push({
      path: 'metadata.name',
      code: 'FieldValueInvalid',
      message: `"${name}" must be lowercase letters, digits, "-" and ".", starting and ending alphanumeric`,
    });
  }
  if (r.namespaced && namespace !== undefined) {
    if (typeof namespace !== 'string' || namespace.length > 63 || !DNS1123_LABEL.test(namespace)) {
      out.push({
        path: 'metadata.namespace',
        code: 'FieldValueInvalid',
        message: `"${String(namespace)}" must be a DNS label`,
      });
    }
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
