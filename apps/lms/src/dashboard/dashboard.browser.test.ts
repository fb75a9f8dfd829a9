import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  chromiumLaunch,
  type LocalLms,
  type LocalRedis,
  startLms,
  startRedis,
  startWatchers,
  sumMetric,
  type WatcherFleet,
  waitFor,
} from '@storm-lab/harness';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, urlFetcher } from '../testing/client.ts';
import { currentShortId, endedReason } from '../testing/sessions.ts';

const RESULTS_DIR = fileURLToPath(new URL('../../test-results/', import.meta.url));
const QUEUE = 'dash-queue';
const SERVICE = { username: 'xqueue_svc', password: 'dash-svc-pass' };
const STAFF = { username: 'staff', password: 'dash-staff-pass' };
const STUDENT_PASSWORD = 'dash-student-pass';
const SUBMIT_EVERY_MS = 300;
const UI_TIMEOUT_MS = 20_000;
/** Logs in from several client instances in the sessions test: one session per instance. */
const MULTI = 'student2';
const XSS_AGENT = '<img src=x onerror="document.body.dataset.pwned=1">';

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
      // Instance scope: each client instance of MULTI keeps its own session.
      SINGLE_LOGIN_RULES: JSON.stringify([{ match: { username: MULTI }, scope: 'instance' }]),
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

/** The LMS's own counts (its /metrics): results graded and sessions evicted, all accounts. */
async function lmsCounts() {
  const text = await (await fetch(`${lms!.url}/metrics`)).text();
  return {
    graded: sumMetric(text, 'lms_submissions_graded_total'),
    evicted: sumMetric(text, 'lms_sessions_evicted_total'),
  };
}

async function tile(page: Page, key: string): Promise<string> {
  return (await page.locator(`#rate-${key}`).textContent()) ?? '';
}

/** MULTI logged in through the LMS's own `/login`, naming itself with `X-Client-Instance`. */
async function loginFrom(instance: string, userAgent: string) {
  const client = new TestClient(urlFetcher(lms!.url));
  Object.assign(client.headers, { 'X-Client-Instance': instance, 'User-Agent': userAgent });
  expect((await client.webLogin(MULTI, STUDENT_PASSWORD)).status).toBe(200);
  return { client, id: await currentShortId(client) };
}

/** A fresh browser logged in to the dashboard as staff, recording console errors. */
async function openDashboard() {
  const context = await browser!.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  await page.goto(`${lms!.url}/dashboard`);
  expect(new URL(page.url()).pathname).toBe('/dashboard/login');
  await page.fill('input[name=username]', STAFF.username);
  await page.fill('input[name=password]', STAFF.password);
  await Promise.all([page.waitForURL(/\/dashboard$/), page.click('button[type=submit]')]);
  return { context, page, consoleErrors };
}

