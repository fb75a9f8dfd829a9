import { isDeepStrictEqual } from 'node:util';
import {
  type PolicySettings,
  PolicySettingsError,
  type PolicySettingsInput,
  parseSettings,
} from '@storm-lab/session-policy';
import { desc, eq, lt } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { policyAudit, policyOverrides } from '../db/schema.ts';
import { StoredDataError } from '../ops/errors.ts';

/** Where the current settings come from: the environment alone, or staff overrides on top. */
export type PolicySource =
  | { kind: 'environment' }
  | { kind: 'database'; updatedAt: number; updatedBy: string };

/** One change of the policy, as the audit list shows it. */
export interface PolicyAuditEntry {
  id: number;
  /** Milliseconds since the epoch. */
  at: number;
  actor: string;
  action: 'update' | 'reset';
  reason: string;
  before: PolicySettings;
  after: PolicySettings;
}

/** Who changes the policy and why; both are kept in the audit trail. */
export interface PolicyChangeRequest {
  actor: string;
  reason: string;
}

/**
 * A change's outcome. Expected "no"s: settings that do not validate (`invalid`), and a change
 * that would leave the settings as they are (`unchanged`: nothing is saved or audited, so
 * repeated saves cannot push real changes down the audit list).
 */
export type PolicyChangeResult =
  | { ok: true; settings: PolicySettings }
  | { ok: false; kind: 'invalid' | 'unchanged'; error: string };

/** Which audit entries {@link PolicyStore.audit} lists. */
export interface AuditPageOptions {
  /** Most entries to list (default 50). */
  limit?: number | undefined;
  /** Only entries older than this id: the last id of the page before. */
  before?: number | undefined;
}

/** The session policy as a run-time value: environment defaults plus staff overrides. */
export interface PolicyStore {
  /** The settings the environment gave at start. */
  readonly defaults: PolicySettings;
  /**
   * The settings the next login is decided with, as last saved by any process on the database
   * file: one indexed read of the version, and a reload only when it moved.
   */
  current(): PolicySettings;
  /** The fields staff set, which replace the defaults' (empty when none); as fresh as current(). */
  overrides(): Readonly<Record<string, unknown>>;
  /** Where current() comes from; `environment` whenever no override is saved. */
  source(): PolicySource;
  /**
   * Sets the given fields (any of {@link PolicySettings}) on top of the latest saved overrides,
   * whichever process saved them; fields left out keep their saved value. The whole result is
   * validated before anything is written, and refused as `unchanged` when it gives the settings
   * already in force.
   */
  update(fields: Record<string, unknown>, change: PolicyChangeRequest): PolicyChangeResult;
  /** Drops every override: the environment's settings apply again; `unchanged` when none is saved. */
  reset(change: PolicyChangeRequest): PolicyChangeResult;
  /** The newest changes first, a page at a time. */
  audit(page?: AuditPageOptions): PolicyAuditEntry[];
}

export interface PolicyStoreOptions {
  db: Db;
  /** The settings from the environment; overrides replace their fields. */
  defaults: PolicySettings;
  now: () => number;
}

// The override row is a singleton: one policy per LMS.
const OVERRIDE_ID = 1;
// The version while no process has saved a change yet; a saved row starts at 1.
const UNSAVED_VERSION = 0;
const DEFAULT_AUDIT_LIMIT = 50;
const NOTHING_TO_SAVE = 'Nothing to save: the policy already has these settings.';
const NOTHING_TO_RESET =
  "Nothing to reset: no override is saved; the environment's settings apply.";

type OverrideRow = typeof policyOverrides.$inferSelect;

/** The saved policy at one version, with the settings it gives on this process's defaults. */
interface Loaded {
  version: number;
  overrides: Record<string, unknown>;
  settings: PolicySettings;
  source: PolicySource;
}

