/**
 * The server's PKI: its CA and serving certificate, the join and admin tokens (`K10<CA sha256>::...`, as
 * k3s makes them), pinning the CA by a token's hash, the per-node password store, and the authorizer that
 * decides on an agent's tunnel connection from those.
 */
export { fetchAndPinCA } from '../util/ca-pin.js';
export {
  ensureServerCredentials,
  issueCertificate,
  type LeafRequest,
  type ServerCredentials,
} from './credentials.js';
export { type JoinAuthorizerOptions, joinAuthorizer } from './join-authorizer.js';
export {
  FileNodePasswordStore,
  hashNodePassword,
  type NodePasswordStore,
  verifyNodePassword,
} from './node-passwords.js';
export { checkToken, formatToken, parseToken } from './token.js';
