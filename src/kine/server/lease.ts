import type { ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Backend } from '../backend.js';
import type { Int64 } from '../types.js';
import { toStatus, unary } from './common.js';

/** The Lease service over the backend's lessor. */
export function leaseService(b: Backend, log: Logger): UntypedServiceImplementation {
  return {
    LeaseGrant: unary<{ TTL: Int64; ID: Int64 }, object>(log, 'LeaseGrant', async (req) => {
      const { id, ttl } = await b.lessor.grant(Number(req.ID), Number(req.TTL));
      return { header: b.header(), ID: id, TTL: ttl, error: '' };
    }),
    LeaseRevoke: unary<{ ID: Int64 }, object>(log, 'LeaseRevoke', async (req) => {
      const rev = await b.lessor.revoke(Number(req.ID));
      return { header: b.header(rev) };
    }),
    LeaseTimeToLive: unary<{ ID: Int64; keys: boolean }, object>(log, 'LeaseTimeToLive', (req) => {
      const ttl = b.lessor.timeToLive(Number(req.ID), req.keys);
      // etcd answers an unknown lease with TTL -1, not an error (v3rpc/lease.go).
      if (ttl === undefined) return { header: b.header(), ID: req.ID, TTL: -1, grantedTTL: 0, keys: [] };
      return { header: b.header(), ID: ttl.id, TTL: ttl.ttl, grantedTTL: ttl.grantedTtl, keys: ttl.keys };
    }),
    LeaseLeases: unary<object, object>(log, 'LeaseLeases', () => ({
      header: b.header(),
      leases: b.lessor.list().map((ID) => ({ ID })),
    })),
    LeaseKeepAlive: (call: ServerDuplexStream<{ ID: Int64 }, object>) => {
      call.on('data', (req: { ID: Int64 }) => {
        // An unknown or expired lease gets TTL 0 (etcd sends ErrLeaseNotFound as TTL 0 on this stream).
        const ttl = b.lessor.renew(Number(req.ID));
        call.write({ header: b.header(), ID: req.ID, TTL: ttl });
      });
      call.on('end', () => call.end());
      call.on('error', (err: unknown) => {
        const s = toStatus(err, log, 'LeaseKeepAlive');
        log.debug({ code: s.code }, 'keep-alive stream ended');
      });
    },
  };
}
