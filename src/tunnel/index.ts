/**
 * The agent<->server tunnel: one websocket over TLS per agent on the server's HTTPS port at `/v1/connect`,
 * carrying control messages (registration, heartbeats, request/response/push) and TCP streams in both
 * directions with per-stream credit flow control. The tunnel holds no keys: the server side is given a
 * {@link ConnectAuthorizer} to decide on each agent, the client the CA hash to pin.
 */
export type { ConnectAuthorizer, ConnectCredentials, ConnectVerdict } from './authorizer.js';
export { Backoff, type BackoffOptions } from './backoff.js';
export { TunnelClient, type TunnelClientEvents, type TunnelClientOptions } from './client.js';
export { type Connection, type Connector, type OpenOptions, wsConnector } from './connector.js';
export {
  CONNECT_PATH,
  guardHandshakes,
  type Registration,
  TunnelServer,
  type TunnelServerEvents,
  type TunnelServerOptions,
} from './server.js';
export {
  type ConnectTarget,
  type FrameTransport,
  type RequestHandler,
  Session,
  type SessionEvents,
  type SessionOptions,
} from './session.js';
export { TunnelStream } from './stream.js';
export { type AllowFn, allowList, loopbackPorts, type Target } from './target.js';
