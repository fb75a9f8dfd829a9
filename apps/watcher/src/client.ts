import { XQueueClient, type XQueueClientOptions } from '@storm-lab/lms-client';
import { logEvent } from './events.ts';
import type { WatcherMetrics } from './metrics.ts';

/** An xqueue client's options, with the replica's metrics in place of an observer. */
export type WatcherClientOptions = Omit<XQueueClientOptions, 'observer'> & {
  metrics: WatcherMetrics;
};

/**
 * Creates one of a replica's xqueue clients: the shared client, its observations counted in
 * the replica's metrics. It logs a `first-login` event line per client (a supervisor that starts
 * replicas one by one waits for these instead of polling metrics) and a `login-timeout` line.
 *
 * @example
 * const client = createWatcherClient({ serverUrl, queue: 'a', mode: 'current', metrics, ... });
 */
export function createWatcherClient(options: WatcherClientOptions): XQueueClient {
  const { metrics, ...clientOptions } = options;
  const { queue, logger } = options;
  return new XQueueClient({
    ...clientOptions,
    observer: {
      loggedIn(seconds) {
        metrics.logins.inc({ queue });
        metrics.loginSeconds.observe({ queue }, seconds);
      },
      loginTimedOut(message) {
        metrics.loginTimeouts.inc({ queue });
        logEvent(logger, 'warn', 'login-timeout', {}, message);
      },
      firstLoginEnded(ok) {
        logEvent(logger, 'info', 'first-login', { ok }, 'first login attempt ended');
      },
      authFailed(endpoint, status) {
        metrics.authFailures.inc({ endpoint, status: String(status) });
      },
      gaveUp(endpoint) {
        metrics.reloginGiveups.inc({ endpoint });
      },
    },
  });
}
