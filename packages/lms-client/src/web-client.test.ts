import { type LocalLms, startLms, sumMetric, waitFor } from '@storm-lab/harness';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { WebClient } from './web-client.ts';

let lms: LocalLms | undefined;
afterEach(async () => {
  await lms?.stop();
  lms = undefined;
});

/** Two wrong passwords from loopback: the address is refused for the 2 s window. */
async function throttledLms(env: Record<string, string> = {}): Promise<LocalLms> {
  const started = await startLms({
    env: {
      PASSWORD_HASH_ITERATIONS: '1000',
      LOG_LEVEL: 'warn',
      LOGIN_THROTTLE_FAILURES: '2',
      LOGIN_THROTTLE_WINDOW_SECONDS: '2',
      ...env,
    },
  });
  for (let failure = 0; failure < 2; failure++) {
    await expect(new WebClient(started.url).login('student2', 'wrong')).rejects.toThrow(/401/);
  }
  return started;
}

describe('WebClient against a real LMS', { timeout: 60_000 }, () => {
  it('logs a student in through the login page, and says when the session is gone', async () => {
    lms = await startLms({ env: { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn' } });
    const first = new WebClient(lms.url);
    await first.login('student1', 'student-pass');
    expect(await first.isLoggedIn()).toBe(true);
    // Single login: the second login of the same student ends the first one's session.
    await new WebClient(lms.url).login('student1', 'student-pass');
    expect(await first.isLoggedIn()).toBe(false);
  });

  it('names its own address to an LMS behind a proxy, so loopback being throttled does not refuse it', async () => {
    lms = await throttledLms({ TRUST_PROXY: 'loopback' });
    await expect(new WebClient(lms.url).login('student1', 'student-pass')).rejects.toThrow(/429/);
    const elsewhere = new WebClient(lms.url, { forwardedFor: '10.64.0.7' });
    await elsewhere.login('student1', 'student-pass');
    expect(await elsewhere.isLoggedIn()).toBe(true);
  });

  it('fails on a 429 by default, and tries again after Retry-After when told to wait', async () => {
    lms = await throttledLms();
    await expect(new WebClient(lms.url).login('student1', 'student-pass')).rejects.toThrow(
      /login of student1 failed: 429 .*Too many failed login attempts/,
    );
    const patient = new WebClient(lms.url);
    await patient.login('student1', 'student-pass', { retryForMs: 10_000 });
    expect(await patient.isLoggedIn()).toBe(true);
  });

  it('gives up on a 429 whose Retry-After ends past its patience', async () => {
    lms = await throttledLms();
    await expect(
      new WebClient(lms.url).login('student1', 'student-pass', { retryForMs: 100 }),
    ).rejects.toThrow(/429/);
  });

  it('returns a 503 "database busy" by default, and sends it again after Retry-After when told to wait', async () => {
    lms = await startLms({ env: { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn' } });
    const student = new WebClient(lms.url);
    await student.login('student1', 'student-pass');
    // Another process's connection holds the write lock past the LMS's 5 s deadline.
    const other = new Database(lms.databasePath);
    other.exec('BEGIN IMMEDIATE');
    try {
      const body = { queue_name: 'test-queue', problem_id: 'test-queue-p1', student_response: 'x' };
      const impatient = student.request('POST', '/api/submissions', body);
      const patient = student.request('POST', '/api/submissions', body, { retryForMs: 30_000 });
      expect((await impatient).status).toBe(503);
      const url = lms.url;
      await waitFor(
        async () => {
          const text = await (await fetch(`${url}/metrics`)).text();
          return sumMetric(text, 'lms_http_responses_total', { status: '503' }) >= 2 || undefined;
        },
        { timeoutMs: 20_000, what: 'both submissions answered 503' },
      );
      other.exec('ROLLBACK');
      const response = await patient;
      expect(response.status).toBe(201);
      expect(await response.json()).toMatchObject({ id: 1 });
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
    }
  });
});