describe('the storm dashboard in a browser', () => {
  it('shows the storm, takes the exemption through the form, and shows the storm end', async () => {
    const trickle = await startTrickle(lms!.url);
    const { context, page, consoleErrors } = await openDashboard();
    try {
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

      // The storm is over: no session is evicted any more while results still come in. Logins
      // may go on (on a loaded machine a watcher request times out and logs in again), but with
      // the exemption they end no one's session. First the evictions tile empties of the
      // storm's (it averages the last few seconds), then, counted at the LMS, more results are
      // graded and not one session is evicted meanwhile.
      await waitFor(async () => ((await tile(page, 'evictions')) === '0' ? true : undefined), {
        timeoutMs: UI_TIMEOUT_MS,
        intervalMs: 250,
        what: 'eviction rate 0',
      });
      const before = await lmsCounts();
      await waitFor(
        async () => ((await lmsCounts()).graded >= before.graded + 3 ? true : undefined),
        { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250, what: 'three more results graded' },
      );
      expect((await lmsCounts()).evicted).toBe(before.evicted);
      const calm = await waitFor(
        async () => {
          const gradedPerSecond = Number(await tile(page, 'graded'));
          return gradedPerSecond > 0 ? { gradedPerSecond } : undefined;
        },
        { timeoutMs: UI_TIMEOUT_MS, intervalMs: 250, what: 'grading shown going' },
      );
      expect(calm.gradedPerSecond).toBeGreaterThan(0);
      expect(await tile(page, 'evictions')).toBe('0');
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

  it("lists an account's sessions by client instance, as text, and ends them from the panel", async () => {
    // Created b before a: the table sorts by instance, not by age.
    const b = await loginFrom('replica-b/conn-1', 'dash-test/1.0');
    const a = await loginFrom('replica-a/conn-0', XSS_AGENT);
    const { context, page, consoleErrors } = await openDashboard();
    const rows = page.locator('#sessions tbody tr');
    const rowOf = (id: string) => page.locator(`#sessions tbody tr[data-id="${id}"]`);
    try {
      // By default the xqueue service account, whose watcher (as upstream's) names no instance.
      await page.locator('#sessions-summary', { hasText: SERVICE.username }).waitFor();
      expect(await page.inputValue('#sessions-form input[name=username]')).toBe(SERVICE.username);
      await rows
        .filter({ has: page.locator('td.instance', { hasText: '—' }) })
        .first()
        .waitFor();

      await page.fill('#sessions-form input[name=username]', MULTI);
      await page.click('#sessions-form button[type=submit]');
      await rowOf(b.id).waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await page.locator('#sessions tbody td.instance').allTextContents()).toEqual([
        'replica-a/conn-0',
        'replica-b/conn-1',
      ]);
      expect(await rowOf(b.id).locator('td.agent').textContent()).toBe('dash-test/1.0');
      // The markup in the user agent is text: no element made of it, no handler run.
      expect(await rowOf(a.id).locator('td.agent').textContent()).toBe(XSS_AGENT);
      expect(await page.locator('#sessions img').count()).toBe(0);
      expect(await page.locator('body').getAttribute('data-pwned')).toBeNull();
      await mkdir(RESULTS_DIR, { recursive: true });
      await page.screenshot({ path: `${RESULTS_DIR}dashboard-sessions.png`, fullPage: true });

      const kept = await rowOf(a.id).elementHandle();
      await rowOf(b.id).getByRole('button', { name: 'End' }).click();
      await rowOf(b.id).waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
      await page.locator('#sessions-status', { hasText: `Ended session ${b.id}` }).waitFor();
      expect(await endedReason(b.client)).toEqual({
        status: 403,
        header: 'staff',
        reason: 'staff',
      });
      expect((await a.client.get('/api/sessions')).status).toBe(200);
      // Refreshed in place: the other row is the same element, not redrawn.
      expect(await kept!.evaluate((row) => row.isConnected)).toBe(true);

      page.once('dialog', (dialog) => void dialog.accept());
      await page.click('#sessions-end-all');
      await rows.filter({ hasText: 'No live sessions.' }).waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await endedReason(a.client)).toEqual({
        status: 403,
        header: 'staff',
        reason: 'staff',
      });
      expect(consoleErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('pages through the policy changes: older ones stay reachable past the newest 50', async () => {
    const staff = new TestClient(urlFetcher(lms!.url));
    expect((await staff.webLogin(STAFF.username, STAFF.password)).status).toBe(200);
    // Groups nobody is in: the changes are real, and change no login.
    for (let change = 1; change <= 51; change += 1) {
      const settings = { exemptGroups: [`audit-${change}`] };
      const saved = await staff.request('/api/admin/policy', {
        method: 'PUT',
        body: JSON.stringify({ settings, reason: `audit page #${change}` }),
        headers: { 'content-type': 'application/json' },
      });
      expect(saved.status).toBe(200);
    }
    const { context, page, consoleErrors } = await openDashboard();
    const rows = page.locator('#audit tbody tr');
    const reason = (n: number) =>
      page.locator('#audit tbody td', { hasText: new RegExp(`^audit page #${n}$`) });
    try {
      await reason(51).waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await rows.count()).toBe(50);
      expect(await page.isDisabled('#audit-newest')).toBe(true);
      await page.click('#audit-older');
      await reason(1).waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await reason(51).count()).toBe(0);
      expect(await page.isDisabled('#audit-newest')).toBe(false);
      await page.click('#audit-newest');
      await reason(51).waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await page.isDisabled('#audit-newest')).toBe(true);
      expect(consoleErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
