import type {
  AccountMatch,
  AccountRule,
  OnLimit,
  PolicySettings,
  SessionScope,
} from './settings.ts';

/** The pool of sessions admitted under a rule without a path, and of untracked sessions. */
export const DEFAULT_POOL = 'default';

/** The user who is logging in, as the policy sees them. */
export interface PolicyUser {
  username: string;
  groups: readonly string[];
}

/** A live session that counts toward the user's limit (a recorded "slot"). */
export interface LiveSession {
  id: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  instanceId: string | null;
  /**
   * When the session was last used, in milliseconds since the epoch, for `evict-least-recent`;
   * a registry that does not record use leaves it out and `createdAt` stands in.
   */
  lastSeenAt?: number | undefined;
  /**
   * The pool the session was admitted in ({@link EffectiveRule.pool}); only sessions of the
   * login's pool compete. Absent means {@link DEFAULT_POOL}, so a store that predates pools
   * keeps all its sessions in one pool.
   */
  pool?: string | undefined;
}

/** The login being decided. */
export interface LoginContext {
  sessionId: string;
  /** A stable id the client gives itself; only used by `instance` scope. */
  instanceId?: string | null | undefined;
  /**
   * The login request's URL path (`/xqueue/login/`), for rules with a `path`; a query or
   * fragment after it is ignored. Without it, no path rule applies.
   */
  path?: string | undefined;
  /** Milliseconds since the epoch. */
  now: number;
  /**
   * The session this login replaces (the client's current one, ended once the new one is
   * admitted): like the new session itself, it never competes for the limit.
   */
  replacing?: string | null | undefined;
}

/** Where the limit that applies to a user came from. */
export type RuleSource =
  | { kind: 'default' }
  | { kind: 'username'; username: string; path?: string }
  | { kind: 'group'; group: string; path?: string }
  | { kind: 'path'; path: string };

/** The limit that applies to one login after per-account and per-path rules are resolved. */
export interface EffectiveRule {
  maxSessions: number;
  onLimit: OnLimit;
  scope: SessionScope;
  source: RuleSource;
  /**
   * The sessions that compete for `maxSessions`: {@link DEFAULT_POOL} under a rule without a
   * path (or no rule), `path:<text>` under a rule with `path: <text>`. A login never evicts,
   * nor is denied because of, a session of another pool.
   */
  pool: string;
}

/** Why an exempt user is exempt. */
export type ExemptionMatch = { by: 'username'; username: string } | { by: 'group'; group: string };

/**
 * The decision for one login.
 * - `unrestricted`: the flag is off; nothing is evicted and nothing is recorded.
 * - `exempt`: matched an exemption; nothing is evicted and the slot is not recorded (upstream).
 * - `allow`: the session is recorded and `evict` lists the sessions that must end
 *   (in `dryRun` they are reported and kept).
 * - `deny`: the login's pool is at its limit and its rule says `deny-new`.
 *
 * `liveSessions` (of `allow` and `deny`) counts the sessions that competed for the rule's
 * limit before this login: its pool's (under `instance` scope, its instance's), the evicted
 * ones included, the login's own and the one it replaces not. After an allowed login its pool
 * holds `liveSessions - ended + 1`, where `ended` is the evictions carried out.
 */
export type LoginDecision =
  | { outcome: 'unrestricted' }
  | { outcome: 'exempt'; match: ExemptionMatch }
  | {
      outcome: 'allow';
      rule: EffectiveRule;
      evict: readonly LiveSession[];
      dryRun: boolean;
      liveSessions: number;
    }
  | { outcome: 'deny'; rule: EffectiveRule; liveSessions: number };

/**
 * Says whether a user is exempt from single-login enforcement, and by which setting.
 * Username match is exact and case-sensitive; membership in any exempt group exempts.
 *
 * @example
 * findExemption(settings, { username: 'xqueue_svc', groups: ['xqueue'] });
 * // { by: 'username', username: 'xqueue_svc' } or null
 */
