import { z } from 'zod';

/**
 * What happens when a login would exceed the account's session limit: end the sessions created
 * first, end the sessions used least recently (by `lastSeenAt`), or refuse the new login.
 */
export type OnLimit = 'evict-oldest' | 'evict-least-recent' | 'deny-new';

/**
 * Which sessions compete for the limit. `account`: all of the user's sessions (upstream).
 * `instance`: only sessions that carry the same client instance id as the new login, so a
 * worker that names itself replaces its own earlier session and never a sibling's.
 */
export type SessionScope = 'account' | 'instance';

/**
 * Which logins a rule applies to: an account (exact username, or membership of a group), a
 * login path, or an account on a login path. `path` is one path segment: the rule applies to a
 * login whose request path has it as a whole segment (`xqueue` matches `/xqueue/login/`, not
 * `/xqueuex/login`), and its sessions form their own pool (see `EffectiveRule.pool`).
 */
export type AccountMatch =
  | { username: string; path?: string | undefined }
  | { group: string; path?: string | undefined }
  | { path: string };

/**
 * A per-account or per-path rule. Precedence, most specific first: username and path, group
 * and path, path only, username, group; within one kind the first rule listed wins.
 */
export interface AccountRule {
  match: AccountMatch;
  maxSessions?: number | undefined;
  onLimit?: OnLimit | undefined;
  scope?: SessionScope | undefined;
}

/** Validated policy settings. Build them with {@link parseSettings} or {@link settingsFromEnv}. */
export interface PolicySettings {
  /** Upstream `PREVENT_CONCURRENT_LOGINS`: when false, no session is ever evicted. */
  preventConcurrentLogins: boolean;
  /** Upstream `SINGLE_LOGIN_EXEMPT_USERNAMES`: exact, case-sensitive usernames. */
  exemptUsernames: readonly string[];
  /** Upstream `SINGLE_LOGIN_EXEMPT_GROUPS`: membership in any of these exempts. */
  exemptGroups: readonly string[];
  /**
   * Default limit of concurrent sessions per account, counted in each pool of the account
   * separately (see `EffectiveRule.pool`); 1 = upstream single login.
   */
  maxSessions: number;
  onLimit: OnLimit;
  scope: SessionScope;
  /** Per-account and per-path overrides; see {@link AccountRule} for which one applies. */
  rules: readonly AccountRule[];
  /** Decide and report evictions, but delete nothing (for a safe rollout). */
  dryRun: boolean;
}

/** Most rules `rules` may hold: each login is matched against every rule. */
export const MAX_RULES = 200;
/** Most names each of `exemptUsernames` and `exemptGroups` may hold. */
export const MAX_NAMES = 1000;
/**
 * Longest username, group name or rule path segment, in characters (after trimming): Django's
 * `User.username` and `Group.name` are 150 characters at most.
 */
export const MAX_NAME_LENGTH = 150;

const name = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(MAX_NAME_LENGTH, `at most ${MAX_NAME_LENGTH} characters`);
const names = z.array(name).max(MAX_NAMES, `at most ${MAX_NAMES} names`);
const onLimit = z.enum(['evict-oldest', 'evict-least-recent', 'deny-new']);
const scope = z.enum(['account', 'instance']);
const maxSessions = z.number().int().min(1).max(10_000);

