import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { etcdErrors } from '../errors.js';
import { unary } from './common.js';

/**
 * Auth as etcd answers it with authentication off: Authenticate fails with "authentication is not enabled",
 * which etcd clients configured with a user take as "carry on without a token". The user, role and
 * `auth enable` RPCs stay unimplemented (no authentication is built).
 */
export function authService(log: Logger): UntypedServiceImplementation {
  return {
    Authenticate: unary<object, object>(log, 'Authenticate', () => {
      throw etcdErrors.authNotEnabled();
    }),
  };
}
