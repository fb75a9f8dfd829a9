import { loginAdmission, type PolicyUser } from '../decide.ts';
import type { AdmitResult, SessionRegistry } from '../registry.ts';
import { type PolicySettingsInput, parseSettings } from '../settings.ts';

/** A user for tests; override any field. */
export function createTestUser(overrides: Partial<PolicyUser> = {}): PolicyUser {
  return { username: 'alice', groups: [], ...overrides };
}

let sequence = 0;

/** A fresh session id that sorts after every earlier one. */
export function nextSessionId(prefix = 's'): string {
  sequence += 1;
  return `${prefix}-${String(sequence).padStart(8, '0')}`;
}

export interface LoginOptions {
  userId?: string;
  user?: PolicyUser;
  settings?: PolicySettingsInput;
  sessionId?: string;
  instanceId?: string | null;
  /** The login request's path, for rules with a `path` (e.g. `/xqueue/login/`). */
  path?: string;
  /** Milliseconds since the epoch; defaults to an increasing counter so ages are distinct. */
  at?: number;
  /** Stored with the session (`AdmitRequest.session.attributes`). */
  attributes?: Readonly<Record<string, string>>;
}

let clock = 1_700_000_000_000;

/**
 * Logs a user in through a registry with the policy applied, as a server's login hook would.
 *
 * @example
 * const result = await loginThrough(registry, { settings: { exemptUsernames: ['svc'] } });
 */
export function loginThrough(
  registry: SessionRegistry,
  options: LoginOptions = {},
): Promise<AdmitResult> {
  const user = options.user ?? createTestUser();
  const userId = options.userId ?? user.username;
  const settings = parseSettings(options.settings ?? {});
  const id = options.sessionId ?? nextSessionId();
  clock += 1;
  const now = options.at ?? clock;
  const instanceId = options.instanceId ?? null;
  const { path, attributes } = options;
  return registry.admit({
    userId,
    session: { id, instanceId, createdAt: now, ...(attributes && { attributes }) },
    // Both forms of the decision, as a login hook gives them (see AdmitRequest.limit).
    ...loginAdmission(settings, user, { sessionId: id, instanceId, now, path }),
  });
}

/**
 * Fires `count` logins of one user at once and returns the user's live sessions afterwards.
 * With a single-session policy an atomic registry leaves exactly one.
 */
export async function parallelLogins(
  registry: SessionRegistry,
  count: number,
  options: Omit<LoginOptions, 'sessionId' | 'at'> = {},
) {
  const results = await Promise.all(
    Array.from({ length: count }, () => loginThrough(registry, options)),
  );
  const userId = options.userId ?? options.user?.username ?? createTestUser().username;
  return { results, live: await registry.list(userId) };
}
