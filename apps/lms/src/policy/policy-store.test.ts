import { parseSettings } from '@storm-lab/session-policy';
import { afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { createTestClock } from '../testing/fixtures.ts';
import { createPolicyStore } from './policy-store.ts';

let database: LmsDatabase | undefined;
afterEach(() => database?.close());

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
