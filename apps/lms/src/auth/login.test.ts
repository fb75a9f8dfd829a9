import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.ts';
import { appFetcher, TestClient } from '../testing/client.ts';
import { createTestLms, TEST_ITERATIONS, type TestLms } from '../testing/fixtures.ts';
import { upsertUser } from '../users.ts';
import type { PasswordChecker } from './login.ts';
import { burnPasswordCheck, DJANGO_ITERATIONS, hashPassword, verifyPassword } from './password.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

describe('login hashing', () => {
  it('keeps answering xqueue requests while logins hash at Django iterations', async () => {
    lms = await createTestLms({ transport: 'socket' });
    const passwordHash = await hashPassword('slow-pass', DJANGO_ITERATIONS);
    upsertUser(lms.database.db, { username: 'slowpoke', passwordHash, now: lms.clock.now() });
    const grader = new TestClient(lms.fetcher);
    expect((await grader.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);

    let loginsDone = false;
    const logins = Promise.all(
      Array.from({ length: 4 }, () =>
        new TestClient(lms!.fetcher).webLogin('slowpoke', 'slow-pass'),
      ),
    ).finally(() => {
      loginsDone = true;
    });
    let answeredDuringLogins = 0;
    const deadline = Date.now() + 30_000;
    while (!loginsDone && Date.now() < deadline) {
      const response = await grader.get('/xqueue/get_queuelen/?queue_name=test-queue');
      expect(response.status).toBe(200);
      if (!loginsDone) answeredDuringLogins++;
    }
    const responses = await logins;
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200]);
    // A synchronous hash would block the event loop: no request could finish meanwhile.
    expect(answeredDuringLogins).toBeGreaterThanOrEqual(5);
  });

  it('refuses unknown users, wrong passwords and inactive users alike', async () => {
    lms = await createTestLms();
    lms.database.sqlite.prepare("UPDATE users SET is_active = 0 WHERE username = 'student2'").run();
    const client = new TestClient(lms.fetcher);
    for (const [username, password] of [
      ['nobody', 'student-pass'],
      ['student1', 'wrong'],
      ['student2', 'student-pass'],
    ] as const) {
      const response = await client.xqueueLogin(username, password);
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({
        return_code: 1,
        content: 'Incorrect login credentials',
      });
    }
    const metrics = await (await client.get('/metrics')).text();
    expect(metrics).toContain('lms_login_failures_total{path="xqueue"} 3');
  });
});

describe('re-login of a logged-in client', () => {
  it('keeps the current session when the new login is denied', async () => {
    lms = await createTestLms({ policy: { onLimit: 'deny-new' } });
    const phone = new TestClient(lms.fetcher);
    expect((await phone.webLogin('student1', 'student-pass')).status).toBe(200);
    // As if the phone had logged in while the account was exempt: its session is untracked.
    lms.database.sqlite.prepare('UPDATE sessions SET tracked = 0').run();
    const laptop = new TestClient(lms.fetcher);
    expect((await laptop.webLogin('student1', 'student-pass')).status).toBe(200);
    const fields = { username: 'student1', password: 'student-pass' };
    const denied = await phone.postForm('/login', {
      ...fields,
      csrfmiddlewaretoken: phone.cookies.get('csrftoken')!,
    });
    expect(denied.status).toBe(403);
    expect((await phone.get('/me')).status).toBe(200);
    expect((await laptop.get('/me')).status).toBe(200);
  });

  it('replaces its own session when the new login is admitted', async () => {
    lms = await createTestLms({ policy: { onLimit: 'deny-new' } });
    const phone = new TestClient(lms.fetcher);
    expect((await phone.webLogin('student1', 'student-pass')).status).toBe(200);
    const old = phone.cookies.get('sessionid')!;
    const again = await phone.postForm('/login', {
      username: 'student1',
      password: 'student-pass',
      csrfmiddlewaretoken: phone.cookies.get('csrftoken')!,
    });
    expect(again.status).toBe(200);
    expect(phone.cookies.get('sessionid')).not.toBe(old);
    expect(lms.database.sqlite.prepare('SELECT count(*) AS n FROM sessions').get()).toEqual({
      n: 1,
    });
  });
});

