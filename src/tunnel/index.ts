/**
 * The agent<->server tunnel: one websocket over TLS per agent on the server's HTTPS port at `/v1/connect`,
 * carrying control messages (registration, heartbeats, request/response/push) and TCP streams in both
 * directions with per-stream credit flow control. The tunnel holds no keys: the server side is given a
 * `ConnectAuthorizer` to decide on each agent, the client the CA hash to pin.
 */
export type { ClaimVerdict, SessionClaims } from './authorizer.js';
export { type NeighbourProbe, TunnelClient, type TunnelClientOptions } from './client.js';
export type { Connector } from './connector.js';
export { NODE_IN_USE_CLOSE_CODE, TunnelServer } from './server.js';
