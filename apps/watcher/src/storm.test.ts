import { sumMetric, waitFor } from '@storm-lab/harness';
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

async function stormLab(mode: string): Promise<Lab> {
  return startLab({
    queues: QUEUES,
    replicas: REPLICAS,
    connections: CONNECTIONS,
    // A short lock re-serves what a given-up put_result left behind, as production does after 5 min.
    lmsEnv: { PREVENT_CONCURRENT_LOGINS: 'true', XQUEUE_LOCK_SECONDS: '2' },
    watcherEnv: { WATCHER_MODE: mode },
  });
}

async function fleetTotal(current: Lab) {
  const watchers = await Promise.all(current.fleet.metricsUrls.map(scrape));
  return (name: string, labels?: Record<string, string>) =>
    watchers.reduce((sum, text) => sum + sumMetric(text, name, labels), 0);
}

describe.each(['current', 'hardened'])('watcher fleet (%s) with single login enforced', (mode) => {
  it('storms: connections log in again and evict each other, with 403s on get_submission and put_result', async () => {
    lab = await stormLab(mode);
    const expected = await submitMany(lab, 30, QUEUES);
    const views = await waitAllGraded(expected, 90_000);
    expect(views.map((view) => view.correct)).toEqual(expected.map((one) => one.correct));

    const lms = await lab.lmsMetrics();
    const logins = sumMetric(lms, 'lms_logins_total', { account: SERVICE_USERNAME });
    // How far above depends on how fast this machine runs the storm (a figure for the bench);
    // that connections log in again, evicting each other, is the storm itself.
    expect(logins).toBeGreaterThan(CONNECTIONS_TOTAL);
    expect(
      sumMetric(lms, 'lms_sessions_evicted_total', { account: SERVICE_USERNAME }),
    ).toBeGreaterThan(0);
    const forbidden = (route: string) =>
      sumMetric(lms, 'lms_http_responses_total', { route, status: '403' });
    expect(forbidden('/xqueue/get_submission/')).toBeGreaterThan(0);
    expect(forbidden('/xqueue/put_result/')).toBeGreaterThan(0);

    const total = await fleetTotal(lab);
    // The storm goes on while we scrape, so the later watcher scrape can only be ahead.
    expect(total('watcher_logins_total')).toBeGreaterThanOrEqual(logins);
    expect(
      total('watcher_auth_failures_total', { endpoint: 'get_submission', status: '403' }),
    ).toBeGreaterThan(0);
    // Both re-log in once per request and give up on a second 403.
    expect(total('watcher_relogin_giveups_total')).toBeGreaterThan(0);
  }, 150_000);
});

describe('watcher fleet (legacy, before a00741d) with single login enforced', () => {
  it('stalls: one login per connection, evicted connections never recover', async () => {
    lab = await stormLab('legacy');
    const current = lab;
    const expected = await submitMany(current, 30, QUEUES);
    // The last connection to log in survives and grades its own queue; every other one,
    // the whole other queue included, is refused forever.
    const survivorQueue = await waitFor(
      async () => {
        const views = await Promise.all(expected.map((one) => one.student.get(one.id)));
        const graded = QUEUES.map(
          (_queue, q) =>
            views.filter((view, i) => i % QUEUES.length === q && view.state === 'graded').length,
        );
        const done = graded.indexOf(15);
        return done >= 0 ? { queue: QUEUES[done], other: graded[1 - done] } : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the surviving connection to grade its queue' },
    );
    expect(survivorQueue.other).toBe(0);
    const lms = await current.lmsMetrics();
    // No connection logs in again: at most one login per connection (a connection still
    // starting on a loaded machine may not have logged in yet, so not an exact count).
    const logins = sumMetric(lms, 'lms_logins_total', { account: SERVICE_USERNAME });
    expect(logins).toBeGreaterThan(0);
    expect(logins).toBeLessThanOrEqual(CONNECTIONS_TOTAL);
    expect(
      sumMetric(lms, 'lms_http_responses_total', {
        route: '/xqueue/get_submission/',
        status: '403',
      }),
    ).toBeGreaterThan(CONNECTIONS_TOTAL);
    const total = await fleetTotal(current);
    expect(total('watcher_logins_total')).toBeGreaterThanOrEqual(logins);
    expect(total('watcher_logins_total')).toBeLessThanOrEqual(CONNECTIONS_TOTAL);
    // A 403 is never taken for an expired login: nothing to log in again for.
    expect(total('watcher_auth_failures_total')).toBe(0);
  }, 90_000);
});
