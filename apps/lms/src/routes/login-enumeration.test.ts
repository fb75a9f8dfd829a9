import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApp } from '../app.ts';
import type { PasswordChecker } from '../auth/login.ts';
import { burnPasswordCheck, hashPassword, verifyPassword } from '../auth/password.ts';
import { appFetcher, TestClient } from '../testing/client.ts';
import { createTestLms, TEST_ITERATIONS, type TestLms } from '../testing/fixtures.ts';
import { upsertUser } from '../users.ts';

/** The iteration count of every pbkdf2 the process runs: the work that makes a login's time. */
const pbkdf2Runs = vi.hoisted(() => [] as number[]);
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  // The real function, counted: password.ts promisifies it, so the callback is passed on.
  const pbkdf2 = ((...args: Parameters<typeof real.pbkdf2>) => {
    pbkdf2Runs.push(args[2]);
    return real.pbkdf2(...args);
  }) as typeof real.pbkdf2;
  return { ...real, default: { ...real, pbkdf2 }, pbkdf2 };
});

let lms: TestLms | undefined;
afterEach(() => lms?.close());

const REFUSED = [
  ['an unknown user', 'nobody', 'student-pass'],
  ['a wrong password', 'student1', 'wrong-pass'],
  ['an inactive user', 'student2', 'student-pass'],
] as const;

/** A test LMS (throttle off: these tests fail on purpose, often) with student2 deactivated. */
async function refusingLms(iterations = TEST_ITERATIONS) {
  lms = await createTestLms({
    config: { loginThrottleFailures: 0, passwordHashIterations: iterations },
  });
  const { sqlite, db } = lms.database;
  sqlite.prepare("UPDATE users SET is_active = 0 WHERE username = 'student2'").run();
  if (iterations !== TEST_ITERATIONS) {
    for (const username of ['student1', 'student2']) {
      const passwordHash = await hashPassword('student-pass', iterations);
      upsertUser(db, { username, passwordHash, now: lms.clock.now() });
    }
  }
  return lms;
}

async function answer(client: TestClient, path: 'web' | 'xqueue', username: string, pw: string) {
  const response =
    path === 'web'
      ? await (async () => {
          await client.get('/login');
          const csrfmiddlewaretoken = client.cookies.get('csrftoken')!;
          return client.postForm('/login', { username, password: pw, csrfmiddlewaretoken });
        })()
      : await client.postForm('/xqueue/login/', { username, password: pw });
  return {
    status: response.status,
    body: await response.json(),
    setsSession: response.headers.getSetCookie().some((line) => line.startsWith('sessionid=')),
  };
}

/**
 * A second app on `base`'s database whose password checks (the real ones) are each recorded
 * with their kind and iteration count.
 */
function countingApp(base: TestLms) {
  const calls: { kind: 'verify' | 'burn'; iterations: number }[] = [];
  const passwords: PasswordChecker = {
    verify(password, encoded) {
      calls.push({ kind: 'verify', iterations: Number(encoded.split('$')[1]) });
      return verifyPassword(password, encoded);
    },
    burn(password, iterations) {
      calls.push({ kind: 'burn', iterations });
      return burnPasswordCheck(password, iterations);
    },
    hash: hashPassword,
  };
  const app = createApp({
    db: base.database.db,
    config: base.config,
    logger: pino({ level: 'silent' }),
    now: base.clock.now,
    passwords,
  });
  return { calls, app };
}

describe('login refusals reveal nothing about accounts', () => {
  it.each(['xqueue', 'web'] as const)(
    'answers an unknown user, a wrong password and an inactive user alike (%s login)',
    async (path) => {
      const lms = await refusingLms();
      const answers = [];
      for (const [, username, password] of REFUSED) {
        answers.push(await answer(new TestClient(lms.fetcher), path, username, password));
      }
      expect(answers[0]).toMatchObject({ status: 401, setsSession: false });
      expect(answers[1]).toEqual(answers[0]);
      expect(answers[2]).toEqual(answers[0]);
    },
  );

  it('spends exactly one password hash of the same cost on every refusal', async () => {
    const { calls, app } = countingApp(await refusingLms());
    const client = new TestClient(appFetcher(app));
    for (const [, username, password] of REFUSED) {
      calls.length = 0;
      expect((await answer(client, 'xqueue', username, password)).status).toBe(401);
      expect(calls).toEqual([
        { kind: username === 'nobody' ? 'burn' : 'verify', iterations: TEST_ITERATIONS },
      ]);
    }
  });

  it('costs an unknown user the same hashing as a wrong password, in the real password functions', async () => {
    // What a login's time is made of, counted instead of timed: the pbkdf2 runs and their
    // iterations (the timings themselves are `pnpm bench` figures, not a test's bound).
    const lms = await refusingLms(30_000);
    const client = new TestClient(lms.fetcher);
    const work = async (username: string, password: string) => {
      pbkdf2Runs.length = 0;
      expect((await answer(client, 'xqueue', username, password)).status).toBe(401);
      return [...pbkdf2Runs];
    };
    expect(await work('nobody', 'student-pass')).toEqual([30_000]);
    expect(await work('student1', 'wrong')).toEqual([30_000]);
    expect(await work('student2', 'student-pass')).toEqual([30_000]);
    // Refused before any hashing: the control that shows the count can tell.
    expect(await work('x'.repeat(2000), 'student-pass')).toEqual([]);
  });
});

describe('hashes stored at another iteration count', () => {
  /** An LMS whose password checks are recorded, with `carol` stored at `iterations`. */
  async function countingLms(iterations: number) {
    const base = await createTestLms();
    lms = base;
    const passwordHash = await hashPassword('carol-pass', iterations);
    upsertUser(base.database.db, { username: 'carol', passwordHash, now: base.clock.now() });
    const { calls, app } = countingApp(base);
    const stored = () =>
      (
        base.database.sqlite
          .prepare("SELECT password FROM users WHERE username = 'carol'")
          .get() as {
          password: string;
        }
      ).password;
    // A new client per attempt: a logged-in one would need the CSRF token to log in again.
    const client = () => new TestClient(appFetcher(app));
    return { client, calls, stored };
  }

  it('hashes a right password again at the configured count, so later refusals cost the same', async () => {
    const { client, calls, stored } = await countingLms(TEST_ITERATIONS * 5);
    expect((await answer(client(), 'xqueue', 'carol', 'carol-pass')).status).toBe(200);
    expect(stored().split('$')[1]).toBe(String(TEST_ITERATIONS));
    calls.length = 0;
    expect((await answer(client(), 'xqueue', 'carol', 'wrong')).status).toBe(401);
    expect(calls).toEqual([{ kind: 'verify', iterations: TEST_ITERATIONS }]);
    // The new hash still takes the same password.
    expect((await answer(client(), 'xqueue', 'carol', 'carol-pass')).status).toBe(200);
  });

  it('spends the missing iterations on a wrong password for a cheaper hash', async () => {
    const { client, calls } = await countingLms(TEST_ITERATIONS / 4);
    expect((await answer(client(), 'xqueue', 'carol', 'wrong')).status).toBe(401);
    expect(calls).toEqual([
      { kind: 'verify', iterations: TEST_ITERATIONS / 4 },
      { kind: 'burn', iterations: (TEST_ITERATIONS * 3) / 4 },
    ]);
  });
});
