import { afterEach, describe, expect, it } from 'vitest';
import { SEED_DEFAULTS, seed } from '../seed.ts';
import { TestClient } from '../testing/client.ts';
import { createTestLms, TEST_ITERATIONS, type TestLms } from '../testing/fixtures.ts';
import { useTestRedis } from '../testing/redis.ts';
import { browserOf, endedReason } from '../testing/sessions.ts';
import { findCredentials } from '../users.ts';
import { saveAccount, storeSessions } from './accounts.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());
const redis = useTestRedis();

describe.each(['sqlite', 'redis'] as const)('a password change, sessions in %s', (store) => {
  const create = () => createTestLms({ redisUrl: redis.urlFor(store) });

  it('seed --reset-passwords ends the sessions of every account it sets, in the store given', async () => {
    lms = await create();
    const phone = await browserOf(lms, 'student1');
    const laptop = await browserOf(lms, 'student2');
    const staff = await browserOf(lms, 'staff');
    const summary = await seed(
      lms.database.db,
      { ...SEED_DEFAULTS, studentPassword: 'new-pass', resetPasswords: true },
      { iterations: TEST_ITERATIONS, now: lms.clock.now(), sessions: storeSessions(lms.sessions) },
    );
    expect(summary.sessionsEnded).toEqual({ ended: 3 });
    expect(await lms.sessions.liveCounts()).toEqual(new Map());
    for (const client of [phone, laptop, staff]) {
      expect(await endedReason(client)).toEqual({
        status: 403,
        header: 'password-change',
        reason: 'password-change',
      });
    }
    const again = new TestClient(lms.fetcher);
    expect((await again.webLogin('student1', 'new-pass')).status).toBe(200);
  });

  it("saveAccount ends an existing user's sessions only when it sets the password", async () => {
    lms = await create();
    const phone = await browserOf(lms, 'student1');
    const at = lms.clock.now();
    const sessions = storeSessions(lms.sessions);
    const kept = await saveAccount(lms.database.db, sessions, {
      username: 'student1',
      passwordHash: 'unused',
      groups: ['graders'],
      keepPassword: true,
      now: at,
    });
    expect(kept).toMatchObject({ created: false, passwordSet: false, sessions: { ended: 0 } });
    expect((await phone.get('/api/sessions')).status).toBe(200);
    const created = await saveAccount(lms.database.db, sessions, {
      username: 'student9',
      passwordHash: 'x',
      now: at,
    });
    expect(created).toMatchObject({ created: true, passwordSet: true, sessions: { ended: 0 } });
    const changed = await saveAccount(lms.database.db, sessions, {
      username: 'student1',
      passwordHash: findCredentials(lms.database.db, 'student9')!.password,
      now: at,
    });
    expect(changed).toMatchObject({ created: false, passwordSet: true, sessions: { ended: 1 } });
    expect(await endedReason(phone)).toMatchObject({ reason: 'password-change' });
  });
});
