import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms } from '../testing/fixtures.ts';
import { type TestSessionStore, useTestRedis } from '../testing/redis.ts';
import {
  browserOf,
  currentShortId,
  endedReason,
  listed,
  tombstoneOf,
} from '../testing/sessions.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());
const redis = useTestRedis();

const USERS = '/api/admin/users';

/** Staff, and student1 on two devices (exempt from single login: its sessions are untracked). */
async function setup(store: TestSessionStore) {
  lms = await createTestLms({
    policy: { exemptUsernames: ['student1'] },
    redisUrl: redis.urlFor(store),
  });
  const staff = await browserOf(lms, 'staff');
  const phone = await browserOf(lms, 'student1', { 'User-Agent': 'phone/1.0' });
  lms.clock.advance(1000);
  const laptop = await browserOf(lms, 'student1');
  // The sessions are where the store says: with Redis, none in the database.
  const rows = lms.database.sqlite.prepare('SELECT count(*) AS n FROM sessions').get();
  expect(rows).toEqual({ n: store === 'redis' ? 0 : 3 });
  return { lms, staff, phone, laptop };
}

function post(client: TestClient, path: string) {
  return client.request(path, { method: 'POST' });
}

function remove(client: TestClient, path: string) {
  return client.request(path, { method: 'DELETE' });
}

describe.each(['sqlite', 'redis'] as const)('staff session API, sessions in %s', (store) => {
  it("lists any account's live sessions, with tracked", async () => {
    const { lms, staff, phone } = await setup(store);
    const student2 = await browserOf(lms, 'student2');
    expect(await listed(staff, `${USERS}/student1/sessions`)).toEqual([
      {
        id: await currentShortId(phone),
        created: '2025-01-01T00:00:00.000Z',
        last_seen: '2025-01-01T00:00:00.000Z',
        client_instance: null,
        user_agent: 'phone/1.0',
        address: 'unknown',
        pool: 'default',
        current: false,
        tracked: false,
      },
      expect.objectContaining({ created: '2025-01-01T00:00:01.000Z', tracked: false }),
    ]);
    expect(await listed(staff, `${USERS}/student2/sessions`)).toEqual([
      expect.objectContaining({ id: await currentShortId(student2), tracked: true }),
    ]);
    expect(await listed(staff, `${USERS}/staff/sessions`)).toEqual([
      expect.objectContaining({ current: true, tracked: true }),
    ]);
    const unknown = await staff.get(`${USERS}/nobody/sessions`);
    expect([unknown.status, await unknown.json()]).toEqual([404, { detail: 'User not found' }]);
  });

  it('ends one session of an account: its next request is told "staff", the record names who', async () => {
    const { lms, staff, phone, laptop } = await setup(store);
    const target = await currentShortId(phone);
    expect((await remove(staff, `${USERS}/student1/sessions/${target}`)).status).toBe(204);
    expect(await endedReason(phone)).toEqual({ status: 403, header: 'staff', reason: 'staff' });
    expect(tombstoneOf(lms, target)).toEqual({ reason: 'staff', endedBy: 'staff' });
    expect((await laptop.get('/api/sessions')).status).toBe(200);
    expect((await remove(staff, `${USERS}/student1/sessions/${target}`)).status).toBe(404);
    // A short id of another account's session is not found under this one.
    const own = await currentShortId(staff);
    expect((await remove(staff, `${USERS}/student1/sessions/${own}`)).status).toBe(404);
    expect((await remove(staff, `${USERS}/nobody/sessions/${target}`)).status).toBe(404);
    expect((await staff.get('/api/sessions')).status).toBe(200);
  });

  it("ends all sessions of an account with end-all, and only that account's", async () => {
    const { lms, staff, phone, laptop } = await setup(store);
    const student2 = await browserOf(lms, 'student2');
    const shorts = [await currentShortId(phone), await currentShortId(laptop)];
    const response = await post(staff, `${USERS}/student1/sessions/end-all`);
    expect(await response.json()).toEqual({ ended: 2 });
    for (const client of [phone, laptop]) {
      expect(await endedReason(client)).toEqual({ status: 403, header: 'staff', reason: 'staff' });
    }
    for (const short of shorts) {
      expect(tombstoneOf(lms, short)).toEqual({ reason: 'staff', endedBy: 'staff' });
    }
    expect((await student2.get('/api/sessions')).status).toBe(200);
    expect((await post(staff, `${USERS}/nobody/sessions/end-all`)).status).toBe(404);
    expect(lms.logs).toContainEqual(
      expect.objectContaining({ event: 'session-end', account: 'student1', count: 2, by: 'staff' }),
    );
  });

  it('answers 403 to a caller who is not staff and 401 to an anonymous one, ending nothing', async () => {
    const { lms, phone, laptop } = await setup(store);
    const target = await currentShortId(laptop);
    const student2 = await browserOf(lms, 'student2');
    for (const response of [
      await student2.get(`${USERS}/student1/sessions`),
      await remove(student2, `${USERS}/student1/sessions/${target}`),
      await post(student2, `${USERS}/student1/sessions/end-all`),
    ]) {
      expect([response.status, await response.json()]).toEqual([
        403,
        { detail: 'You do not have permission to perform this action.' },
      ]);
    }
    const anonymous = new TestClient(lms.fetcher);
    expect((await anonymous.get(`${USERS}/student1/sessions`)).status).toBe(401);
    expect((await post(anonymous, `${USERS}/student1/sessions/end-all`)).status).toBe(401);
    expect(await listed(phone)).toHaveLength(2);
  });

  it('refuses a staff end without the CSRF token', async () => {
    const { staff, phone, laptop } = await setup(store);
    delete staff.headers['X-CSRFToken'];
    const target = await currentShortId(phone);
    for (const response of [
      await remove(staff, `${USERS}/student1/sessions/${target}`),
      await post(staff, `${USERS}/student1/sessions/end-all`),
    ]) {
      expect([response.status, await response.json()]).toEqual([
        403,
        { detail: 'CSRF Failed: CSRF token missing.' },
      ]);
    }
    expect(await listed(laptop)).toHaveLength(2);
  });
});
