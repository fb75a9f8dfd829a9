import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLms } from '@storm-lab/harness';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TestClient, urlFetcher } from '../testing/client.ts';
import { createGradingSetup, resultFields } from '../testing/flows.ts';
import { endOfTurn, track } from '../testing/timers.ts';
import { SERVER_BUSY_TIMEOUT_MS } from './client.ts';

const PULL = '/xqueue/get_submission/?queue_name=test-queue';

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

/** A second connection on the database file that holds the write lock, as another process. */
function holdWriteLock(path: string): Database.Database {
  const other = new Database(path);
  other.exec('BEGIN IMMEDIATE');
  cleanups.push(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
  });
  return other;
}

/** The server answers /healthz five times in a row while `waiting` (a request) has no answer. */
async function answersWhileWaiting(url: string, waiting: { settled: boolean }): Promise<void> {
  for (let answered = 0; answered < 5; answered++) {
    expect((await fetch(new URL('/healthz', url))).status).toBe(200);
    expect(waiting.settled).toBe(false);
  }
}

/** A fresh LMS, a client logged in by `logIn`, and another connection holding the write lock. */
async function lockedAfterLogin(logIn: (client: TestClient) => Promise<Response>) {
  const lms = await startLms({ env: { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn' } });
  cleanups.push(() => lms.stop());
  const client = new TestClient(urlFetcher(lms.url));
  expect((await logIn(client)).status).toBe(200);
  return { lms, client, other: holdWriteLock(lms.databasePath) };
}

describe('a database write-locked by another connection', { timeout: 60_000 }, () => {
  it('keeps the server process answering while a pull waits for the lock, then serves the pull', async () => {
    const {
      lms,
      client: grader,
      other,
    } = await lockedAfterLogin((client) => client.xqueueLogin('xqueue_svc', 'xqueue-pass'));

    const pull = grader.get(PULL);
    const pulled = track(pull);
    // The same process answers /healthz, one request after another, while the pull waits (a
    // server that waited for the lock on its event loop would answer them only after the pull).
    await answersWhileWaiting(lms.url, pulled);
    other.exec('COMMIT');

    const response = await pull;
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      return_code: 1,
      content: "Queue 'test-queue' is empty",
    });
  });

  it("waits out another process's write lock for a staff policy change instead of answering 503", async () => {
    const {
      lms,
      client: staff,
      other,
    } = await lockedAfterLogin((client) => client.webLogin('staff', 'staff-pass'));
    const saving = staff.request('/api/admin/policy', {
      method: 'PUT',
      body: JSON.stringify({ settings: { exemptUsernames: ['xqueue_svc'] }, reason: 'storm' }),
      headers: { 'content-type': 'application/json' },
    });
    const saved = track(saving);
    await answersWhileWaiting(lms.url, saved);
    other.exec('COMMIT');
    expect((await saving).status).toBe(200);
  });

  it('answers 503 with Retry-After once the lock outlasts the deadline: the envelope on /xqueue/, detail elsewhere; put_result keeps its 409', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lms-busy-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'lms.db');
    const setup = await createGradingSetup({
      path,
      busyTimeoutMs: SERVER_BUSY_TIMEOUT_MS,
      config: { databaseBusyDeadlineMs: 300 },
    });
    cleanups.push(() => setup.lms.close());
    await setup.submit(1);
    const pulled = (await setup.pull())!;
    holdWriteLock(path);
    // The waits for the lock on virtual time (the retry timers, the deadline's clocks); the
    // event loop's own turns stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    cleanups.push(() => {
      vi.useRealTimers();
    });
    const started = performance.now();
    const step = async () => {
      await endOfTurn();
      await vi.advanceTimersByTimeAsync(1);
    };

    const body = { queue_name: 'test-queue', problem_id: 'test-queue-p1', student_response: 'x' };
    const answers = Promise.all([
      setup.grader.get(PULL),
      setup.student.postJson('/api/submissions', body),
      setup.putResult(resultFields(pulled)),
    ]);
    const answered = track(answers);
    // Until the deadline they wait on timers, and the app answers other requests meanwhile.
    while (performance.now() - started < 299) await step();
    expect(answered.settled).toBe(false);
    expect((await setup.grader.get('/healthz')).status).toBe(200);
    expect(answered.settled).toBe(false);
    // Then they are answered, once the deadline has passed (within a few retries of it).
    while (!answered.settled && performance.now() - started < 1_000) await step();
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    const [pull, submit, put] = await answers;

    expect(pull.status).toBe(503);
    expect(pull.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(await pull.json()).toEqual({ return_code: 1, content: expect.any(String) });
    expect(submit.status).toBe(503);
    expect(submit.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(await submit.json()).toEqual({ detail: expect.any(String) });
    // As edx-submissions' nowait row lock: the grader sends the result again.
    expect(put.status).toBe(409);
    expect(await put.json()).toEqual({
      return_code: 1,
      content: 'Submission is currently being processed',
    });
  });
});
