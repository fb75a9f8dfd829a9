import type { Logger } from 'pino';

/**
 * Events a supervisor counts from a replica's stdout: each is one JSON line with an `event`
 * field, printed whatever LOG_LEVEL says (the storm runner and the harness read them).
 */
export type WatcherEvent = 'first-login' | 'login-timeout' | 'connection-died' | 'replica-exit';

/**
 * Logs one {@link WatcherEvent} line.
 *
 * @example
 * logEvent(logger, 'error', 'connection-died', { reason }, 'connection died');
 */
export function logEvent(
  logger: Logger,
  level: 'info' | 'warn' | 'error',
  event: WatcherEvent,
  fields: Record<string, unknown>,
  message: string,
): void {
  logger.child({ event }, { level: 'info' })[level](fields, message);
}
