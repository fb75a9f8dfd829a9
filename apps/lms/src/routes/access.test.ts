import { NOT_AUTHENTICATED_DETAIL } from '@storm-lab/xqueue-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { PERMISSION_DENIED_DETAIL } from '../http/session.ts';
import { TestClient } from '../testing/client.ts';
import type { TestLms } from '../testing/fixtures.ts';
import { createGradingSetup, resultFields } from '../testing/flows.ts';
import { storedState } from '../testing/hostile.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

const ACCOUNTS = {
  student: ['student1', 'student-pass'],
  staff: ['staff', 'staff-pass'],
  grader: ['xqueue_svc', 'xqueue-pass'],
} as const;

async function loggedIn(lms: TestLms, account: keyof typeof ACCOUNTS) {
  const client = new TestClient(lms.fetcher);
  const [username, password] = ACCOUNTS[account];
  expect((await client.xqueueLogin(username, password)).status).toBe(200);
  return client;
}

describe('access to the xqueue endpoints', () => {
  it('serves every endpoint but login only to members of group xqueue, staff included', async () => {
    const setup = await createGradingSetup({ policy: { exemptGroups: ['xqueue'] } });
    lms = setup.lms;
    await setup.submit(1);
    const pulled = (await setup.pull())!;
    const requests: [string, (client: TestClient) => Promise<Response>][] = [
      ['get_queuelen', (client) => client.get('/xqueue/get_queuelen/?queue_name=test-queue')],
      ['get_submission', (client) => client.get('/xqueue/get_submission/?queue_name=test-queue')],
      ['put_result', (client) => client.postForm('/xqueue/put_result/', resultFields(pulled))],
      ['logout', (client) => client.postForm('/xqueue/logout/', {})],
    ];
    const anonymous = new TestClient(lms.fetcher);
    const outsiders = [await loggedIn(lms, 'student'), await loggedIn(lms, 'staff')];
    for (const [name, send] of requests) {
      const before = storedState(lms.database.sqlite);
      const refused = await send(anonymous);
      expect([name, refused.status, await refused.json()]).toEqual([
        name,
        403,
        { detail: NOT_AUTHENTICATED_DETAIL },
      ]);
      for (const outsider of outsiders) {
        const response = await send(outsider);
        expect([name, response.status, await response.json()]).toEqual([
          name,
          403,
          { detail: PERMISSION_DENIED_DETAIL },
        ]);
      }
      expect(storedState(lms.database.sqlite)).toEqual(before);
      const member = await send(setup.grader);
      expect([name, member.status]).toEqual([name, 200]);
    }
  });
});

describe('who may change the exemption lists', () => {
  it('refuses PUT /api/admin/policy to anonymous (401) and to non-staff (403), with no effect', async () => {
    const setup = await createGradingSetup();
    lms = setup.lms;
    const change = {
      settings: { exemptUsernames: ['xqueue_svc'], exemptGroups: ['xqueue'] },
      reason: 'let the graders in',
    };
    const put = (client: TestClient) =>
      client.request('/api/admin/policy', {
        method: 'PUT',
        body: JSON.stringify(change),
        headers: { 'content-type': 'application/json' },
      });
    const anonymous = new TestClient(lms.fetcher);
    await anonymous.get('/login');
    anonymous.headers['X-CSRFToken'] = anonymous.cookies.get('csrftoken')!;
    const before = storedState(lms.database.sqlite);
    expect((await put(anonymous)).status).toBe(401);
    // The grader and a student have valid sessions and CSRF tokens, but are not staff.
    for (const client of [setup.grader, setup.student]) {
      const response = await put(client);
      expect(response.status).toBe(403);
      expect(await response.json()).toEqual({ detail: PERMISSION_DENIED_DETAIL });
    }
    expect(storedState(lms.database.sqlite)).toEqual(before);
    // Still single-login: a second grader evicts the first.
    const second = await loggedIn(lms, 'grader');
    expect((await setup.grader.get('/xqueue/get_queuelen/?queue_name=test-queue')).status).toBe(
      403,
    );
    // Staff may: the same request takes effect.
    const staff = new TestClient(lms.fetcher);
    expect((await staff.webLogin('staff', 'staff-pass')).status).toBe(200);
    expect((await put(staff)).status).toBe(200);
    await loggedIn(lms, 'grader');
    expect((await second.get('/xqueue/get_queuelen/?queue_name=test-queue')).status).toBe(200);
  });
});
