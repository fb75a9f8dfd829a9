import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalLms, startLms } from '@storm-lab/harness';
import { parseSettings } from '@storm-lab/session-policy';
import { afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { TestClient, urlFetcher } from '../testing/client.ts';
import { createTestClock, TEST_ITERATIONS } from '../testing/fixtures.ts';
import { createPolicyStore } from './policy-store.ts';

let database: LmsDatabase | undefined;
let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  database?.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

function setup(env = {}) {
  database = openDatabase({ path: ':memory:' });
  const clock = createTestClock();
  const defaults = parseSettings(env);
  const open = () => createPolicyStore({ db: database!.db, defaults, now: clock.now });
  return { clock, defaults, open };
}

const BY_STAFF = { actor: 'staff', reason: 'storm on xqueue_svc' };

describe('createPolicyStore', () => {
  it('starts from the environment defaults', () => {
    const { open, defaults } = setup({ exemptGroups: ['graders'] });
    const store = open();
    expect(store.current()).toEqual(defaults);
    expect(store.source()).toEqual({ kind: 'environment' });
    expect(store.overrides()).toEqual({});
    expect(store.audit()).toEqual([]);
  });

  it('replaces only the fields given and records who, when, why, before and after', () => {
    const { open, clock } = setup({ exemptGroups: ['graders'], maxSessions: 2 });
    const store = open();
    const result = store.update({ exemptUsernames: ['xqueue_svc'] }, BY_STAFF);
    expect(result).toMatchObject({ ok: true });
    expect(store.current()).toMatchObject({
      exemptUsernames: ['xqueue_svc'],
      exemptGroups: ['graders'],
      maxSessions: 2,
    });
    expect(store.source()).toEqual({
      kind: 'database',
      updatedAt: clock.now(),
      updatedBy: 'staff',
    });
    const [entry] = store.audit();
    expect(entry).toMatchObject({
      at: clock.now(),
      actor: 'staff',
      action: 'update',
      reason: BY_STAFF.reason,
    });
    expect(entry?.before.exemptUsernames).toEqual([]);
    expect(entry?.after.exemptUsernames).toEqual(['xqueue_svc']);
  });

  it('keeps the overrides across restarts, on top of the environment of the new start', () => {
    const { open } = setup();
    open().update({ exemptUsernames: ['xqueue_svc'] }, BY_STAFF);
    const again = createPolicyStore({
      db: database!.db,
      defaults: parseSettings({ dryRun: true }),
      now: () => 0,
    });
    expect(again.current()).toMatchObject({ exemptUsernames: ['xqueue_svc'], dryRun: true });
    expect(again.source()).toMatchObject({ kind: 'database', updatedBy: 'staff' });
  });

  it('refuses invalid settings with parseSettings message and changes nothing', () => {
    const { open, defaults } = setup();
    const store = open();
    const bad = store.update({ maxSessions: 0, colour: 'red' }, BY_STAFF);
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/Invalid session policy settings/);
    expect(!bad.ok && bad.error).toMatch(/maxSessions/);
    expect(store.current()).toEqual(defaults);
    expect(store.audit()).toEqual([]);
    expect(open().source()).toEqual({ kind: 'environment' });
  });

  it('lists the newest change first and resets to the environment', () => {
    const { open, clock, defaults } = setup();
    const store = open();
    store.update({ exemptUsernames: ['a'] }, { actor: 'staff', reason: 'first' });
    clock.advance(1000);
    store.update({ exemptGroups: ['xqueue'] }, { actor: 'staff', reason: 'second' });
    expect(store.current()).toMatchObject({ exemptUsernames: ['a'], exemptGroups: ['xqueue'] });
    clock.advance(1000);
    store.reset({ actor: 'admin', reason: 'storm over' });
    expect(store.current()).toEqual(defaults);
    expect(store.source()).toEqual({ kind: 'environment' });
    expect(store.audit().map((entry) => [entry.action, entry.reason])).toEqual([
      ['reset', 'storm over'],
      ['update', 'second'],
      ['update', 'first'],
    ]);
    expect(open().current()).toEqual(defaults);
  });
});

describe('createPolicyStore: changes that change nothing, and audit pages', () => {
  it('refuses as unchanged an update that gives the settings in force, saving and auditing nothing', () => {
    const { open } = setup({ exemptGroups: ['graders'] });
    const store = open();
    expect(store.update({ exemptUsernames: ['xqueue_svc'] }, BY_STAFF)).toMatchObject({ ok: true });
    for (const fields of [{ exemptUsernames: ['xqueue_svc'] }, { exemptGroups: ['graders'] }, {}]) {
      expect(store.update(fields, BY_STAFF)).toEqual({
        ok: false,
        kind: 'unchanged',
        error: 'Nothing to save: the policy already has these settings.',
      });
    }
    expect(store.overrides()).toEqual({ exemptUsernames: ['xqueue_svc'] });
    expect(store.audit()).toHaveLength(1);
  });

  it('refuses a reset when no override is saved, and tells invalid settings apart', () => {
    const { open } = setup();
    const store = open();
    expect(store.reset(BY_STAFF)).toMatchObject({ ok: false, kind: 'unchanged' });
    expect(store.update({ maxSessions: 0 }, BY_STAFF)).toMatchObject({
      ok: false,
      kind: 'invalid',
    });
    expect(store.audit()).toEqual([]);
  });

  it('lists the audit a page at a time, older than a given id', () => {
    const { open } = setup();
    const store = open();
    for (let change = 1; change <= 7; change += 1) {
      store.update({ maxSessions: change + 1 }, { actor: 'staff', reason: `#${change}` });
    }
    const reasons = (entries: { reason: string }[]) => entries.map((entry) => entry.reason);
    const first = store.audit({ limit: 3 });
    expect(reasons(first)).toEqual(['#7', '#6', '#5']);
    const second = store.audit({ limit: 3, before: first.at(-1)?.id });
    expect(reasons(second)).toEqual(['#4', '#3', '#2']);
    expect(reasons(store.audit({ limit: 3, before: second.at(-1)?.id }))).toEqual(['#1']);
  });
});

