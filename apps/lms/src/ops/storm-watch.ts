import type { AccountRates, StormAlert, StormDetector } from '@storm-lab/session-policy';

/**
 * The LMS's storm detector as the login path and the dashboard use it: one per LMS, however
 * many workers serve it. In one process it is the session-policy detector itself; with
 * LMS_WORKERS > 1 every worker hands its logins to the primary's detector (see cluster/), so
 * an alert and the rates count the logins and evictions of all workers.
 */
export interface StormWatch {
  /** Records one login of `account` and the sessions it evicted; resolves with the alerts raised. */
  record(account: string, at: number, evicted: number): Promise<StormAlert[]>;
  /** Logins and evictions per minute of each account seen in the window. */
  rates(at: number): Promise<AccountRates[]>;
}

/**
 * Records straight into a detector of this process.
 *
 * @example
 * const watch = localStormWatch(createStormDetector({ evictionsPerMinuteThreshold: 30 }));
 * await watch.record('xqueue_svc', Date.now(), 1); // [] until the rate crosses the threshold
 */
export function localStormWatch(detector: StormDetector): StormWatch {
  return {
    async record(account, at, evicted) {
      const alerts = [detector.recordLogin(account, at)];
      if (evicted > 0) alerts.push(detector.recordEviction(account, at, evicted));
      return alerts.filter((alert): alert is StormAlert => alert !== null);
    },
    async rates(at) {
      return detector.rates(at);
    },
  };
}
