import { type AdmitResult, loginAdmission, type PolicySettings } from '@storm-lab/session-policy';
import { eq, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { whenNotBusy } from '../db/busy-retry.ts';
import type { Db } from '../db/client.ts';
import { groups, userGroups, users } from '../db/schema.ts';
import type { LmsMetrics } from '../ops/metrics.ts';
import type { StormWatch } from '../ops/storm-watch.ts';
import { sessionAuthHash } from '../sessions/auth-hash.ts';
import type { SessionStore } from '../sessions/store.ts';
import type { LmsUser } from '../users.ts';
import { burnPasswordCheck, hashPassword, iterationsOf, verifyPassword } from './password.ts';
import type { LoginThrottle } from './throttle.ts';
import { newSessionToken, shortId } from './tokens.ts';

/** Where a login came from, as the `path` label of `lms_logins_total`. */
export type LoginPath = 'xqueue' | 'web';

export interface LoginAttempt {
  username: string;
  password: string;
  path: LoginPath;
  /** The login request's URL path (`/xqueue/login/`, `/login`): rules with a `path` match it. */
  requestPath: string;
  /** From `X-Client-Instance`: names the client for instance-scoped limits. */
  instanceId: string | null;
  /** The session this request already carries; a new login replaces it, as Django's does. */
  replacing: string | null;
  /** The client's address, for the login throttle (see clientAddress); the session records it. */
  address: string;
  /** The `User-Agent` header, if any; the session records its first 256 characters. */
  userAgent: string | null;
}

/** A login's outcome; wrong credentials and a denied login are expected "no"s. */
export type LoginOutcome =
  | {
      ok: true;
      token: string;
      sessionId: string;
      user: LmsUser;
      admitted: Extract<AdmitResult, { admitted: true }>;
    }
  | { ok: false; reason: 'bad-credentials' }
  | { ok: false; reason: 'denied'; liveSessions: number }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

/** How passwords are checked; tests wrap the real functions to count hash computations. */
export interface PasswordChecker {
  verify(password: string, encoded: string): Promise<boolean>;
  /** Spends one check's time for an unknown username and says no. */
  burn(password: string, iterations: number): Promise<false>;
  /** Hashes a password at `iterations` (a login re-hashes one stored at another count). */
  hash(password: string, iterations: number): Promise<string>;
}

/** Longer user agents are cut: the session lists show who logged in, not a client's essay. */
export const MAX_USER_AGENT_LENGTH = 256;

const PASSWORDS: PasswordChecker = {
  verify: verifyPassword,
  burn: burnPasswordCheck,
  hash: hashPassword,
};

export interface LoginServiceDeps {
  db: Db;
  store: SessionStore;
  /** Read on every login: staff may change the policy at run time (see PolicyStore). */
  policy: () => PolicySettings;
  detector: StormWatch;
  metrics: LmsMetrics;
  logger: Logger;
  now: () => number;
  passwordHashIterations: number;
  /** Failed-login throttle; none when absent. */
  throttle?: LoginThrottle;
  passwords?: PasswordChecker;
}

/** What a login reads of its user; see {@link userRows}. */
interface UserRows {
  /** users.ts's `findCredentials`: the user's row with its password hash; null when unknown. */
  credentials(username: string): typeof users.$inferSelect | null;
  /** users.ts's `groupsOf`: the user's group names, sorted. */
  groups(userId: string): string[];
}

/**
 * The reads of every login (users.ts's `findCredentials` and `groupsOf`, the same queries) as
 * statements prepared once per login service: building and compiling them again cost more
 * than running them, on every login of a storm.
 */
function userRows(db: Db): UserRows {
  const credentials = db
    .select()
    .from(users)
    .where(eq(users.username, sql.placeholder('username')))
    .prepare();
  const groupNames = db
    .select({ name: groups.name })
    .from(userGroups)
    .innerJoin(groups, eq(userGroups.groupId, groups.id))
    .where(eq(userGroups.userId, sql.placeholder('userId')))
    .prepare();
  return {
    credentials: (username) => credentials.get({ username }) ?? null,
    groups: (userId) =>
      groupNames
        .all({ userId })
        .map((row) => row.name)
        .sort(),
  };
}

/**
 * Checks a password as Django's `check_password` does: an unknown user costs one hash at the
 * configured count; a wrong password for a hash with fewer iterations costs the difference too
 * (`harden_runtime`), so neither answer is faster; and a right password stored at another count
 * is hashed again at the configured one (`must_update`), so timing cannot tell users apart for
 * long.
 */
async function checkCredentials(
  deps: LoginServiceDeps,
  rows: UserRows,
  username: string,
  password: string,
) {
  const passwords = deps.passwords ?? PASSWORDS;
  const configured = deps.passwordHashIterations;
  const row = rows.credentials(username);
  if (!row) return passwords.burn(password, configured);
  const valid = await passwords.verify(password, row.password);
  const stored = iterationsOf(row.password);
  if (!valid) {
    if (stored !== null && stored < configured) await passwords.burn(password, configured - stored);
    return false;
  }
  let checked = row;
  if (stored !== configured) {
    const rehashed = await passwords.hash(password, configured);
    await whenNotBusy(() =>
      deps.db.update(users).set({ password: rehashed }).where(eq(users.id, row.id)).run(),
    );
    // The new session carries the hash written here (Django's login() after check_password's
    // setter): the account's other sessions end once, as in Django.
    checked = { ...row, password: rehashed };
  }
  return checked.isActive ? checked : false;
}

/**
 * Checks credentials unless the throttle holds this account or address. The check is reserved
 * before the hash starts, so parallel attempts cannot get past the throttle's budget.
 */
async function throttledCheck(deps: LoginServiceDeps, rows: UserRows, attempt: LoginAttempt) {
  const key = { account: attempt.username, address: attempt.address };
  const start = deps.throttle ? await deps.throttle.begin(key) : null;
  if (start && !start.allowed) {
    deps.logger.info(
      { event: 'login-throttled', by: start.by, retryAfterSeconds: start.retryAfterSeconds },
      'login throttled: too many failed attempts',
    );
    return { throttled: true, retryAfterSeconds: start.retryAfterSeconds } as const;
  }
  let row: Awaited<ReturnType<typeof checkCredentials>> = false;
  try {
    deps.metrics.passwordChecks.inc({ path: attempt.path });
    row = await checkCredentials(deps, rows, attempt.username, attempt.password);
  } finally {
    await start?.finish(Boolean(row));
  }
  return { throttled: false, row } as const;
}

async function report(
  deps: LoginServiceDeps,
  user: LmsUser,
  label: string,
  sessionId: string,
  result: AdmitResult,
  at: number,
) {
  if (!result.admitted) return;
  const account = user.username;
  for (const evicted of result.evicted) {
    // One line per eviction: which account, which session ended, which login ended it.
    deps.logger.info(
      {
        event: result.dryRun ? 'eviction-dry-run' : 'eviction',
        account,
        evicted: shortId(evicted.id),
        session: shortId(sessionId),
      },
      result.dryRun ? 'session would be evicted (dry run)' : 'session evicted',
    );
  }
  if (result.evicted.length > 0) {
    // A dry run counts what it would have ended apart from what was ended.
    const counter = result.dryRun ? deps.metrics.dryRunEvictions : deps.metrics.sessionsEvicted;
    counter.inc({ account: label }, result.evicted.length);
    if (!result.dryRun) deps.metrics.live.count('evictions', result.evicted.length);
  }
  for (const alert of await deps.detector.record(account, at, result.evicted.length)) {
    deps.metrics.stormAlerts.inc({ account: deps.metrics.accounts.alerted(account) });
    deps.logger.warn(
      { event: 'storm-alert', ...alert },
      `login storm on account ${account}: try ${alert.suggestion}`,
    );
  }
}

/**
 * Creates the login hook: checks credentials off the event loop, then admits the new session
 * through session-policy (evicting, exempting or denying), records metrics and logs.
 *
 * @example
 * const login = createLoginService(deps);
 * const outcome = await login({
 *   username, password, path: 'xqueue', instanceId: null, replacing: null, address: '127.0.0.1',
 *   userAgent: 'python-requests/2.32.3',
 * });
 */
export function createLoginService(deps: LoginServiceDeps) {
  const rows = userRows(deps.db);
  return async function login(attempt: LoginAttempt): Promise<LoginOutcome> {
    const check = await throttledCheck(deps, rows, attempt);
    if (check.throttled || !check.row) deps.metrics.loginFailures.inc({ path: attempt.path });
    if (check.throttled) {
      return { ok: false, reason: 'throttled', retryAfterSeconds: check.retryAfterSeconds };
    }
    const { row } = check;
    if (!row) return { ok: false, reason: 'bad-credentials' };
    const user: LmsUser = {
      id: row.id,
      username: row.username,
      isStaff: row.isStaff,
      isActive: row.isActive,
      groups: rows.groups(row.id),
    };
    const { token, id } = newSessionToken();
    const now = deps.now();
    const instanceId = attempt.instanceId;
    const policy = deps.policy();
    // One transaction: admission, the replaced session's end and last_login.
    const endAdmission = deps.metrics.admissionLatency.startTimer();
    const result = await deps.store.admit({
      userId: user.id,
      session: { id, instanceId, createdAt: now },
      replacing: attempt.replacing,
      lastLoginAt: now,
      // Of the hash the password was checked against: a change meanwhile ends this session.
      authHash: sessionAuthHash(row.password),
      client: {
        userAgent: attempt.userAgent?.slice(0, MAX_USER_AGENT_LENGTH) || null,
        address: attempt.address,
      },
      // The session being replaced does not count against the limit; it ends only once the new
      // one is admitted, so a denied login leaves the client logged in as before.
      ...loginAdmission(policy, user, {
        sessionId: id,
        instanceId,
        now,
        path: attempt.requestPath,
        replacing: attempt.replacing,
      }),
    });
    endAdmission();
    if (!result.admitted) {
      deps.metrics.loginFailures.inc({ path: attempt.path });
      deps.logger.info(
        { event: 'login-denied', account: user.username },
        'login denied: session limit reached',
      );
      return { ok: false, reason: 'denied', liveSessions: result.decision.liveSessions };
    }
    // The metrics' account label: the name for a service account, "(people)" for the others.
    const label = deps.metrics.accounts.of(user);
    deps.metrics.logins.inc({ account: label, path: attempt.path });
    deps.metrics.live.count('logins');
    await report(deps, user, label, id, result, now);
    deps.store.prune();
    return { ok: true, token, sessionId: id, user, admitted: result };
  };
}

/** The login function {@link createLoginService} returns. */
export type LoginService = ReturnType<typeof createLoginService>;
