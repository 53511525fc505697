import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { errnoOf, VipmeshError } from '../errors.js';

/**
 * Where the server keeps each node's password hash. The server uses a file today; the control plane may
 * put it in the datastore by passing its own implementation.
 */
export interface NodePasswordStore {
  /** The stored hash for `node`, if any. */
  get(node: string): Promise<string | undefined>;
  /** Store `hash` for `node` (replacing any). */
  set(node: string, hash: string): Promise<void>;
  /** Forget `node` (so a reinstalled machine can join under the same name). */
  delete(node: string): Promise<void>;
  /** How many nodes have a password (needed for a cap on the node count). */
  count?(): Promise<number>;
}

/**
 * Hash a node password: `sha256:<salt hex>:<digest hex>`. A salted SHA-256 (not scrypt) on purpose: the
 * password is 32 random bytes made by the agent, so there is nothing to brute-force, and a slow hash would
 * make every reconnect (and every refused attempt) cost the server CPU.
 */
export function hashNodePassword(password: string, salt = randomBytes(16).toString('hex')): string {
  return `sha256:${salt}:${createHash('sha256').update(`${salt}:${password}`).digest('hex')}`;
}

/** True when `password` matches `hash` (constant-time compare). */
export function verifyNodePassword(password: string, hash: string): boolean {
  const [alg, salt, digest] = hash.split(':');
  if (alg !== 'sha256' || salt === undefined || digest === undefined) return false;
  const want = Buffer.from(digest, 'hex');
  const got = Buffer.from(hashNodePassword(password, salt).split(':')[2]!, 'hex');
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A JSON file `{node: hash}`, mode 0600, rewritten atomically (write, then rename). */
export class FileNodePasswordStore implements NodePasswordStore {
  readonly path: string;
  #map: Map<string, string> | undefined;

  constructor(path: string) {
    this.path = path;
  }

  async get(node: string): Promise<string | undefined> {
    return this.#load().get(node);
  }

  async set(node: string, hash: string): Promise<void> {
    this.#load().set(node, hash);
    this.#save();
  }

  async delete(node: string): Promise<void> {
    if (this.#load().delete(node)) this.#save();
  }

  async count(): Promise<number> {
    return this.#load().size;
  }

  #load(): Map<string, string> {
    if (this.#map !== undefined) return this.#map;
    const map = new Map<string, string>();
    try {
      if (existsSync(this.path)) {
        const doc = JSON.parse(readFileSync(this.path, 'utf8')) as Record<string, unknown>;
        for (const [k, v] of Object.entries(doc)) if (typeof v === 'string') map.set(k, v);
      }
    } catch (err) {
      throw new VipmeshError(
        'VIPMESH_TUNNEL_PASSWORD_STORE',
        `cannot read node passwords from ${this.path}`,
        {
          cause: err,
          details: { errno: errnoOf(err) },
        },
      );
    }
    this.#map = map;
    return map;
  }

  #save(): void {
    const tmp = `${this.path}.tmp-${process.pid}`;
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      writeFileSync(tmp, `${JSON.stringify(Object.fromEntries(this.#map ?? []), null, 1)}\n`, {
        mode: 0o600,
      });
      chmodSync(tmp, 0o600);
      renameSync(tmp, this.path);
    } catch (err) {
      throw new VipmeshError('VIPMESH_TUNNEL_PASSWORD_STORE', `cannot write node passwords to ${this.path}`, {
        cause: err,
        details: { errno: errnoOf(err) },
      });
    }
  }
}