describe('the statements of a storm', () => {
  it('prepares no SQL for a login that evicts, nor for the evicted worker 403 and its re-login', async () => {
    lms = await createTestLms();
    const first = new TestClient(lms.fetcher);
    const second = new TestClient(lms.fetcher);
    // The app's first login also prunes (once a minute), which is not what a storm repeats.
    expect((await first.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    const { sqlite } = lms.database;
    const prepare = sqlite.prepare.bind(sqlite);
    const prepared: string[] = [];
    sqlite.prepare = ((source: string) => {
      prepared.push(source);
      return prepare(source);
    }) as typeof sqlite.prepare;
    // Each login evicts the other worker's session, as a storm's logins do, thousands an hour.
    expect((await second.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    const queuelen = '/xqueue/get_queuelen/?queue_name=test-queue';
    expect((await first.get(queuelen)).status).toBe(403);
    expect((await first.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    expect((await first.get(queuelen)).status).toBe(200);
    expect((await second.get(queuelen)).status).toBe(403);
    expect(prepared).toEqual([]);
  });
});

describe('one login, one transaction', () => {
  it('leaves the user logged in elsewhere when a write of the login fails', async () => {
    lms = await createTestLms();
    const laptop = new TestClient(lms.fetcher);
    expect((await laptop.webLogin('student1', 'student-pass')).status).toBe(200);
    // The last write of a login fails, as a full disk would make it.
    lms.database.sqlite.exec(`CREATE TRIGGER fail_last_login BEFORE UPDATE OF last_login ON users
      BEGIN SELECT RAISE(ABORT, 'disk full'); END`);
    const phone = new TestClient(lms.fetcher);
    expect((await phone.webLogin('student1', 'student-pass')).status).toBe(500);
    // Nothing of the failed login stays: the laptop's session was not evicted.
    expect((await laptop.get('/me')).status).toBe(200);
    expect(lms.database.sqlite.prepare('SELECT count(*) AS n FROM sessions').get()).toEqual({
      n: 1,
    });
  });
});

describe('the session auth hash of a login', () => {
  /** A second app on the test LMS's database, with other settings or password checks. */
  function appOn(base: TestLms, options: { iterations?: number; passwords?: PasswordChecker }) {
    const app = createApp({
      db: base.database.db,
      config: { ...base.config, passwordHashIterations: options.iterations ?? TEST_ITERATIONS },
      logger: pino({ level: 'silent' }),
      now: base.clock.now,
      ...(options.passwords && { passwords: options.passwords }),
    });
    return new TestClient(appFetcher(app));
  }

  async function expectRefused(client: TestClient) {
    const me = await client.get('/me');
    expect(me.status).toBe(401);
    expect(me.headers.get('x-session-end-reason')).toBe('password-change');
  }

  it('is of the hash the password was checked against: a change during the check ends it', async () => {
    lms = await createTestLms();
    const base = lms;
    const newHash = await hashPassword('new-pass', TEST_ITERATIONS);
    const passwords: PasswordChecker = {
      async verify(password, encoded) {
        const valid = await verifyPassword(password, encoded);
        // Staff set a new password while this login's hash was being computed.
        upsertUser(base.database.db, { username: 'student1', passwordHash: newHash, now: 0 });
        return valid;
      },
      burn: burnPasswordCheck,
      hash: hashPassword,
    };
    const client = appOn(base, { passwords });
    expect((await client.webLogin('student1', 'student-pass')).status).toBe(200);
    await expectRefused(client);
  });

  it('changes when a login hashes the password again at a new count: the other sessions end once, as in Django', async () => {
    // Exempt: the logins keep each other's sessions, so only the re-hash can end one.
    lms = await createTestLms({ policy: { exemptUsernames: ['staff'] } });
    const phone = new TestClient(lms.fetcher);
    expect((await phone.webLogin('staff', 'staff-pass')).status).toBe(200);
    const laptop = appOn(lms, { iterations: 2 * TEST_ITERATIONS });
    expect((await laptop.webLogin('staff', 'staff-pass')).status).toBe(200);
    await expectRefused(phone);
    expect((await laptop.get('/me')).status).toBe(200);
    // Stored at the new count now: the next login hashes nothing again and ends nothing.
    const tablet = appOn(lms, { iterations: 2 * TEST_ITERATIONS });
    expect((await tablet.webLogin('staff', 'staff-pass')).status).toBe(200);
    expect((await laptop.get('/me')).status).toBe(200);
  });
});
