/**
 * The Swagger 2.0 document in the protobuf form kubectl asks `/openapi/v2` for (the `openapi.v2.Document`
 * message of google/gnostic, media type `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`):
 * client-go decodes only this form, so a JSON answer would leave kubectl without a schema. Only what
 * {@link openApiV2} produces is encoded: the info, and definitions with type, format, description,
 * `$ref`, properties, items, additionalProperties and `x-` extensions (as YAML, as gnostic carries them).
 */
import { stringify } from 'yaml';

/** The protobuf media type of the v2 document, as clients ask for it. */
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';
/** The Content-Type it is answered with: the same, spelt so Go's media type parser takes it. */
export const OPENAPI_V2_PROTOBUF_ANSWER = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

type Json = Record<string, unknown>;

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A length-delimited field (wire type 2): a string or an embedded message. */
function field(no: number, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from([...varint((no << 3) | 2), ...varint(b.length)]), b]);
}

/** `NamedAny{name, value: Any{yaml}}`: a vendor extension. */
function namedAny(name: string, value: unknown): Buffer {
  return Buffer.concat([field(1, name), field(2, field(2, stringify(value)))]);
}

/** `NamedSchema{name, value}`. */
function namedSchema(name: string, s: Json): Buffer {
  return Buffer.concat([field(1, name), field(2, schema(s))]);
}

/** The `Schema` message of one JSON schema. */
function schema(s: Json): Buffer {
  const parts: Buffer[] = [];
  const str = (no: number, v: unknown) => {
    if (typeof v === 'string') parts.push(field(no, v));
  };
  str(1, s['$ref']);
  str(2, s['format']);
  str(4, s['description']);
  if (typeof s['additionalProperties'] === 'object' && s['additionalProperties'] !== null) {
    parts.push(field(21, field(1, schema(s['additionalProperties'] as Json))));
  }
  if (typeof s['type'] === 'string') parts.push(field(22, field(1, s['type'])));
  if (typeof s['items'] === 'object' && s['items'] !== null) {
    parts.push(field(23, field(1, schema(s['items'] as Json))));
  }
  if (typeof s['properties'] === 'object' && s['properties'] !== null) {
    const props = Object.entries(s['properties'] as Json).map(([k, v]) =>
      field(1, namedSchema(k, v as Json)),
    );
    parts.push(field(25, Buffer.concat(props)));
  }
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-')) parts.push(field(31, namedAny(k, v)));
  }
  return Buffer.concat(parts);
}

/** Encode a Swagger 2.0 document from {@link openApiV2} as an `openapi.v2.Document`. */
export function encodeOpenApiV2(doc: Json): Buffer {
  const info = doc['info'] as { title: string; version: string };
  const defs = Object.entries(doc['definitions'] as Json).map(([k, v]) =>
    field(1, namedSchema(k, v as Json)),
  );
  return Buffer.concat([
    field(1, String(doc['swagger'])),
    field(2, Buffer.concat([field(1, info.title), field(2, info.version)])),
    field(8, Buffer.alloc(0)),
    field(9, Buffer.concat(defs)),
  ]);
}
