export {
  connect,
  HeraldClient,
  type ClientEvents,
  type ConnectOptions,
  type HeraldMessage,
  type PublishOptions,
  type RequestOptions,
  type State,
  type SubscribeOptions,
  type Subscription,
} from './client.js';
export {
  HeraldAdmin,
  HttpAdminTransport,
  StompAdminTransport,
  type AdminTransport,
  type Delivery,
  type HttpAdminOptions,
  type Presence,
} from './admin.js';
export {
  backoffDelay,
  backoffOf,
  backoffWindow,
  type Backoff,
  type ReconnectOptions,
} from './backoff.js';
export { decodeBody, encodeBody, type Body } from './body.js';
export { HeraldError, type HeraldErrorCode } from './errors.js';
export { OfflineQueue } from './queue.js';
export { user, userDestination } from './user.js';
