import { isDeepStrictEqual } from 'node:util';
import type { PolicySettings } from '@storm-lab/session-policy';
import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { dashboardStats } from '../dashboard/stats.ts';
import { whenNotBusy } from '../db/busy-retry.ts';
import type { LmsEnv, Services } from '../http/context.ts';
import { requireStaff } from '../http/staff.ts';
import type { PolicyChangeResult } from '../policy/policy-store.ts';
import { staffSessionRoutes } from './sessions.ts';

/** Audit entries `GET /api/admin/policy` lists, newest first: the default and largest page. */
export const AUDIT_LIST_LENGTH = 50;
const MAX_REASON_LENGTH = 500;
/** Default and largest span of the stats series, in seconds. */
export const STATS_DEFAULT_SECONDS = 300;
export const STATS_MAX_SECONDS = 600;

const reason = z
  .string({ error: 'reason is required: say why the policy changes' })
  .trim()
  .min(1, 'reason is required: say why the policy changes')
  .max(MAX_REASON_LENGTH);

/** The fields a policy change body may have; any other is refused by name before parsing. */
const UPDATE_FIELDS = ['settings', 'reason'] as const;
const RESET_FIELDS = ['reason'] as const;

const updateSchema = z.strictObject({
  settings: z.record(z.string(), z.unknown(), { error: 'settings must be a JSON object' }),
  reason,
});
const resetSchema = z.strictObject({ reason });