const pathSegment = name.refine(
  (text) => !/[/?#]/.test(text),
  'must be one path segment, without "/", "?" or "#"',
);

const matchSchema = z
  .strictObject({
    username: name.optional(),
    group: name.optional(),
    path: pathSegment.optional(),
  })
  .refine(
    (match) => match.username === undefined || match.group === undefined,
    'may name a username or a group, not both (write two rules)',
  )
  .refine(
    (match) =>
      match.username !== undefined || match.group !== undefined || match.path !== undefined,
    {
      message: 'must name a username, a group or a path (or a path with one of the others)',
      // An unknown key ({"team": ...}) is reported as such; "names nothing" would only add noise.
      when: (payload) => payload.issues.length === 0,
    },
  )
  .transform(({ username, group, path }): AccountMatch => {
    const where = path === undefined ? {} : { path };
    if (username !== undefined) return { username, ...where };
    if (group !== undefined) return { group, ...where };
    return { path: path ?? '' }; // '' only for input the refinements above already rejected
  });

const accountRuleSchema = z
  .object({
    match: matchSchema,
    maxSessions: maxSessions.optional(),
    onLimit: onLimit.optional(),
    scope: scope.optional(),
  })
  .strict();

const settingsSchema = z
  .object({
    preventConcurrentLogins: z
      .boolean()
      .default(true)
      .describe("Upstream's flag: `false` never evicts a session."),
    exemptUsernames: names
      .default([])
      .describe(
        'Comma-separated exact, case-sensitive usernames that are exempt: their logins evict nothing and are not recorded in the slot (at most 1,000, each at most 150 characters).',
      ),
    exemptGroups: names
      .default([])
      .describe(
        'Comma-separated group names; membership in any of them exempts (at most 1,000, each at most 150 characters).',
      ),
    maxSessions: maxSessions
      .default(1)
      .describe(
        'Live sessions allowed per account, counted in each pool separately; 1 is upstream.',
      ),
    onLimit: onLimit
      .default('evict-oldest')
      .describe(
        'What a login beyond the limit does: `evict-oldest` (end the sessions created first), `evict-least-recent` (end the sessions used least recently; the LMS records use at most once a minute, a registry without use times falls back to creation) or `deny-new`.',
      ),
    scope: scope
      .default('account')
      .describe(
        "Which sessions compete for the limit: `account` (all of the account's) or `instance` (only those of the login's client instance, `X-Client-Instance`).",
      ),
    rules: z
      .array(accountRuleSchema)
      .max(MAX_RULES, `at most ${MAX_RULES} rules`)
      .default([])
      .describe(
        'JSON array of per-account rules, e.g. `[{"match":{"group":"xqueue"},"maxSessions":16,"scope":"instance"}]`. `match` names a `username` or a `group`, and may add a `path` (one segment of the login path, alone or with either): such a rule gives its logins their own pool, whose sessions compete only with each other. Most specific wins: username+path, group+path, path, username, group; fields left out keep the defaults. At most 200 rules.',
      ),
    dryRun: z
      .boolean()
      .default(false)
      .describe(
        'Decide and count evictions (`lms_dry_run_evictions_total`), delete nothing: for a safe rollout.',
      ),
  })
  .strict();

/**
 * The settings' schema, each field with its `.describe()` text: the source of the policy part
 * of the configuration reference (docs/configuration.md), by way of {@link POLICY_ENV}.
 *
 * @example
 * POLICY_SETTINGS_SCHEMA.shape.dryRun.description; // 'Decide and count evictions ...'
 */
export const POLICY_SETTINGS_SCHEMA = settingsSchema;

/** Plain input for {@link parseSettings}: every field optional, defaults as upstream. */
export type PolicySettingsInput = z.input<typeof settingsSchema>;

/** Issues a {@link PolicySettingsError}'s message lists; the rest are counted. */
const LISTED_ISSUES = 20;

/** Thrown when settings are invalid; the message names each setting and the rejected value. */
export class PolicySettingsError extends Error {
  override readonly name = 'PolicySettingsError';
  constructor(readonly issues: readonly string[]) {
    const listed = issues.slice(0, LISTED_ISSUES);
    if (issues.length > LISTED_ISSUES) listed.push(`and ${issues.length - LISTED_ISSUES} more`);
    super(`Invalid session policy settings:\n  - ${listed.join('\n  - ')}`);
  }
}

/** Characters of a rejected value an issue shows, and the nesting levels it opens. */
const SHOWN_CHARS = 200;
const SHOWN_LEVELS = 8;

/** `value` as JSON, `…` for what lies more than `levels` deep or past about SHOWN_CHARS. */
function preview(value: unknown, levels: number): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, SHOWN_CHARS + 1));
  if (value === null || typeof value !== 'object') return String(JSON.stringify(value));
  const array = Array.isArray(value);
  const [open, close] = array ? ['[', ']'] : ['{', '}'];
  if (levels === 0) return `${open}…${close}`;
  const parts: string[] = [];
  let length = 0;
  for (const [key, item] of array ? value.entries() : Object.entries(value)) {
    if (length > SHOWN_CHARS) {
      parts.push('…');
      break;
    }
    const shown = preview(item, levels - 1);
    parts.push(array ? shown : `${JSON.stringify(key)}:${shown}`);
    length += shown.length + 1;
  }
  return `${open}${parts.join(',')}${close}`;
}

