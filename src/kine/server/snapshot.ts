import { createHash } from 'node:crypto';
import { createReadStream, rmSync, statSync } from 'node:fs';
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdBackend } from '../etcd-backend.js';
import { toStatus } from './common.js';

/** Bytes per SnapshotResponse (etcd sends 32 KiB chunks). */
const CHUNK_BYTES = 32 * 1024;

/**
 * Maintenance.Snapshot: streams a consistent copy of the SQLite database, `remaining_bytes` counting down
 * to 0, then, as etcd does, its SHA-256 as a last 32-byte message (etcdctl refuses a snapshot without it).
 * The result is a SQLite database, not etcd's bbolt file: SQLite reads it with the trailer in place, but
 * `etcdctl snapshot status` and `restore` cannot.
 */
export function snapshot(b: EtcdBackend, log: Logger) {
  return (call: ServerWritableStream<object, object>) => {
    b.snapshot().then(
      ({ file, rev }) => {
        const total = statSync(file).size;
        let sent = 0;
        const sha = createHash('sha256');
        const stream = createReadStream(file, { highWaterMark: CHUNK_BYTES });
        const cleanup = () => rmSync(file, { force: true });
        call.on('cancelled', () => {
          stream.destroy();
          cleanup();
        });
        stream.on('data', (chunk) => {
          const blob = chunk as Buffer;
          sent += blob.length;
          sha.update(blob);
          const more = call.write({ header: b.header(rev), remaining_bytes: total - sent, blob });
          if (!more) {
            stream.pause();
            call.once('drain', () => stream.resume());
          }
        });
        stream.on('error', (err) => {
          cleanup();
          call.emit('error', toStatus(err, log, 'Snapshot'));
        });
        stream.on('end', () => {
          cleanup();
          call.write({ header: b.header(rev), remaining_bytes: 0, blob: sha.digest() });
          call.end();
        });
      },
      (err: unknown) => call.emit('error', toStatus(err, log, 'Snapshot')),
    );
  };
}
