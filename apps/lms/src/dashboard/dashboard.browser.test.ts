import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  chromiumLaunch,
  type LocalLms,
  type LocalRedis,
  startLms,
  startRedis,
  startWatchers,
  type WatcherFleet,
  waitFor,
} from '@storm-lab/harness';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, urlFetcher } from '../testing/client.ts';

const RESULTS_DIR = fileURLToPath(new URL('../../test-results/', import.meta.url));
const QUEUE = 'dash-queue';
const SERVICE = { username: 'xqueue_svc', password: 'dash-svc-pass' };
const STAFF = { username: 'staff', password: 'dash-staff-pass' };
const STUDENT_PASSWORD = 'dash-student-pass';
const SUBMIT_EVERY_MS = 300;
const UI_TIMEOUT_MS = 20_000;

let redis: LocalRedis | undefined;
let lms: LocalLms | undefined;
let fleet: WatcherFleet | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  const launch = chromiumLaunch(); // before anything starts: says how to install it
  redis = await startRedis();
  lms = await startLms({
    env: {
      PASSWORD_HASH_ITERATIONS: '1000',
      LOG_LEVEL: 'warn',
      // Low, so that the alert shows within a second or two of a small storm.
      STORM_ALERT_EVICTIONS_PER_MINUTE: '6',
      // A result given up in the storm is served again soon, as production does after 5 min.
      XQUEUE_LOCK_SECONDS: '2',
    },
    seed: [
      ...['--queues', QUEUE, '--students', '2'],
      ...['--service-password', SERVICE.password, '--staff-password', STAFF.password],
      ...['--student-password', STUDENT_PASSWORD],
    ],
  });
  fleet = await startWatchers({
    replicas: 1,
    env: {
      REDIS_URL: redis.url,
      LMS_URL: lms.url,
      XQUEUE_USERNAME: SERVICE.username,
      XQUEUE_PASSWORD: SERVICE.password,
      WATCHER_QUEUES: QUEUE,
      WATCHER_CONNECTIONS: '2',
      WATCHER_QUEUE_PREFIX: `dashboard-${process.pid}-${Date.now()}`,
      XQWATCHER_POLL_INTERVAL: '0.05',
      XQWATCHER_LOGIN_POLL_INTERVAL: '0.25',
      WATCHER_JOB_LOCK_MS: '1500',
      LOG_LEVEL: 'warn',
    },
  });
  browser = await chromium.launch(launch);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await fleet?.stopAll();
  await lms?.stop();
  await redis?.stop();
}, 60_000);

/** A student who submits an answer every few hundred ms until stopped. */
async function startTrickle(url: string) {
  const student = new TestClient(urlFetcher(url));
  expect((await student.webLogin('student1', STUDENT_PASSWORD)).status).toBe(200);
  const failures: string[] = [];
  let index = 0;
  const timer = setInterval(() => {
    index += 1;
    const problem = `${QUEUE}-p${(index % 3) + 1}`;
    student
      .postJson('/api/submissions', {
        queue_name: QUEUE,
        problem_id: problem,
        student_response: `answer-${problem}`,
      })
      .then((response) => {
        if (response.status !== 201) failures.push(`submission: HTTP ${response.status}`);
      })
      .catch((error: Error) => failures.push(error.message));
  }, SUBMIT_EVERY_MS);
  return { failures, stop: () => clearInterval(timer) };
}

async function tile(page: Page, key: string): Promise<string> {
  return (await page.locator(`#rate-${key}`).textContent()) ?? '';
}

describe('the storm dashboard in a browser', () => {
  it('shows the storm, takes the exemption through the form, and shows the storm end', async () => {
    const trickle = await startTrickle(lms!.url);
    const context = await browser!.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
    try {
      await page.goto(`${lms!.url}/dashboard`);
      expect(new URL(page.url()).pathname).toBe('/dashboard/login');
      await page.fill('input[name=username]', STAFF.username);
      await page.fill('input[name=password]', STAFF.password);
      await Promise.all([page.waitForURL(/\/dashboard$/), page.click('button[type=submit]')]);

      const alert = page.locator(`.alert.storm[data-account="${SERVICE.username}"]`);
      await alert.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
      expect(await alert.textContent()).toContain(
        `SINGLE_LOGIN_EXEMPT_USERNAMES=${SERVICE.username}`,
      );
      await page.locator('tr.storming', { hasText: SERVICE.username }).waitFor();
      await mkdir(RESULTS_DIR, { recursive: true });
      await page.screenshot({ path: `${RESULTS_DIR}dashboard-storm.png` });

      await alert.getByRole('button', { name: `Exempt ${SERVICE.username}` }).click();
      expect(await page.inputValue('input[name=exemptUsernames]')).toBe(SERVICE.username);
      expect(await page.inputValue('input[name=reason]')).toContain('Login storm on xqueue_svc');
      await page.click('#policy-form button[type=submit]');
      await page.locator('#form-status', { hasText: 'Saved' }).waitFor({ timeout: UI_TIMEOUT_MS });
      await page.locator('#audit tbody tr', { hasText: 'Login storm on xqueue_svc' }).waitFor();
      await page.locator('.alert.subsiding', { hasText: 'is exempt now' }).waitFor();

      // The storm is over when no login happened for a few seconds while results still come in.
      const calm = await waitFor(
        async () => {
          const [logins, evictions, graded] = await Promise.all(
            ['logins', 'evictions', 'graded'].map((key) => tile(page, key)),
          );
          const gradedPerSecond = Number(graded);
          return logins === '0' && evictions === '0' && gradedPerSecond > 0
            ? { gradedPerSecond }
            : undefined;
        },
        { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250, what: 'login rate 0 and grading going' },
      );
      expect(calm.gradedPerSecond).toBeGreaterThan(0);
      expect(await page.locator('#policy-summary').textContent()).toContain(
        `exempt: ${SERVICE.username}`,
      );
      await page.screenshot({ path: `${RESULTS_DIR}dashboard.png`, fullPage: true });
      expect(trickle.failures).toEqual([]);
      expect(consoleErrors).toEqual([]);
    } finally {
      trickle.stop();
      await context.close();
    }
  }, 60_000);
});
