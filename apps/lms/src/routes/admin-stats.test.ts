import { afterEach, describe, expect, it } from 'vitest';
import type { DashboardStats } from '../dashboard/stats.ts';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms } from '../testing/fixtures.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

async function stats(client: TestClient, seconds = 60): Promise<DashboardStats> {
  const response = await client.get(`/api/admin/stats?seconds=${seconds}`);
  expect(response.status).toBe(200);
  return (await response.json()) as DashboardStats;
}

async function stormSetup() {
  lms = await createTestLms({ config: { stormAlertEvictionsPerMinute: 3 } });
  const staff = new TestClient(lms.fetcher);
  await staff.webLogin('staff', 'staff-pass');
  const graders = Array.from({ length: 5 }, () => new TestClient(lms!.fetcher));
  for (const grader of graders) await grader.xqueueLogin('xqueue_svc', 'xqueue-pass');
  // The evicted first grader's next pull is a 403, as in a real storm.
  await graders[0]!.get('/xqueue/get_submission/?queue_name=test-queue');
  lms.clock.advance(1000);
  return { lms, staff, graders };
}

describe('GET /api/admin/stats', () => {
  it('shows per-second counts, the storming account and the setting that fixes it', async () => {
    const { staff } = await stormSetup();
    const view = await stats(staff);
    expect(view.series.t).toHaveLength(60);
    expect(sum(view.series.logins)).toBe(6);
    expect(sum(view.series.evictions)).toBe(4);
    expect(sum(view.series.forbidden)).toBe(1);
    expect(view.alerts).toEqual([
      {
        account: 'xqueue_svc',
        loginsPerMinute: 5,
        evictionsPerMinute: 4,
        thresholdPerMinute: 3,
        suggestion: 'SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc',
        exemption: null,
        fix: { exemptUsernames: ['xqueue_svc'] },
      },
    ]);
    expect(view.accounts[0]).toMatchObject({
      account: 'xqueue_svc',
      liveSessions: 1,
      storming: true,
      exemption: null,
      rule: { maxSessions: 1, onLimit: 'evict-oldest', source: { kind: 'default' } },
    });
    expect(view.accounts).toContainEqual(
      expect.objectContaining({ account: 'staff', liveSessions: 1, storming: false }),
    );
  });

  it('names the exemption once it is saved, and further logins evict nobody', async () => {
    const { lms, staff } = await stormSetup();
    await staff.request('/api/admin/policy', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ settings: { exemptGroups: ['xqueue'] }, reason: 'storm' }),
    });
    for (let index = 0; index < 3; index++) {
      await new TestClient(lms.fetcher).xqueueLogin('xqueue_svc', 'xqueue-pass');
    }
    lms.clock.advance(1000);
    const view = await stats(staff, 1);
    expect(view.series.logins).toEqual([3]);
    expect(view.series.evictions).toEqual([0]);
    expect(view.alerts[0]?.exemption).toEqual({ by: 'group', group: 'xqueue' });
    expect(view.accounts[0]).toMatchObject({ account: 'xqueue_svc', liveSessions: 4 });
    expect(view.policy.settings.exemptGroups).toEqual(['xqueue']);
  });

  it('charts the queue lengths it samples each time it is read', async () => {
    const { lms, staff } = await stormSetup();
    const student = new TestClient(lms.fetcher);
    await student.webLogin('student1', 'student-pass');
    for (const answer of ['a', 'b']) {
      await student.postJson('/api/submissions', {
        queue_name: 'test-queue',
        problem_id: 'test-queue-p1',
        student_response: answer,
      });
    }
    await stats(staff);
    lms.clock.advance(1000);
    expect((await stats(staff, 2)).series.queues).toEqual({ 'test-queue': [null, 2] });
  });

  it('refuses a span it cannot serve', async () => {
    lms = await createTestLms();
    const staff = new TestClient(lms.fetcher);
    await staff.webLogin('staff', 'staff-pass');
    for (const seconds of ['0', '601', 'abc', '1.5']) {
      expect((await staff.get(`/api/admin/stats?seconds=${seconds}`)).status).toBe(400);
    }
  });
});
