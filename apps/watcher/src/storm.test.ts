import { sumMetric } from '@storm-lab/harness';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Lab,
  SERVICE_USERNAME,
  scrape,
  startLab,
  submitMany,
  waitAllGraded,
} from './testing/lab.ts';

const QUEUES = ['sa', 'sb'];
const REPLICAS = 3;
const CONNECTIONS = 2;
const CONNECTIONS_TOTAL = REPLICAS * QUEUES.length * CONNECTIONS;

let lab: Lab | undefined;
afterEach(async () => {
  await lab?.stop();
  lab = undefined;
});

describe.each(['once-per-request', 'unbounded'])(
  'watcher fleet with single login enforced (%s)',
  (relogin) => {
    it('storms: logins far above connections and 403s on get_submission and put_result', async () => {
      lab = await startLab({
        queues: QUEUES,
        replicas: REPLICAS,
        connections: CONNECTIONS,
        // A short lock re-serves what a given-up put_result left behind, as production does after 5 min.
        lmsEnv: { PREVENT_CONCURRENT_LOGINS: 'true', XQUEUE_LOCK_SECONDS: '2' },
        watcherEnv: { WATCHER_RELOGIN: relogin },
      });
      const expected = await submitMany(lab, 50, QUEUES);
      const views = await waitAllGraded(expected, 60_000);
      expect(views.map((view) => view.correct)).toEqual(expected.map((one) => one.correct));

      const lms = await lab.lmsMetrics();
      const logins = sumMetric(lms, 'lms_logins_total', { account: SERVICE_USERNAME });
      expect(logins).toBeGreaterThan(3 * CONNECTIONS_TOTAL);
      expect(
        sumMetric(lms, 'lms_sessions_evicted_total', { account: SERVICE_USERNAME }),
      ).toBeGreaterThan(0);
      const forbidden = (route: string) =>
        sumMetric(lms, 'lms_http_responses_total', { route, status: '403' });
      expect(forbidden('/xqueue/get_submission/')).toBeGreaterThan(0);
      expect(forbidden('/xqueue/put_result/')).toBeGreaterThan(0);

      const watchers = await Promise.all(lab.fleet.metricsUrls.map(scrape));
      const total = (name: string, labels?: Record<string, string>) =>
        watchers.reduce((sum, text) => sum + sumMetric(text, name, labels), 0);
      // The storm goes on while we scrape, so the later watcher scrape can only be ahead.
      expect(total('watcher_logins_total')).toBeGreaterThanOrEqual(logins);
      expect(
        total('watcher_auth_failures_total', { endpoint: 'get_submission', status: '403' }),
      ).toBeGreaterThan(0);
      expect(
        total('watcher_auth_failures_total', { endpoint: 'put_result', status: '403' }),
      ).toBeGreaterThan(0);
      const giveups = total('watcher_relogin_giveups_total');
      const authFailures = total('watcher_auth_failures_total');
      // once-per-request gives a request up on its second failure; unbounded only when a login
      // itself fails (rare: the LMS answering 5xx under the storm).
      if (relogin === 'once-per-request') expect(giveups).toBeGreaterThan(0);
      else expect(giveups).toBeLessThan(authFailures / 50);
    }, 120_000);
  },
);
