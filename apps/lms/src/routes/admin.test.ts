import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms, type TestLmsOptions } from '../testing/fixtures.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

const EXEMPT_SVC = { settings: { exemptUsernames: ['xqueue_svc'] }, reason: 'storm on xqueue_svc' };

async function setup(options: TestLmsOptions = {}) {
  lms = await createTestLms(options);
  const staff = new TestClient(lms.fetcher);
  expect((await staff.webLogin('staff', 'staff-pass')).status).toBe(200);
  return { lms, staff };
}

function send(client: TestClient, method: string, path: string, body: unknown) {
  return client.request(path, {
    method,
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
}

async function policyOf(client: TestClient) {
  return (await (await client.get('/api/admin/policy')).json()) as {
    settings: { exemptUsernames: string[] };
    source: { kind: string; updatedBy?: string };
    audit: { actor: string; reason: string; action: string; at: string }[];
  };
}

describe('admin API access', () => {
  it('answers 401 to anonymous requests and changes nothing', async () => {
    const { lms, staff } = await setup();
    const anonymous = new TestClient(lms.fetcher);
    await anonymous.get('/login');
    anonymous.headers['X-CSRFToken'] = anonymous.cookies.get('csrftoken')!;
    for (const path of ['/api/admin/policy', '/api/admin/stats']) {
      const response = await anonymous.get(path);
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({
        detail: 'Authentication credentials were not provided.',
      });
    }
    expect((await send(anonymous, 'PUT', '/api/admin/policy', EXEMPT_SVC)).status).toBe(401);
    expect((await send(anonymous, 'DELETE', '/api/admin/policy', { reason: 'x' })).status).toBe(
      401,
    );
    expect((await policyOf(staff)).audit).toEqual([]);
  });

  it('answers 403 to a logged-in user who is not staff', async () => {
    const { lms, staff } = await setup();
    for (const [username, password] of [
      ['student1', 'student-pass'],
      ['xqueue_svc', 'xqueue-pass'],
    ] as const) {
      const user = new TestClient(lms.fetcher);
      expect((await user.webLogin(username, password)).status).toBe(200);
      const read = await user.get('/api/admin/stats');
      expect(read.status).toBe(403);
      expect(await read.json()).toEqual({
        detail: 'You do not have permission to perform this action.',
      });
      expect((await user.get('/api/admin/policy')).status).toBe(403);
      expect((await send(user, 'PUT', '/api/admin/policy', EXEMPT_SVC)).status).toBe(403);
    }
    expect((await policyOf(staff)).settings.exemptUsernames).toEqual([]);
  });

  it('refuses a staff change without the CSRF token, or with a wrong one', async () => {
    const { staff } = await setup();
    const token = staff.headers['X-CSRFToken']!;
    delete staff.headers['X-CSRFToken'];
    const missing = await send(staff, 'PUT', '/api/admin/policy', EXEMPT_SVC);
    expect(missing.status).toBe(403);
    expect(await missing.json()).toEqual({ detail: 'CSRF Failed: CSRF token missing.' });
    staff.headers['X-CSRFToken'] = 'x'.repeat(32);
    const wrong = await send(staff, 'DELETE', '/api/admin/policy', { reason: 'reset' });
    expect(await wrong.json()).toEqual({ detail: 'CSRF Failed: CSRF token incorrect.' });
    staff.headers['X-CSRFToken'] = token;
    expect((await policyOf(staff)).audit).toEqual([]);
  });

  it('refuses a form-encoded change: a cross-site form cannot send JSON', async () => {
    const { staff } = await setup();
    const response = await staff.request('/api/admin/policy', {
      method: 'PUT',
      body: new URLSearchParams({ settings: '{}', reason: 'x' }),
    });
    expect(response.status).toBe(415);
  });
});

describe('admin policy changes', () => {
  it('saves a change with who, when and why, and lists it in the audit', async () => {
    const { lms, staff } = await setup({ policy: { exemptGroups: ['graders'] } });
    const response = await send(staff, 'PUT', '/api/admin/policy', EXEMPT_SVC);
    expect(response.status).toBe(200);
    const view = await policyOf(staff);
    expect(view.settings).toMatchObject({
      exemptUsernames: ['xqueue_svc'],
      exemptGroups: ['graders'],
    });
    expect(view.source).toMatchObject({ kind: 'database', updatedBy: 'staff' });
    expect(view.audit).toEqual([
      expect.objectContaining({
        actor: 'staff',
        action: 'update',
        reason: 'storm on xqueue_svc',
        at: new Date(lms.clock.now()).toISOString(),
      }),
    ]);
    expect(lms.logs).toContainEqual(
      expect.objectContaining({
        event: 'policy-change',
        actor: 'staff',
        reason: EXEMPT_SVC.reason,
      }),
    );
  });

  it.each([
    ['no reason', { settings: { dryRun: true } }, /reason is required/],
    ['a blank reason', { settings: { dryRun: true }, reason: '  ' }, /reason is required/],
    ['settings not an object', { settings: ['x'], reason: 'r' }, /settings must be a JSON object/],
    ['a bad value', { settings: { maxSessions: 0 }, reason: 'r' }, /maxSessions.*got 0/],
    ['an unknown setting', { settings: { colour: 'red' }, reason: 'r' }, /colour/],
    ['a bad rule', { settings: { rules: [{ match: {} }] }, reason: 'r' }, /rules/],
  ])('answers 400 with the reason for %s', async (_, body, message) => {
    const { staff } = await setup();
    const response = await send(staff, 'PUT', '/api/admin/policy', body);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toMatch(message);
    expect((await policyOf(staff)).audit).toEqual([]);
  });

  // Raw JSON: an object literal's `__proto__` sets the prototype, and JSON.stringify drops it.
  const SETTINGS = 'preventConcurrentLogins, exemptUsernames, exemptGroups, maxSessions';
  it.each([
    ['settings.__proto__', 'PUT', '{"settings":{"__proto__":{}},"reason":"r"}', SETTINGS],
    [
      'settings.__proto__',
      'PUT',
      '{"settings":{"__proto__":{"dryRun":true}},"reason":"r"}',
      SETTINGS,
    ],
    ['settings.constructor', 'PUT', '{"settings":{"constructor":{}},"reason":"r"}', SETTINGS],
    [
      'settings.exemptUsername',
      'PUT',
      '{"settings":{"exemptUsername":["a"]},"reason":"r"}',
      SETTINGS,
    ],
    [
      '__proto__',
      'PUT',
      '{"__proto__":{},"settings":{"dryRun":true},"reason":"r"}',
      'settings, reason',
    ],
    ['reasons', 'PUT', '{"settings":{"dryRun":true},"reasons":"r"}', 'settings, reason'],
    ['__proto__', 'DELETE', '{"__proto__":{},"reason":"r"}', 'reason'],
  ])(
    'answers 400 naming the unknown field %s (%s %s), writes and audits nothing',
    async (field, method, body, accepted) => {
      const { staff } = await setup();
      expect((await send(staff, 'PUT', '/api/admin/policy', EXEMPT_SVC)).status).toBe(200);
      const before = await policyOf(staff);
      const response = await staff.request('/api/admin/policy', {
        method,
        body,
        headers: { 'content-type': 'application/json' },
      });
      expect(response.status).toBe(400);
      const { detail } = (await response.json()) as { detail: string };
      expect(detail).toContain(`${field}: unknown field; accepted: ${accepted}`);
      expect(await policyOf(staff)).toEqual(before);
    },
  );

  it('applies a saved exemption to the next login without a restart', async () => {
    const { lms, staff } = await setup();
    const first = new TestClient(lms.fetcher);
    const second = new TestClient(lms.fetcher);
    await first.xqueueLogin('xqueue_svc', 'xqueue-pass');
    await second.xqueueLogin('xqueue_svc', 'xqueue-pass');
    expect((await first.get('/xqueue/get_queuelen/?queue_name=test-queue')).status).toBe(403);
    expect((await send(staff, 'PUT', '/api/admin/policy', EXEMPT_SVC)).status).toBe(200);
    const third = new TestClient(lms.fetcher);
    await third.xqueueLogin('xqueue_svc', 'xqueue-pass');
    for (const client of [second, third]) {
      expect((await client.get('/xqueue/get_queuelen/?queue_name=test-queue')).status).toBe(200);
    }
  });

  it('resets to the environment settings with a reason', async () => {
    const { staff } = await setup({ policy: { exemptGroups: ['graders'] } });
    await send(staff, 'PUT', '/api/admin/policy', EXEMPT_SVC);
    expect((await send(staff, 'DELETE', '/api/admin/policy', {})).status).toBe(400);
    const reset = await send(staff, 'DELETE', '/api/admin/policy', { reason: 'storm over' });
    expect(reset.status).toBe(200);
    const view = await policyOf(staff);
    expect(view.settings).toMatchObject({ exemptUsernames: [], exemptGroups: ['graders'] });
    expect(view.source).toEqual({ kind: 'environment' });
    expect(view.audit.map((entry) => entry.action)).toEqual(['reset', 'update']);
  });
});

describe('admin policy input caps', () => {
  it('answers 400 to settings nested 400,000 levels deep, and saves nothing', async () => {
    const { staff } = await setup();
    const deep = `${'['.repeat(400_000)}${']'.repeat(400_000)}`;
    const response = await staff.request('/api/admin/policy', {
      method: 'PUT',
      body: `{"settings":{"rules":[${deep}]},"reason":"r"}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(400);
    const { detail } = (await response.json()) as { detail: string };
    expect(detail).toMatch(/^Invalid session policy settings:\n {2}- rules at 0: .*\(got \[\[\[/);
    expect((await policyOf(staff)).audit).toEqual([]);
  });

  it.each([
    ['201 rules', { rules: Array.from({ length: 201 }, () => ({ match: { path: 'xqueue' } })) }],
    [
      '1,001 exempt usernames',
      { exemptUsernames: Array.from({ length: 1001 }, (_, i) => `u${i}`) },
    ],
    ['a group name of 151 characters', { exemptGroups: ['g'.repeat(151)] }],
  ])('answers 400 to %s, naming the cap', async (_, settings) => {
    const { staff } = await setup();
    const response = await send(staff, 'PUT', '/api/admin/policy', { settings, reason: 'r' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toMatch(
      /at most (200|1000|150) /,
    );
    expect((await policyOf(staff)).audit).toEqual([]);
  });
});

describe('admin policy changes that change nothing', () => {
  it('answers 409 to a save that leaves the settings as they are, and audits nothing', async () => {
    const { staff } = await setup({ policy: { exemptGroups: ['graders'] } });
    expect((await send(staff, 'PUT', '/api/admin/policy', EXEMPT_SVC)).status).toBe(200);
    for (const settings of [{ exemptUsernames: ['xqueue_svc'] }, { exemptGroups: ['graders'] }]) {
      const again = await send(staff, 'PUT', '/api/admin/policy', { settings, reason: 'again' });
      expect(again.status).toBe(409);
      expect(await again.json()).toEqual({
        detail: 'Nothing to save: the policy already has these settings.',
      });
    }
    expect((await policyOf(staff)).audit.map((entry) => entry.reason)).toEqual([EXEMPT_SVC.reason]);
  });

  it('answers 409 to a reset when nothing is saved', async () => {
    const { staff } = await setup();
    const reset = await send(staff, 'DELETE', '/api/admin/policy', { reason: 'tidy' });
    expect(reset.status).toBe(409);
    expect(await reset.json()).toEqual({
      detail: "Nothing to reset: no override is saved; the environment's settings apply.",
    });
    expect((await policyOf(staff)).audit).toEqual([]);
  });
});

describe('admin policy audit paging', () => {
  type Page = {
    audit: { id: number; reason: string; before: object; after: object }[];
    auditNext: number | null;
  };
  const page = async (client: TestClient, query = '') =>
    (await (await client.get(`/api/admin/policy${query}`)).json()) as Page;

  it('keeps every change reachable, newest first, page by page', async () => {
    const { staff } = await setup();
    for (let change = 1; change <= 60; change += 1) {
      const settings = { maxSessions: (change % 2) + 1 };
      const saved = await send(staff, 'PUT', '/api/admin/policy', {
        settings,
        reason: `#${change}`,
      });
      expect(saved.status).toBe(200);
    }
    const first = await page(staff);
    expect(first.audit.map((entry) => entry.reason)).toEqual(
      Array.from({ length: 50 }, (_, i) => `#${60 - i}`),
    );
    expect(first.auditNext).toBe(first.audit.at(-1)?.id);
    const second = await page(staff, `?before=${first.auditNext}`);
    expect(second.audit.map((entry) => entry.reason)).toEqual(
      Array.from({ length: 10 }, (_, i) => `#${10 - i}`),
    );
    expect(second.auditNext).toBeNull();
    const small = await page(staff, '?limit=3');
    expect(small.audit.map((entry) => entry.reason)).toEqual(['#60', '#59', '#58']);
    const next = await page(staff, `?before=${small.auditNext}&limit=3`);
    expect(next.audit.map((entry) => entry.reason)).toEqual(['#57', '#56', '#55']);
  });

  it('shows in each entry only the settings that changed', async () => {
    const { staff } = await setup();
    await send(staff, 'PUT', '/api/admin/policy', EXEMPT_SVC);
    const [entry] = (await page(staff)).audit;
    expect(entry?.before).toEqual({ exemptUsernames: [] });
    expect(entry?.after).toEqual({ exemptUsernames: ['xqueue_svc'] });
  });

  it.each([
    ['?before=0', 'before must be an audit entry id (a positive integer)'],
    ['?before=x', 'before must be an audit entry id (a positive integer)'],
    ['?limit=0', 'limit must be an integer 1..50'],
    ['?limit=51', 'limit must be an integer 1..50'],
  ])('answers 400 to %s', async (query, detail) => {
    const { staff } = await setup();
    const response = await staff.get(`/api/admin/policy${query}`);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ detail });
  });
});
