/**
 * What the API handler does for the Kubernetes write options and for PATCH: `dryRun`, `fieldValidation`,
 * the three patch media types, and the retry of a patch that met a concurrent write.
 */
import { VipmeshError } from '../errors.js';
import { parseFieldValidation } from './field-validation.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, mergeKeysOf } from './patch.js';
import { apiError } from './status.js';
import type { ResourceStore, WriteOptions } from './store.js';
import type { KubeObject, ResourceInfo } from './types.js';

/** `dryRun` (only `All`), `fieldValidation`, and a place for the `Warning` header's warnings. */
export function writeOptionsOf(q: URLSearchParams): WriteOptions & { warnings: string[] } {
  const dry = q.getAll('dryRun').filter((v) => v !== '');
  for (const v of dry) {
    if (v !== 'All') {
      throw apiError(
        'VIPMESH_API_BAD_REQUEST',
        `dryRun: Unsupported value: "${v.slice(0, 32)}": supported values: "All"`,
      );
    }
  }
  const fv = parseFieldValidation(q.get('fieldValidation'));
  return {
    warnings: [],
    ...(dry.length > 0 ? { dryRun: true } : {}),
    ...(fv === undefined ? {} : { fieldValidation: fv }),
  };
}

/** The patch media types, by the `Content-Type` that names them. */
const PATCH_TYPES = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
} as const;

type PatchType = (typeof PATCH_TYPES)[keyof typeof PATCH_TYPES];

/**
 * The patch type of a PATCH request; `VIPMESH_API_UNSUPPORTED_MEDIA_TYPE` (415) for anything else, and for
 * a strategic merge patch on a metallb.io kind (kube-apiserver serves those only to built-in kinds; kubectl
 * sends custom resources a merge patch).
 */
export function patchTypeOf(contentType: string | undefined, r: ResourceInfo): PatchType {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const t = (PATCH_TYPES as Record<string, PatchType>)[type];
  if (t === undefined || (t === 'strategic' && r.group !== '')) {
    const accepted = Object.keys(PATCH_TYPES).filter(
      (k) => r.group === '' || k !== 'application/strategic-merge-patch+json',
    );
    throw apiError(
      'VIPMESH_API_UNSUPPORTED_MEDIA_TYPE',
      `the body of the request was in an unknown format (Content-Type: ${String(contentType).slice(0, 100)}) - accepted media types include: ${accepted.join(', ')}`,
    );
  }
  return t;
}

/** `patch` applied to `obj` by the rules of `type`. */
export function applyPatch(type: PatchType, obj: KubeObject, patch: unknown): unknown {
  if (type === 'json') return applyJsonPatch(obj, patch);
  if (type === 'merge') return applyMergePatch(obj, patch);
  return applyStrategicMergePatch(obj, patch, mergeKeysOf(obj.kind));
}

/** How often a patch is re-applied when another write lands between its read and its write. */
const PATCH_ATTEMPTS = 5;

/**
 * PATCH: read the object, apply the patch, and write the result through the same validation as an
 * update. A `metadata.resourceVersion` the patch sets is a precondition (`VIPMESH_API_CONFLICT`, 409,
 * when stale); without one, a concurrent write makes the patch start again on the newer object.
 */
export async function patchObject(
  store: ResourceStore,
  r: ResourceInfo,
  where: { name: string; namespace: string | undefined; status: boolean },
  type: PatchType,
  patch: unknown,
  wo: WriteOptions,
  check: (o: unknown) => KubeObject,
): Promise<KubeObject> {
  for (let attempt = 1; ; attempt++) {
    const cur = (await store.get(r.resource, where.name, where.namespace)) as KubeObject;
    const next = check(applyPatch(type, cur, patch));
    const rv = next.metadata.resourceVersion;
    const pinned = rv !== undefined && rv !== cur.metadata.resourceVersion;
    if (!pinned) next.metadata.resourceVersion = cur.metadata.resourceVersion;
    try {
      return where.status
        ? await store.updateStatus(r.resource, next, wo)
        : await store.update(r.resource, next, wo);
    } catch (err) {
      const retry = err instanceof VipmeshError && err.code === 'VIPMESH_API_CONFLICT';
      if (!retry || pinned || attempt >= PATCH_ATTEMPTS) throw err;
    }
  }
}