function readJson(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new StoredDataError(`${what} is not JSON`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new StoredDataError(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function validate(
  defaults: PolicySettings,
  overrides: Record<string, unknown>,
): PolicyChangeResult {
  try {
    // parseSettings is strict: unknown fields and bad values come back as its message.
    return {
      ok: true,
      settings: parseSettings({ ...defaults, ...overrides } as PolicySettingsInput),
    };
  } catch (error) {
    if (error instanceof PolicySettingsError)
      return { ok: false, kind: 'invalid', error: error.message };
    throw error;
  }
}

function readRow(db: Db): OverrideRow | undefined {
  return db.select().from(policyOverrides).where(eq(policyOverrides.id, OVERRIDE_ID)).get();
}

function load(defaults: PolicySettings, row: OverrideRow | undefined): Loaded {
  const overrides = row ? readJson(row.settings, 'policy_overrides.settings') : {};
  const loaded = validate(defaults, overrides);
  if (!loaded.ok) throw new StoredDataError(`saved policy overrides are invalid: ${loaded.error}`);
  // A reset keeps the row (so the version keeps counting) with no overrides left.
  const source: PolicySource =
    row && Object.keys(overrides).length > 0
      ? { kind: 'database', updatedAt: row.updatedAt, updatedBy: row.updatedBy }
      : { kind: 'environment' };
  return {
    version: row?.version ?? UNSAVED_VERSION,
    overrides,
    settings: loaded.settings,
    source,
  };
}

/**
 * Creates the policy store, loading any saved overrides. Every LMS process on the database file
 * has one; the login hook reads `current()` on every login, which compares the saved version
 * with the one in memory and reloads only when another process (or this one) saved a change.
 * A change is read, merged and written in one write-locked transaction, so it is always applied
 * to the latest saved overrides and never undoes another process's change.
 *
 * @example
 * const policy = createPolicyStore({ db, defaults: config.policy, now: Date.now });
 * policy.update({ exemptUsernames: ['xqueue_svc'] }, { actor: 'staff', reason: 'storm' });
 */
export function createPolicyStore(options: PolicyStoreOptions): PolicyStore {
  const { db, defaults, now } = options;
  const savedVersion = db
    .select({ version: policyOverrides.version })
    .from(policyOverrides)
    .where(eq(policyOverrides.id, OVERRIDE_ID))
    .prepare();
  let cached = load(defaults, readRow(db));

  /** The latest saved policy: one primary-key read while it is unchanged. */
  function latest(): Loaded {
    const version = savedVersion.get()?.version ?? UNSAVED_VERSION;
    if (version !== cached.version) cached = load(defaults, readRow(db));
    return cached;
  }

  function record(
    action: 'update' | 'reset',
    apply: (saved: Readonly<Record<string, unknown>>) => Record<string, unknown>,
    change: PolicyChangeRequest,
    unchanged: (saved: Loaded, next: PolicySettings) => string | null,
  ): PolicyChangeResult {
    const at = now();
    // IMMEDIATE takes the write lock before the read: no other process can save between this
    // read and the write, so the requested fields always land on the latest overrides.
    const outcome = db.transaction(
      (tx) => {
        const saved = load(defaults, readRow(tx));
        const next = apply(saved.overrides);
        const result = validate(defaults, next);
        if (!result.ok) return { result, saved: null };
        const same = unchanged(saved, result.settings);
        if (same !== null) {
          return { result: { ok: false, kind: 'unchanged', error: same } as const, saved: null };
        }
        const version = saved.version + 1;
        const values = { settings: JSON.stringify(next), updatedAt: at, updatedBy: change.actor };
        const written = tx
          .insert(policyOverrides)
          .values({ id: OVERRIDE_ID, ...values, version })
          .onConflictDoUpdate({
            target: policyOverrides.id,
            set: { ...values, version },
            setWhere: eq(policyOverrides.version, saved.version),
          })
          .run();
        // The version check of the write: cannot fail under the lock, and must never pass
        // silently if it did (that would be a lost update).
        if (written.changes !== 1) {
          throw new Error(`policy_overrides moved past version ${saved.version} during a change`);
        }
        tx.insert(policyAudit)
          .values({
            at,
            actor: change.actor,
            action,
            reason: change.reason,
            before: JSON.stringify(saved.settings),
            after: JSON.stringify(result.settings),
          })
          .run();
        return { result, saved: load(defaults, { id: OVERRIDE_ID, ...values, version }) };
      },
      { behavior: 'immediate' },
    );
    // Only after the commit, so memory never runs ahead of the database.
    if (outcome.saved) cached = outcome.saved;
    return outcome.result;
  }

  return {
    defaults,
    current: () => latest().settings,
    overrides: () => latest().overrides,
    source: () => latest().source,
    update: (fields, change) =>
      record(
        'update',
        (saved) => ({ ...saved, ...fields }),
        change,
        (saved, next) => (isDeepStrictEqual(saved.settings, next) ? NOTHING_TO_SAVE : null),
      ),
    reset: (change) =>
      record(
        'reset',
        () => ({}),
        change,
        (saved) => (Object.keys(saved.overrides).length === 0 ? NOTHING_TO_RESET : null),
      ),
    audit({ limit = DEFAULT_AUDIT_LIMIT, before } = {}) {
      return db
        .select()
        .from(policyAudit)
        .where(before === undefined ? undefined : lt(policyAudit.id, before))
        .orderBy(desc(policyAudit.id))
        .limit(limit)
        .all()
        .map((entry) => ({
          ...entry,
          // Written by this store from settings that had passed parseSettings.
          before: readJson(
            entry.before,
            `policy_audit ${entry.id} before`,
          ) as unknown as PolicySettings,
          after: readJson(
            entry.after,
            `policy_audit ${entry.id} after`,
          ) as unknown as PolicySettings,
        }));
    },
  };
}