function describe(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`)
    .join('; ');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Names each field of `value` that is not in `accepted`. Own keys from JSON.parse, so
 * `__proto__` and `constructor` count as the fields they are: zod's record would drop
 * `__proto__` (it becomes the copy's prototype) and the change would be saved without it.
 */
function unknownFields(value: unknown, accepted: readonly string[], prefix = ''): string[] {
  if (!isPlainObject(value)) return [];
  return Object.keys(value)
    .filter((key) => !accepted.includes(key))
    .map((key) => `${prefix}${key}: unknown field; accepted: ${accepted.join(', ')}`);
}

/** Unknown fields of a `PUT /policy` body, at the top level and inside `settings`. */
function unknownUpdateFields(body: unknown, settingsFields: readonly string[]): string[] {
  return [
    ...unknownFields(body, UPDATE_FIELDS),
    ...(isPlainObject(body) && Object.hasOwn(body, 'settings')
      ? unknownFields(body.settings, settingsFields, 'settings.')
      : []),
  ];
}

async function readJson(
  c: Context<LmsEnv>,
): Promise<{ ok: true; value: unknown } | { ok: false; response: Response }> {
  // JSON only: a cross-site HTML form cannot send it without a CORS preflight (defence in depth).
  if (!(c.req.header('content-type') ?? '').toLowerCase().startsWith('application/json')) {
    return {
      ok: false,
      response: c.json({ detail: 'Send a JSON object (Content-Type: application/json)' }, 415),
    };
  }
  try {
    return { ok: true, value: await c.req.json() };
  } catch {
    return { ok: false, response: c.json({ detail: 'Request body is not valid JSON' }, 400) };
  }
}

/** Only the fields whose value differs between `before` and `after`, from each. */
function changedFields(before: PolicySettings, after: PolicySettings) {
  const keys = (Object.keys(after) as (keyof PolicySettings)[]).filter(
    (key) => !isDeepStrictEqual(before[key], after[key]),
  );
  const pick = (settings: PolicySettings) =>
    Object.fromEntries(keys.map((key) => [key, settings[key]]));
  return { before: pick(before), after: pick(after) };
}

/** An audit page: `before` an entry id (older entries only), `limit` 1..AUDIT_LIST_LENGTH. */
type AuditPage = { ok: true; before?: number; limit: number } | { ok: false; error: string };

function auditPage(c: Context<LmsEnv>): AuditPage {
  const rawBefore = c.req.query('before');
  const rawLimit = c.req.query('limit');
  const before = rawBefore === undefined ? undefined : Number(rawBefore);
  const limit = rawLimit === undefined ? AUDIT_LIST_LENGTH : Number(rawLimit);
  if (before !== undefined && (!Number.isSafeInteger(before) || before < 1))
    return { ok: false, error: 'before must be an audit entry id (a positive integer)' };
  if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_LIST_LENGTH)
    return { ok: false, error: `limit must be an integer 1..${AUDIT_LIST_LENGTH}` };
  return before === undefined ? { ok: true, limit } : { ok: true, before, limit };
}

function policyView(services: Services, page: { before?: number; limit: number }) {
  const { policy } = services;
  // One more than the page: whether an older page exists, without a count.
  const entries = policy.audit({ before: page.before, limit: page.limit + 1 });
  const shown = entries.slice(0, page.limit);
  return {
    settings: policy.current(),
    source: policy.source(),
    defaults: policy.defaults,
    overrides: policy.overrides(),
    // The full settings before and after stay in policy_audit; the list shows what changed.
    audit: shown.map((entry) => ({
      ...entry,
      ...changedFields(entry.before, entry.after),
      at: new Date(entry.at).toISOString(),
    })),
    auditNext: entries.length > page.limit ? (shown.at(-1)?.id ?? null) : null,
  };
}

/**
 * The staff-only admin API: read and change the session policy at run time (kept in the
 * database with an audit trail), the live stats the dashboard draws, and any account's
 * sessions (`/users/:username/sessions`, see {@link staffSessionRoutes}).
 *
 * @example
 * app.route('/api/admin', adminRoutes(services));
 */
export function adminRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  app.use('*', requireStaff);
  // parseSettings fills in every field, so the defaults name each setting there is.
  const settingsFields = Object.keys(services.policy.defaults);

  function answer(c: Context<LmsEnv>, result: PolicyChangeResult, why: string, action: string) {
    if (!result.ok)
      return c.json({ detail: result.error }, result.kind === 'unchanged' ? 409 : 400);
    const actor = c.get('auth')?.user.username;
    services.logger.info(
      {
        event: 'policy-change',
        action,
        actor,
        reason: why,
        overrides: services.policy.overrides(),
      },
      `session policy ${action} by ${actor}: ${why}`,
    );
    return c.json(policyView(services, { limit: AUDIT_LIST_LENGTH }));
  }

  app.get('/policy', (c) => {
    const page = auditPage(c);
    if (!page.ok) return c.json({ detail: page.error }, 400);
    return c.json(policyView(services, page));
  });

  app.put('/policy', async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const unknown = unknownUpdateFields(body.value, settingsFields);
    if (unknown.length > 0) return c.json({ detail: unknown.join('; ') }, 400);
    const parsed = updateSchema.safeParse(body.value);
    if (!parsed.success) return c.json({ detail: describe(parsed.error) }, 400);
    const actor = c.get('auth')!.user.username;
    const { settings, reason: why } = parsed.data;
    // Another process may hold the write lock (another worker's write): wait it out, as the
    // logins' own writes do, instead of answering 503 at the first collision.
    const result = await whenNotBusy(() =>
      services.policy.update(settings, { actor, reason: why }),
    );
    return answer(c, result, why, 'update');
  });

  app.delete('/policy', async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const unknown = unknownFields(body.value, RESET_FIELDS);
    if (unknown.length > 0) return c.json({ detail: unknown.join('; ') }, 400);
    const parsed = resetSchema.safeParse(body.value);
    if (!parsed.success) return c.json({ detail: describe(parsed.error) }, 400);
    const actor = c.get('auth')!.user.username;
    const why = parsed.data.reason;
    const result = await whenNotBusy(() => services.policy.reset({ actor, reason: why }));
    return answer(c, result, why, 'reset');
  });

  app.get('/stats', async (c) => {
    const raw = c.req.query('seconds');
    const seconds = raw === undefined ? STATS_DEFAULT_SECONDS : Number(raw);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > STATS_MAX_SECONDS) {
      return c.json({ detail: `seconds must be an integer 1..${STATS_MAX_SECONDS}` }, 400);
    }
    return c.json(await dashboardStats(services, seconds));
  });

  app.route('/users', staffSessionRoutes(services));
  return app;
}
