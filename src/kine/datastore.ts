import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { type AddressInfo, createServer, isIP, type Server as NetServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import {
  type MethodDefinition,
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import { isPortNumber, joinHostPort, splitHostPort } from '../util/host-port.js';
import { admitConnection } from './authority.js';
import { Backend } from './backend.js';
import { encodeRangeResponse } from './codec.js';
import type { CompactionOptions } from './compactor.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, restrictDatabaseFiles, restrictDir } from './file-modes.js';
import { type EtcdService, etcdServices } from './proto.js';
import { authService } from './server/auth.js';
import { clusterService } from './server/cluster.js';
import { GRPC_OVERHEAD_BYTES, MAX_REQUEST_BYTES, oversized } from './server/common.js';
import { kvService } from './server/kv.js';
import { leaseService } from './server/lease.js';
import { maintenanceService, unimplemented } from './server/maintenance.js';
import { type WatchOptions, watchService } from './server/watch.js';
import type { RangeResponse } from './types.js';

/** Options for {@link startDatastore}. */
export interface DatastoreOptions {
  /** Directory of the data file (created when missing; made 0700, see {@link restrictDir}). */
  dataDir: string;
  /** The data file; default `<dataDir>/state.db`. */
  dataFile?: string;
  /**
   * `host:port` (port 0 picks a free one) or `unix:///path/to.sock`. Default `127.0.0.1:2379`. A TCP
   * listener has no authentication: anyone who reaches it reads and writes every key (logged as a warning).
   * A unix socket is created 0600, so only its owner (and root) can connect.
   */
  listenAddress?: string;
  /** Automatic compaction; default: keep the last 1000 revisions, checked every 5 minutes. */
  compaction?: CompactionOptions;
  /** Watch stream limits (slow-watcher buffer, progress interval). */
  watch?: WatchOptions;
  /** The member name MemberList reports; default `default` (etcd's). */
  name?: string;
  logger: Logger;
  registry?: Registry;
  clock?: Clock;
}

/** A running datastore. */
export interface Datastore {
  /** Where it listens: `host:port` with the real port, or `unix:///path`. */
  readonly address: string;
  /** The client URL etcd clients take (`http://host:port` or `unix:///path`). */
  readonly url: string;
  /** The etcd operations, for embedding code that wants to skip gRPC. */
  readonly backend: Backend;
  /** Stop serving, commit queued writes, close the file. Idempotent. */
  close(): Promise<void>;
}

/**
 * Open the data file and serve the etcd v3 API on `listenAddress`: KV, Watch, Lease, Maintenance (Status,
 * Alarm, Defragment) and Cluster.MemberList; every other etcd RPC answers UNIMPLEMENTED naming itself.
 * The control plane embeds this; `vipmesh kine` runs it alone.
 */
export async function startDatastore(opts: DatastoreOptions): Promise<Datastore> {
  const log = opts.logger;
  const file = opts.dataFile ?? join(opts.dataDir, 'state.db');
  try {
    restrictDir(opts.dataDir, log);
    if (resolve(dirname(file)) !== resolve(opts.dataDir)) {
      mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
    }
    restrictDatabaseFiles(file, log);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    throw new VipmeshError(
      'VIPMESH_KINE_DB_OPEN',
      `cannot create data file ${file} (mode 0600): ${(err as Error).message}`,
      { cause: err, details: { file, errno } },
    );
  }
  const backend = new Backend({
    file,
    logger: log,
    ...(opts.registry !== undefined ? { registry: opts.registry } : {}),
    ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
    ...(opts.compaction !== undefined ? { compaction: opts.compaction } : {}),
  });
  const server = new Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': 2 ** 31 - 1,
  });
  let url = '';
  const defs = etcdServices();
  const impls: Record<EtcdService, UntypedServiceImplementation> = {
    KV: kvService(backend, log),
    Watch: watchService(backend, log, opts.watch),
    Lease: leaseService(backend, log),
    Maintenance: maintenanceService(backend, log),
    Cluster: clusterService(backend, log, { name: opts.name ?? 'default', clientUrls: () => [url] }),
    Auth: authService(log),
  };
  for (const name of Object.keys(defs) as EtcdService[]) {
    server.addService(withSizeCheck(defs[name]), completed(name, defs[name], impls[name]));
  }
  const listen = opts.listenAddress ?? '127.0.0.1:2379';
  let address: string;
  let listener: NetServer;
  try {
    ({ address, net: listener } = await bind(server, listen));
  } catch (err) {
    await backend.close();
    throw new VipmeshError('VIPMESH_KINE_LISTEN', `cannot listen on ${listen}: ${(err as Error).message}`, {
      cause: err,
      details: { listen },
    });
  }
  url = address.startsWith('unix:') ? address : `http://${address}`;
  if (!address.startsWith('unix:')) warnUnauthenticated(log, address);
  backend.start();
  log.info({ address, file, revision: backend.revision }, 'datastore serving');
  let closing: Promise<void> | undefined;
  return {
    address,
    url,
    backend,
    close() {
      closing ??= (async () => {
        listener.close();
        await new Promise<void>((resolve) => {
          // A real timer, not the Clock: it bounds how long real gRPC calls may take to finish.
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 1000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await backend.close();
        log.info({ file }, 'datastore closed');
      })();
      return closing;
    },
  };
}

/**
 * Listen with our own net.Server and hand each connection to grpc-js: grpc-js's own listener leaves Nagle's
 * algorithm on for accepted sockets, which delays small responses (watch events, put acks) on loopback.
 */
async function bind(server: Server, listen: string): Promise<{ address: string; net: NetServer }> {
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  // admitConnection: etcdctl's URL-shaped authorities (see authority.ts), at no cost after the first request.
  const net = createServer({ noDelay: true }, (socket) =>
    admitConnection(socket, (s) => injector.injectConnection(s)),
  );
  let address: string;
  if (listen.startsWith('unix://')) {
    const path = listen.slice('unix://'.length);
    try {
      // A socket left by a killed process would make listen fail with EADDRINUSE.
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      // nothing there
    }
    // sun_path holds 108 bytes with the terminating NUL; a longer path would be cut or refused.
    const bytes = Buffer.byteLength(path);
    if (bytes > 107) {
      throw new Error(`unix socket path ${path} is ${bytes} bytes; the limit is 107`);
    }
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      net.listen(path, () => resolve());
    });
    // Connecting needs write access to the socket file: owner only, whatever the umask.
    chmodSync(path, PRIVATE_FILE_MODE);
    address = listen;
  } else {
    const { host, port } = splitHostPort(listen, '');
    if (!listen.includes(':') || !isPortNumber(port)) {
      throw new Error(`"${listen}" is not host:port or unix:///path`);
    }
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      net.listen({ host, port }, () => resolve());
    });
    const bound = net.address() as AddressInfo;
    address = joinHostPort(host, bound.port);
  }
  net.on('error', () => undefined);
  return { address, net };
}