export function findExemption(settings: PolicySettings, user: PolicyUser): ExemptionMatch | null {
  if (settings.exemptUsernames.includes(user.username)) {
    return { by: 'username', username: user.username };
  }
  const group = settings.exemptGroups.find((candidate) => user.groups.includes(candidate));
  return group === undefined ? null : { by: 'group', group };
}

/** The segments of a login path, without its query or fragment. */
function segmentsOf(path: string | undefined): ReadonlySet<string> {
  if (path === undefined) return new Set();
  return new Set(path.split(/[?#]/, 1)[0]?.split('/'));
}

function appliesTo(match: AccountMatch, user: PolicyUser, segments: ReadonlySet<string>): boolean {
  if (match.path !== undefined && !segments.has(match.path)) return false;
  if ('username' in match) return match.username === user.username;
  if ('group' in match) return user.groups.includes(match.group);
  return true;
}

/** Precedence, most specific first: a path rule beats an account rule, a username a group. */
function rank(match: AccountMatch): number {
  const account = 'username' in match ? 0 : 'group' in match ? 1 : 2;
  return match.path === undefined ? 3 + account : account;
}

function sourceOf(match: AccountMatch): RuleSource {
  const where = match.path === undefined ? {} : { path: match.path };
  if ('username' in match) return { kind: 'username', username: match.username, ...where };
  if ('group' in match) return { kind: 'group', group: match.group, ...where };
  return { kind: 'path', path: match.path };
}

/**
 * Resolves the limit for a login. A rule applies when its username is the user's (exact) or
 * its group is one of theirs, and when its `path`, if any, is a whole segment of the login
 * path. Of the rules that apply, the most specific wins: username and path, group and path,
 * path only, username, group; between rules of one kind, the first listed. Without one, the
 * defaults apply. Fields a rule leaves out keep the defaults.
 *
 * @example
 * resolveRule(settings, { username: 'xqueue_svc', groups: [] }, '/xqueue/login/');
 * // { maxSessions: 1, ..., source: { kind: 'path', path: 'xqueue' }, pool: 'path:xqueue' }
 */
export function resolveRule(
  settings: PolicySettings,
  user: PolicyUser,
  path?: string | undefined,
): EffectiveRule {
  const segments = segmentsOf(path);
  let rule: AccountRule | undefined;
  for (const candidate of settings.rules) {
    if (!appliesTo(candidate.match, user, segments)) continue;
    if (rule === undefined || rank(candidate.match) < rank(rule.match)) rule = candidate;
  }
  const rulePath = rule?.match.path;
  return {
    maxSessions: rule?.maxSessions ?? settings.maxSessions,
    onLimit: rule?.onLimit ?? settings.onLimit,
    scope: rule?.scope ?? settings.scope,
    source: rule === undefined ? { kind: 'default' } : sourceOf(rule.match),
    pool: rulePath === undefined ? DEFAULT_POOL : `path:${rulePath}`,
  };
}

function oldestFirst(a: LiveSession, b: LiveSession): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function leastRecentFirst(a: LiveSession, b: LiveSession): number {
  return (a.lastSeenAt ?? a.createdAt) - (b.lastSeenAt ?? b.createdAt) || oldestFirst(a, b);
}

/**
 * Everything a login's decision depends on except the user's live sessions: the flag and the
 * exemptions settle some logins outright; the others get a limit to apply to the sessions.
 * Plain data, so a store can apply it inside its own atomic step (the Redis registry does, in
 * one script). `ignoring` lists the sessions that never compete: the login's own and the one it
 * replaces.
 */
export type LoginLimit =
  | { outcome: 'unrestricted' }
  | { outcome: 'exempt'; match: ExemptionMatch }
  | {
      outcome: 'limit';
      rule: EffectiveRule;
      instanceId: string | null;
      ignoring: readonly string[];
      dryRun: boolean;
    };

/**
 * The part of {@link decideLogin} that needs no live sessions.
 *
 * @example
 * resolveLogin(settings, { username: 'alice', groups: [] }, { sessionId: 'new', now });
 * // { outcome: 'limit', rule: { maxSessions: 1, ... }, instanceId: null, ignoring: ['new'], ... }
 */
export function resolveLogin(
  settings: PolicySettings,
  user: PolicyUser,
  context: LoginContext,
): LoginLimit {
  if (!settings.preventConcurrentLogins) return { outcome: 'unrestricted' };
  const match = findExemption(settings, user);
  if (match) return { outcome: 'exempt', match };
  const ignoring = [context.sessionId];
  if (context.replacing != null) ignoring.push(context.replacing);
  return {
    outcome: 'limit',
    rule: resolveRule(settings, user, context.path),
    instanceId: context.instanceId ?? null,
    ignoring,
    dryRun: settings.dryRun,
  };
}

/**
 * Applies a resolved login to the user's live sessions: only the sessions of the rule's pool
 * compete (and, under `instance` scope, only those of the login's instance within it); beyond
 * the limit, `deny-new` refuses the login and the evicting rules end the oldest or least
 * recently used competitors.
 *
 * @example
 * applyLimit(resolveLogin(settings, user, context), live); // { outcome: 'allow', evict: [...] }
 */
export function applyLimit(limit: LoginLimit, live: readonly LiveSession[]): LoginDecision {
  if (limit.outcome !== 'limit') return limit;
  const { rule, instanceId, ignoring, dryRun } = limit;
  const competing = live.filter(
    (session) =>
      !ignoring.includes(session.id) &&
      (session.pool ?? DEFAULT_POOL) === rule.pool &&
      (rule.scope === 'account' || session.instanceId === instanceId),
  );
  const liveSessions = competing.length;
  const excess = liveSessions - rule.maxSessions + 1;
  if (excess <= 0) return { outcome: 'allow', rule, evict: [], dryRun, liveSessions };
  if (rule.onLimit === 'deny-new') return { outcome: 'deny', rule, liveSessions };
  const order = rule.onLimit === 'evict-least-recent' ? leastRecentFirst : oldestFirst;
  const evict = [...competing].sort(order).slice(0, excess);
  return { outcome: 'allow', rule, evict, dryRun, liveSessions };
}

/**
 * Decides one login: which of the user's live sessions must end, or that the login is denied,
 * or that the user is exempt ({@link resolveLogin}, then {@link applyLimit}). Pure: the caller
 * supplies the live sessions and applies the result (a {@link SessionRegistry} does both
 * atomically).
 *
 * @example
 * const decision = decideLogin(settings, { username: 'alice', groups: [] },
 *   { sessionId: 'new', now: Date.now() }, [{ id: 'old', createdAt: 0, instanceId: null }]);
 * // { outcome: 'allow', evict: [{ id: 'old', ... }], ... }
 */
export function decideLogin(
  settings: PolicySettings,
  user: PolicyUser,
  context: LoginContext,
  live: readonly LiveSession[],
): LoginDecision {
  return applyLimit(resolveLogin(settings, user, context), live);
}

/**
 * What a login hook gives a registry's `admit`: the decision as a function of the live
 * sessions, and the same decision as data ({@link LoginLimit}) for a registry that decides
 * inside its store.
 *
 * @example
 * await registry.admit({ userId, session, ...loginAdmission(settings, user, context) });
 */
export function loginAdmission(
  settings: PolicySettings,
  user: PolicyUser,
  context: LoginContext,
): { limit: LoginLimit; decide: (live: readonly LiveSession[]) => LoginDecision } {
  const limit = resolveLogin(settings, user, context);
  return { limit, decide: (live) => applyLimit(limit, live) };
}

/** A one-line setting that would exempt an account, for alerts and dashboards. */
export function suggestExemption(username: string): string {
  return `SINGLE_LOGIN_EXEMPT_USERNAMES=${username}`;
}
