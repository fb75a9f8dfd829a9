import type { OnLimit, PolicySettings, SessionScope } from './settings.ts';

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
}

/** The login being decided. */
export interface LoginContext {
  sessionId: string;
  /** A stable id the client gives itself; only used by `instance` scope. */
  instanceId?: string | null | undefined;
  /** Milliseconds since the epoch. */
  now: number;
}

/** Where the limit that applies to a user came from. */
export type RuleSource =
  | { kind: 'default' }
  | { kind: 'username'; username: string }
  | { kind: 'group'; group: string };

/** The limit that applies to one user after per-account rules are resolved. */
export interface EffectiveRule {
  maxSessions: number;
  onLimit: OnLimit;
  scope: SessionScope;
  source: RuleSource;
}

/** Why an exempt user is exempt. */
export type ExemptionMatch = { by: 'username'; username: string } | { by: 'group'; group: string };

/**
 * The decision for one login.
 * - `unrestricted`: the flag is off; nothing is evicted and nothing is recorded.
 * - `exempt`: matched an exemption; nothing is evicted and the slot is not recorded (upstream).
 * - `allow`: the session is recorded and `evict` lists the sessions that must end
 *   (in `dryRun` they are reported and kept).
 * - `deny`: the account is at its limit and its rule says `deny-new`.
 */
export type LoginDecision =
  | { outcome: 'unrestricted' }
  | { outcome: 'exempt'; match: ExemptionMatch }
  | { outcome: 'allow'; rule: EffectiveRule; evict: readonly LiveSession[]; dryRun: boolean }
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

/**
 * Resolves the limit for a user: the first rule for their exact username, else the first rule
 * for a group they belong to, else the defaults. Fields a rule leaves out keep the defaults.
 */
export function resolveRule(settings: PolicySettings, user: PolicyUser): EffectiveRule {
  const byUsername = settings.rules.find(
    (rule) => 'username' in rule.match && rule.match.username === user.username,
  );
  const rule =
    byUsername ??
    settings.rules.find(
      (candidate) => 'group' in candidate.match && user.groups.includes(candidate.match.group),
    );
  const source: RuleSource =
    rule === undefined
      ? { kind: 'default' }
      : 'username' in rule.match
        ? { kind: 'username', username: rule.match.username }
        : { kind: 'group', group: rule.match.group };
  return {
    maxSessions: rule?.maxSessions ?? settings.maxSessions,
    onLimit: rule?.onLimit ?? settings.onLimit,
    scope: rule?.scope ?? settings.scope,
    source,
  };
}

function oldestFirst(a: LiveSession, b: LiveSession): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function leastRecentFirst(a: LiveSession, b: LiveSession): number {
  return (a.lastSeenAt ?? a.createdAt) - (b.lastSeenAt ?? b.createdAt) || oldestFirst(a, b);
}

/**
 * Decides one login: which of the user's live sessions must end, or that the login is denied,
 * or that the user is exempt. Pure: the caller supplies the live sessions and applies the result
 * (a {@link SessionRegistry} does both atomically).
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
  if (!settings.preventConcurrentLogins) return { outcome: 'unrestricted' };
  const match = findExemption(settings, user);
  if (match) return { outcome: 'exempt', match };

  const rule = resolveRule(settings, user);
  const instanceId = context.instanceId ?? null;
  const competing = live.filter(
    (session) =>
      session.id !== context.sessionId &&
      (rule.scope === 'account' || session.instanceId === instanceId),
  );
  const excess = competing.length - rule.maxSessions + 1;
  if (excess <= 0) return { outcome: 'allow', rule, evict: [], dryRun: settings.dryRun };
  if (rule.onLimit === 'deny-new') {
    return { outcome: 'deny', rule, liveSessions: competing.length };
  }
  const order = rule.onLimit === 'evict-least-recent' ? leastRecentFirst : oldestFirst;
  const evict = [...competing].sort(order).slice(0, excess);
  return { outcome: 'allow', rule, evict, dryRun: settings.dryRun };
}

/** A one-line setting that would exempt an account, for alerts and dashboards. */
export function suggestExemption(username: string): string {
  return `SINGLE_LOGIN_EXEMPT_USERNAMES=${username}`;
}