/** Say, at every start, that a TCP listener lets whoever reaches it read and write every key. */
function warnUnauthenticated(log: Logger, address: string): void {
  const { host } = splitHostPort(address, '');
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
  log.warn(
    { address, authentication: 'none', tls: false },
    loopback
      ? `datastore listens on ${address} with no authentication: every local user can read and write every key; use a unix:// socket to restrict it to its owner`
      : `datastore listens on ${address} with no authentication and no TLS: anyone who can reach this address can read and write every key; use a unix:// socket or a firewall`,
  );
}

/**
 * Mark Put and Txn requests over etcd's 1.5 MiB request limit while decoding (the handler rejects them), and
 * encode Range responses with the hand-written encoder, into the buffer it keeps.
 */
function withSizeCheck(def: ServiceDefinition): ServiceDefinition {
  const out: Record<string, MethodDefinition<object, object>> = {};
  for (const [name, m] of Object.entries(def) as Array<[string, MethodDefinition<object, object>]>) {
    if (name === 'Range' && m.path === '/etcdserverpb.KV/Range') {
      // grpc-js copies a serialized response behind its 5-byte prefix at once, before it serializes
      // another, so the encoder may write every response into the one buffer it keeps.
      out[name] = {
        ...m,
        responseSerialize: (res: object) => encodeRangeResponse(res as RangeResponse, true),
      };
      continue;
    }
    if (name !== 'Put' && name !== 'Txn') {
      out[name] = m;
      continue;
    }
    out[name] = {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        const msg = m.requestDeserialize(buf);
        if (buf.length > MAX_REQUEST_BYTES) oversized.add(msg);
        return msg;
      },
    };
  }
  return out as ServiceDefinition;
}

/** Fill every RPC `impl` lacks with a handler answering UNIMPLEMENTED that names the RPC. */
function completed(
  service: EtcdService,
  def: ServiceDefinition,
  impl: UntypedServiceImplementation,
): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = { ...impl };
  for (const [name, m] of Object.entries(def)) {
    if (out[name] !== undefined) continue;
    const err = unimplemented(`etcdserverpb.${service}/${name}`);
    const handler = m.responseStream
      ? (call: { emit(ev: 'error', e: unknown): void }) => {
          call.emit('error', err);
        }
      : (_call: unknown, cb: (e: unknown) => void) => {
          cb(err);
        };
    out[name] = handler as UntypedHandleCall;
  }
  return out;
}
