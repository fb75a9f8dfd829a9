export { CookieJar } from './cookie-jar.ts';
export { type Patience, WebClient, type WebClientOptions } from './web-client.ts';
export {
  type ClientMode,
  type FetchLike,
  type PullOutcome,
  type PutOutcome,
  XQueueClient,
  type XQueueClientObserver,
  type XQueueClientOptions,
  XQueueConnectionError,
  type XQueueEndpoint,
  XQueueTimeoutError,
} from './xqueue-client.ts';
