/** Which OpenAPI document a GET path names, in the form the Accept header asks for. */
import type { DiscoveryAnswer } from './discovery.js';
import { openApiV2, openApiV3Doc, openApiV3Index } from './openapi.js';
import { encodeOpenApiV2, OPENAPI_V2_PROTOBUF, OPENAPI_V2_PROTOBUF_ANSWER } from './openapi-proto.js';

/** Documents are built once per vipmesh version: they depend on nothing else. */
const cache = new Map<string, DiscoveryAnswer | undefined>();

/**
 * `/openapi/v2` (protobuf when the Accept header names it first, as kubectl's does; else JSON),
 * `/openapi/v3` and `/openapi/v3/<group-version path>`; undefined for any other path.
 */
export function openApiDocument(
  path: string,
  accept: string | undefined,
  version: string,
): DiscoveryAnswer | undefined {
  if (!path.startsWith('/openapi/')) return undefined;
  const proto =
    path === '/openapi/v2' && (accept ?? '').split(',')[0]!.trim().startsWith(OPENAPI_V2_PROTOBUF);
  const key = `${version}\n${proto}\n${path}`;
  if (!cache.has(key)) cache.set(key, build(path, proto, version));
  return cache.get(key);
}

function build(path: string, proto: boolean, version: string): DiscoveryAnswer | undefined {
  if (path === '/openapi/v2') {
    const doc = openApiV2(version);
    return proto
      ? { contentType: OPENAPI_V2_PROTOBUF_ANSWER, body: encodeOpenApiV2(doc) }
      : { contentType: 'application/json', body: doc };
  }
  if (path === '/openapi/v3') return { contentType: 'application/json', body: openApiV3Index(version) };
  if (path.startsWith('/openapi/v3/')) {
    const doc = openApiV3Doc(path.slice('/openapi/v3/'.length), version);
    return doc === undefined ? undefined : { contentType: 'application/json', body: doc };
  }
  return undefined;
}
