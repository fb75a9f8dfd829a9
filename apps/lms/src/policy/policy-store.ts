import {
  type PolicySettings,
  PolicySettingsError,
  type PolicySettingsInput,
  parseSettings,
} from '@storm-lab/session-policy';
import { desc, eq } from 'drizzle-orm';
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

/** A change's outcome; settings that do not validate are an expected "no". */
export type PolicyChangeResult =
  | { ok: true; settings: PolicySettings }
  | { ok: false; error: string };

/** The session policy as a run-time value: environment defaults plus staff overrides. */
export interface PolicyStore {
  /** The settings the environment gave at start. */
  readonly defaults: PolicySettings;
  /** The settings the next login is decided with; cheap, served from memory. */
  current(): PolicySettings;
  /** The fields staff set, which replace the defaults' (empty when none). */
  overrides(): Readonly<Record<string, unknown>>;
  source(): PolicySource;
  /**
   * Sets the given fields (any of {@link PolicySettings}); fields left out keep their current
   * value. The whole result is validated before anything is written.
   */
  update(fields: Record<string, unknown>, change: PolicyChangeRequest): PolicyChangeResult;
  /** Drops every override: the environment's settings apply again. */
  reset(change: PolicyChangeRequest): PolicyChangeResult;
  /** The newest changes first. */
  audit(limit?: number): PolicyAuditEntry[];
}

export interface PolicyStoreOptions {
  db: Db;
  /** The settings from the environment; overrides replace their fields. */
  defaults: PolicySettings;
  now: () => number;
}

// The override row is a singleton: one policy per LMS.
const OVERRIDE_ID = 1;
const DEFAULT_AUDIT_LIMIT = 50;

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
    if (error instanceof PolicySettingsError) return { ok: false, error: error.message };
    throw error;
  }
}

/**
 * Creates the policy store, loading any saved overrides. The login hook reads `current()` on
 * every login; a save updates it at once (one process: the cache is this object).
 *
 * @example
 * const policy = createPolicyStore({ db, defaults: config.policy, now: Date.now });
 * policy.update({ exemptUsernames: ['xqueue_svc'] }, { actor: 'staff', reason: 'storm' });
 */
export function createPolicyStore(options: PolicyStoreOptions): PolicyStore {
  const { db, defaults, now } = options;
  const row = db.select().from(policyOverrides).where(eq(policyOverrides.id, OVERRIDE_ID)).get();
  let overrides = row ? readJson(row.settings, 'policy_overrides.settings') : {};
  let source: PolicySource = row
    ? { kind: 'database', updatedAt: row.updatedAt, updatedBy: row.updatedBy }
    : { kind: 'environment' };
  const loaded = validate(defaults, overrides);
  if (!loaded.ok) throw new StoredDataError(`saved policy overrides are invalid: ${loaded.error}`);
  let settings = loaded.settings;

  function record(
    action: 'update' | 'reset',
    next: Record<string, unknown> | null,
    change: PolicyChangeRequest,
  ): PolicyChangeResult {
    const result = validate(defaults, next ?? {});
    if (!result.ok) return result;
    const at = now();
    db.transaction((tx) => {
      if (next === null) {
        tx.delete(policyOverrides).where(eq(policyOverrides.id, OVERRIDE_ID)).run();
      } else {
        const values = { settings: JSON.stringify(next), updatedAt: at, updatedBy: change.actor };
        tx.insert(policyOverrides)
          .values({ id: OVERRIDE_ID, ...values })
          .onConflictDoUpdate({ target: policyOverrides.id, set: values })
          .run();
      }
      tx.insert(policyAudit)
        .values({
          at,
          actor: change.actor,
          action,
          reason: change.reason,
          before: JSON.stringify(settings),
          after: JSON.stringify(result.settings),
        })
        .run();
    });
    // Only after the commit, so memory never runs ahead of the database.
    overrides = next ?? {};
    settings = result.settings;
    source =
      next === null
        ? { kind: 'environment' }
        : { kind: 'database', updatedAt: at, updatedBy: change.actor };
    return result;
  }

  return {
    defaults,
    current: () => settings,
    overrides: () => overrides,
    source: () => source,
    update: (fields, change) => record('update', { ...overrides, ...fields }, change),
    reset: (change) => record('reset', null, change),
    audit(limit = DEFAULT_AUDIT_LIMIT) {
      return db
        .select()
        .from(policyAudit)
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
