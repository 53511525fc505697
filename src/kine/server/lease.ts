import type { ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdBackend } from '../etcd-backend.js';
import type { Int64 } from '../types.js';
import { toStatus, unary } from './common.js';

/** The Lease service. */
export function leaseService(b: EtcdBackend, log: Logger): UntypedServiceImplementation {
  return {
    LeaseGrant: unary<{ TTL: Int64; ID: Int64 }, object>(log, 'LeaseGrant', async (req) => {
      const { id, ttlSeconds } = await b.leaseGrant(Number(req.ID), Number(req.TTL));
      return { header: b.header(), ID: id, TTL: ttlSeconds, error: '' };
    }),
    LeaseRevoke: unary<{ ID: Int64 }, object>(log, 'LeaseRevoke', async (req) => {
      const rev = await b.leaseRevoke(Number(req.ID));
      return { header: b.header(rev) };
    }),
    LeaseTimeToLive: unary<{ ID: Int64; keys: boolean }, object>(log, 'LeaseTimeToLive', (req) => {
      const ttl = b.leaseTimeToLive(Number(req.ID), req.keys);
      // etcd answers an unknown lease with TTL -1, not an error (v3rpc/lease.go).
      if (ttl === undefined) return { header: b.header(), ID: req.ID, TTL: -1, grantedTTL: 0, keys: [] };
      return {
        header: b.header(),
        ID: ttl.id,
        TTL: ttl.ttlSeconds,
        grantedTTL: ttl.grantedTtlSeconds,
        keys: ttl.keys,
      };
    }),
    LeaseLeases: unary<object, object>(log, 'LeaseLeases', () => ({
      header: b.header(),
      leases: b.leaseList().map((ID) => ({ ID })),
    })),
    LeaseKeepAlive: (call: ServerDuplexStream<{ ID: Int64 }, object>) => {
      call.on('data', (req: { ID: Int64 }) => {
        // An unknown or expired lease gets TTL 0 (etcd sends ErrLeaseNotFound as TTL 0 on this stream).
        const ttlSeconds = b.leaseRenew(Number(req.ID));
        call.write({ header: b.header(), ID: req.ID, TTL: ttlSeconds });
      });
      call.on('end', () => call.end());
      call.on('error', (err: unknown) => {
        const s = toStatus(err, log, 'LeaseKeepAlive');
        log.debug({ code: s.code }, 'keep-alive stream ended');
      });
    },
  };
}