/** Two stores on one database file through two connections, as two LMS processes have. */
function twoProcesses(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'policy-store-'));
  const path = join(dir, 'lms.db');
  const connections = [openDatabase({ path }), openDatabase({ path })];
  cleanups.push(() => {
    for (const connection of connections) connection.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = createTestClock();
  const defaults = parseSettings(env);
  const [a, b] = connections.map((connection) =>
    createPolicyStore({ db: connection.db, defaults, now: clock.now }),
  );
  return { a: a!, b: b!, defaults };
}

describe('createPolicyStore across processes sharing one database', () => {
  it('keeps both changes when a store with an older cache changes another field', () => {
    const { a, b } = twoProcesses();
    expect(a.update({ exemptUsernames: ['xqueue_svc'] }, BY_STAFF)).toMatchObject({ ok: true });
    // b loaded before a's change and has not served a login since.
    expect(b.update({ exemptGroups: ['graders'] }, BY_STAFF)).toMatchObject({ ok: true });
    const both = { exemptUsernames: ['xqueue_svc'], exemptGroups: ['graders'] };
    expect(b.current()).toMatchObject(both);
    expect(a.current()).toMatchObject(both);
    expect(a.overrides()).toEqual(both);
    expect(a.source()).toMatchObject({ kind: 'database', updatedBy: 'staff' });
    // The audit's "before" is the latest saved state, not the writer's stale cache.
    expect(b.audit()[0]?.before.exemptUsernames).toEqual(['xqueue_svc']);
  });

  it("serves the other process's change and reset at the next current() without a restart", () => {
    const { a, b, defaults } = twoProcesses();
    expect(b.current()).toEqual(defaults);
    a.update({ maxSessions: 3 }, BY_STAFF);
    expect(b.current().maxSessions).toBe(3);
    a.reset({ actor: 'admin', reason: 'storm over' });
    expect(b.current()).toEqual(defaults);
    expect(b.source()).toEqual({ kind: 'environment' });
    b.update({ dryRun: true }, BY_STAFF);
    expect(a.current()).toMatchObject({ dryRun: true, maxSessions: 1 });
  });

  it('reuses the cached settings while nothing changed', () => {
    const { a, b } = twoProcesses();
    a.update({ exemptUsernames: ['xqueue_svc'] }, BY_STAFF);
    // Same object: no reload and no re-validation while the version stays the same.
    expect(b.current()).toBe(b.current());
    const before = b.current();
    a.update({ exemptGroups: ['graders'] }, BY_STAFF);
    expect(b.current()).not.toBe(before);
  });
});

// Real processes: each holds its own store, so only the shared file carries a change across.
describe('a policy change across two LMS processes', { timeout: 120_000 }, () => {
  async function start(databasePath?: string): Promise<LocalLms> {
    const env = { PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS), LOG_LEVEL: 'warn' };
    const lms = await startLms({ env, ...(databasePath ? { databasePath } : {}) });
    cleanups.push(() => lms.stop());
    return lms;
  }

  function putPolicy(client: TestClient, settings: Record<string, unknown>) {
    return client.request('/api/admin/policy', {
      method: 'PUT',
      body: JSON.stringify({ settings, reason: 'storm on xqueue_svc' }),
      headers: { 'content-type': 'application/json' },
    });
  }

  async function grader(url: string): Promise<TestClient> {
    const client = new TestClient(urlFetcher(url));
    expect((await client.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    return client;
  }

  it('is used by the next login on the other process, and neither undoes the other', async () => {
    const first = await start();
    const second = await start(first.databasePath);
    const staffOnFirst = new TestClient(urlFetcher(first.url));
    expect((await staffOnFirst.webLogin('staff', 'staff-pass')).status).toBe(200);
    // The same session on the other process (sessions live in the shared file): a second staff
    // login would end the first under single login.
    const staffOnSecond = new TestClient(urlFetcher(second.url));
    for (const [name, value] of staffOnFirst.cookies) staffOnSecond.cookies.set(name, value);
    Object.assign(staffOnSecond.headers, staffOnFirst.headers);
    expect((await putPolicy(staffOnFirst, { exemptUsernames: ['xqueue_svc'] })).status).toBe(200);
    // Two logins on the second process: exempt, so the first session stays live.
    const graders = [await grader(second.url), await grader(second.url)];
    for (const client of graders) {
      expect((await client.get('/xqueue/get_queuelen/?queue_name=test-queue')).status).toBe(200);
    }
    expect((await putPolicy(staffOnSecond, { exemptGroups: ['graders'] })).status).toBe(200);
    const view = (await (await staffOnFirst.get('/api/admin/policy')).json()) as {
      overrides: Record<string, unknown>;
    };
    expect(view.overrides).toEqual({ exemptUsernames: ['xqueue_svc'], exemptGroups: ['graders'] });
  });
});