/**
 * A rejected value for an issue's message: input may be megabytes, or nested deeper than
 * JSON.stringify can recurse (a RangeError), so only its start is shown.
 */
function shownValue(value: unknown): string {
  const text = preview(value, SHOWN_LEVELS);
  return text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
}

function describeIssues(error: z.ZodError, input: unknown, names: Record<string, string>) {
  return error.issues.map((issue) => {
    const path = issue.path.map(String);
    const top = path[0] ?? '';
    const label = names[top] ?? (top || '(settings)');
    const value = path.reduce<unknown>(
      (at, key) =>
        at && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined,
      input,
    );
    const shown = value === undefined ? '' : ` (got ${shownValue(value)})`;
    const where = path.length > 1 ? ` at ${path.slice(1).join('.')}` : '';
    return `${label}${where}: ${issue.message}${shown}`;
  });
}

/**
 * Validates plain settings and fills in the upstream defaults.
 *
 * @example
 * const settings = parseSettings({ exemptUsernames: ['xqueue_svc'] });
 * settings.preventConcurrentLogins; // true
 */
export function parseSettings(input: PolicySettingsInput = {}): PolicySettings {
  const result = settingsSchema.safeParse(input);
  if (!result.success) throw new PolicySettingsError(describeIssues(result.error, input, {}));
  return result.data;
}

/** Environment variable names read by {@link settingsFromEnv}, with what each sets. */
export const POLICY_ENV = {
  PREVENT_CONCURRENT_LOGINS: 'preventConcurrentLogins',
  SINGLE_LOGIN_EXEMPT_USERNAMES: 'exemptUsernames',
  SINGLE_LOGIN_EXEMPT_GROUPS: 'exemptGroups',
  SINGLE_LOGIN_MAX_SESSIONS: 'maxSessions',
  SINGLE_LOGIN_ON_LIMIT: 'onLimit',
  SINGLE_LOGIN_SCOPE: 'scope',
  SINGLE_LOGIN_RULES: 'rules',
  SINGLE_LOGIN_DRY_RUN: 'dryRun',
} as const;

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

function envBoolean(raw: string): unknown {
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return raw; // left as a string so that validation names the bad value
}

function envList(raw: string): string[] {
  return raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

function envNumber(raw: string): unknown {
  const trimmed = raw.trim();
  return /^-?\d+$/.test(trimmed) ? Number(trimmed) : raw;
}

function envJson(variable: string, raw: string): unknown {
  if (raw.trim() === '') return [];
  try {
    return JSON.parse(raw);
  } catch {
    throw new PolicySettingsError([`${variable}: must be a JSON array of rules (got ${raw})`]);
  }
}

/**
 * Reads settings from environment-style strings (comma-separated lists, `true`/`false`,
 * a JSON array for `SINGLE_LOGIN_RULES`). Unset or empty variables take the defaults.
 *
 * @example
 * const settings = settingsFromEnv({ SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue, graders' });
 * settings.exemptGroups; // ['xqueue', 'graders']
 */
export function settingsFromEnv(env: Readonly<Record<string, string | undefined>>): PolicySettings {
  const input: Record<string, unknown> = {};
  const names: Record<string, string> = {};
  for (const [variable, key] of Object.entries(POLICY_ENV)) {
    const raw = env[variable];
    names[key] = variable;
    if (raw === undefined || raw.trim() === '') continue;
    switch (key) {
      case 'preventConcurrentLogins':
      case 'dryRun':
        input[key] = envBoolean(raw);
        break;
      case 'exemptUsernames':
      case 'exemptGroups':
        input[key] = envList(raw);
        break;
      case 'maxSessions':
        input[key] = envNumber(raw);
        break;
      case 'rules':
        input[key] = envJson(variable, raw);
        break;
      default:
        input[key] = raw.trim();
    }
  }
  const result = settingsSchema.safeParse(input);
  if (!result.success) throw new PolicySettingsError(describeIssues(result.error, input, names));
  return result.data;
}
