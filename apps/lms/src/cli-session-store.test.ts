import { randomBytes } from 'node:crypto';
import { freePort, type LocalLms, type RedisHandle, startLms, useRedis } from '@storm-lab/harness';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { browserSessions, expectEnded, FAST, lmsCli } from './testing/cli.ts';
import { TestClient, urlFetcher } from './testing/client.ts';

// A password change and the session commands act on the sessions the LMS really has, whatever
// the shell running `pnpm lms` says about SESSION_STORE and whether it reaches the LMS's Redis.

let lms: LocalLms | undefined;
let redis: RedisHandle | undefined;
beforeAll(async () => {
  redis = await useRedis(process.env.REDIS_URL);
});
afterAll(() => redis?.stop());
afterEach(async () => {
  await lms?.stop();
  lms = undefined;
});

const EXEMPT = { SINGLE_LOGIN_EXEMPT_USERNAMES: 'student3,student4' };

/** A Redis URL nothing listens on. */
async function deadRedisUrl(): Promise<string> {
  return `redis://127.0.0.1:${await freePort()}`;
}

for (const store of ['sqlite', 'redis'] as const) {
  describe(`password changes from any shell, sessions in ${store}`, { timeout: 90_000 }, () => {
    let prefix = '';
    beforeEach(() => {
      prefix = `lms-cli-${randomBytes(6).toString('hex')}:`;
    });
    /** The LMS's own SESSION_STORE; the shells below never copy it. */
    const storeEnv = (): Record<string, string> =>
      store === 'redis'
        ? { SESSION_STORE: 'redis', SESSION_REDIS_URL: redis!.url, SESSION_REDIS_PREFIX: prefix }
        : {};
    /** A shell that names the other store (Redis reachable) or, for a Redis LMS, none. */
    const otherShell = (): Record<string, string> =>
      store === 'redis' ? {} : { SESSION_STORE: 'redis', SESSION_REDIS_URL: redis!.url };

    it('ends every earlier session on `user add` from a shell that names no session store', async () => {
      lms = await startLms({ env: { ...FAST, ...EXEMPT, ...storeEnv() } });
      const [phone, laptop] = await browserSessions(lms.url, 'student4');
      const [bystander] = await browserSessions(lms.url, 'student3', 1);

      const changed = await lmsCli(
        ['user', 'add', 'student4', '--password', 'new'],
        lms.databasePath,
      );
      expect(changed).toEqual({
        code: 0,
        output: 'User student4 saved; 2 sessions ended (password-change)\n',
      });
      await expectEnded(phone!, 'password-change');
      await expectEnded(laptop!, 'password-change');
      expect((await bystander!.get('/me')).status).toBe(200);
      const fresh = new TestClient(urlFetcher(lms.url));
      expect((await fresh.webLogin('student4', 'new')).status).toBe(200);
    });

    it('ends the sessions of every account `seed --reset-passwords` sets, the grader too', async () => {
      lms = await startLms({ env: { ...FAST, ...storeEnv() }, seed: ['--students', '3'] });
      const [student1] = await browserSessions(lms.url, 'student1', 1);
      const [student2] = await browserSessions(lms.url, 'student2', 1);
      const grader = new TestClient(urlFetcher(lms.url));
      expect((await grader.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
      const queueLength = '/xqueue/get_queuelen/?queue_name=test-queue';
      expect((await grader.get(queueLength)).status).toBe(200);

      const reset = await lmsCli(
        ['seed', '--students', '3', '--reset-passwords', '--student-password', 'new-pass'],
        lms.databasePath,
        otherShell(),
      );
      expect(reset.code).toBe(0);
      expect(reset.output).toContain('5 set, 0 kept');
      expect(reset.output).toContain('3 sessions ended (password-change)');
      await expectEnded(student1!, 'password-change');
      await expectEnded(student2!, 'password-change');
      const refused = await grader.get(queueLength);
      expect(refused.status).toBe(403);
      expect(refused.headers.get('x-session-end-reason')).toBe('password-change');
    });

    it('refuses earlier sessions after a password change from a shell whose Redis is unreachable', async () => {
      lms = await startLms({ env: { ...FAST, ...EXEMPT, ...storeEnv() } });
      const [phone, laptop] = await browserSessions(lms.url, 'student4');
      const url = await deadRedisUrl();

      const changed = await lmsCli(
        ['user', 'add', 'student4', '--password', 'new'],
        lms.databasePath,
        {
          SESSION_STORE: 'redis',
          SESSION_REDIS_URL: url,
        },
      );
      expect(changed.code).toBe(0);
      // A SQLite LMS's sessions end with the password; a Redis LMS's on their next request.
      expect(changed.output).toMatch(
        store === 'redis'
          ? new RegExp(
              `^User student4 saved; its sessions end on their next request \\(password-change\\): the session Redis at ${url} cannot be reached`,
            )
          : /^User student4 saved; 2 sessions ended \(password-change\)\n$/,
      );
      await expectEnded(phone!, 'password-change');
      await expectEnded(laptop!, 'password-change');
    });

    it('lists and ends the sessions of the store the LMS uses, whatever the shell names', async () => {
      lms = await startLms({ env: { ...FAST, ...EXEMPT, ...storeEnv() } });
      const [phone, laptop] = await browserSessions(lms.url, 'student3');
      const listed = await lmsCli(['sessions', 'list', 'student3'], lms.databasePath, otherShell());
      expect(listed.code).toBe(0);
      expect(listed.output.trimEnd().split('\n')).toHaveLength(2);

      const ended = await lmsCli(
        ['sessions', 'end', 'student3', '--all'],
        lms.databasePath,
        otherShell(),
      );
      expect(ended).toEqual({ code: 0, output: 'Ended 2 sessions of student3\n' });
      await expectEnded(phone!, 'staff');
      await expectEnded(laptop!, 'staff');
    });
  });
}

describe('session commands against an unreachable session Redis', { timeout: 90_000 }, () => {
  it('refuse with a clear error and exit 1 instead of reporting no sessions', async () => {
    const prefix = `lms-cli-${randomBytes(6).toString('hex')}:`;
    const storeEnv = {
      SESSION_STORE: 'redis',
      SESSION_REDIS_URL: redis!.url,
      SESSION_REDIS_PREFIX: prefix,
    };
    lms = await startLms({ env: { ...FAST, ...EXEMPT, ...storeEnv } });
    const [phone] = await browserSessions(lms.url, 'student3', 1);
    const url = await deadRedisUrl();
    const shell = { SESSION_STORE: 'redis', SESSION_REDIS_URL: url };
    for (const args of [
      ['sessions', 'list', 'student3'],
      ['sessions', 'end', 'student3', '--all'],
      ['sessions', 'end', 'student3', 'abcdef01'],
    ]) {
      const result = await lmsCli(args, lms.databasePath, shell);
      expect(result, args.join(' ')).toEqual({
        code: 1,
        output: expect.stringMatching(
          new RegExp(
            `^error: the LMS keeps its sessions in Redis \\(prefix ${prefix}\\), and the session Redis at ${url} cannot be reached`,
          ),
        ),
      });
    }
    expect((await phone!.get('/me')).status).toBe(200);
  });
});
