import {
  type EffectiveRule,
  type ExemptionMatch,
  findExemption,
  type PolicySettings,
  resolveRule,
  suggestExemption,
} from '@storm-lab/session-policy';
import { asc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { groups, userGroups, users } from '../db/schema.ts';
import type { Services } from '../http/context.ts';
import type { LiveSeries } from '../ops/live-stats.ts';
import type { PolicySource } from '../policy/policy-store.ts';
import { XQUEUE_GROUP } from '../users.ts';

/** One row of the accounts table. */
export interface AccountView {
  account: string;
  liveSessions: number;
  loginsPerMinute: number;
  evictionsPerMinute: number;
  storming: boolean;
  /** Why the account is exempt now, or null. */
  exemption: ExemptionMatch | null;
  /** The limit that applies when it is not exempt. */
  rule: EffectiveRule;
}

/** An account storming now, with the change that would end it. */
export interface StormAlertView {
  account: string;
  loginsPerMinute: number;
  evictionsPerMinute: number;
  thresholdPerMinute: number;
  /** As the log line says it, e.g. `SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc`. */
  suggestion: string;
  /** Set once the account is exempt: the window still holds the storm's evictions. */
  exemption: ExemptionMatch | null;
  /** The settings change the dashboard's "exempt" button puts in the form. */
  fix: { exemptUsernames: string[] };
}

/** What `GET /api/admin/stats` answers. */
export interface DashboardStats {
  /** Milliseconds since the epoch, from the app's clock. */
  at: number;
  series: LiveSeries;
  accounts: AccountView[];
  alerts: StormAlertView[];
  policy: { settings: PolicySettings; source: PolicySource };
  /** Members of the `xqueue` group, by name: the sessions panel shows the first by default. */
  serviceAccounts: string[];
}

/** The table shows the busiest accounts; a campus of students would not fit a screen. */
export const MAX_ACCOUNT_ROWS = 50;
/** Service accounts the sessions panel offers; a deployment has one or a few. */
export const MAX_SERVICE_ACCOUNTS = 20;

/** Live sessions by username, from the session store's counts by user id. */
async function liveSessionCounts(services: Services): Promise<Map<string, number>> {
  const byUserId = await services.store.liveCounts();
  if (byUserId.size === 0) return new Map();
  const rows = services.db
    .select({ id: users.id, username: users.username })
    .from(users)
    .where(inArray(users.id, [...byUserId.keys()]))
    .all();
  return new Map(rows.map((row) => [row.username, byUserId.get(row.id) ?? 0]));
}

function groupsByUsername(db: Db, usernames: string[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  if (usernames.length === 0) return found;
  const rows = db
    .select({ username: users.username, group: groups.name })
    .from(userGroups)
    .innerJoin(users, eq(users.id, userGroups.userId))
    .innerJoin(groups, eq(groups.id, userGroups.groupId))
    .where(inArray(users.username, usernames))
    .all();
  for (const row of rows) found.set(row.username, [...(found.get(row.username) ?? []), row.group]);
  return found;
}

function serviceAccounts(db: Db): string[] {
  return db
    .select({ username: users.username })
    .from(userGroups)
    .innerJoin(users, eq(users.id, userGroups.userId))
    .innerJoin(groups, eq(groups.id, userGroups.groupId))
    .where(eq(groups.name, XQUEUE_GROUP))
    .orderBy(asc(users.username))
    .limit(MAX_SERVICE_ACCOUNTS)
    .all()
    .map((row) => row.username);
}

type AccountActivity = Omit<AccountView, 'exemption' | 'rule'>;

function busiestFirst(a: AccountActivity, b: AccountActivity): number {
  return (
    Number(b.storming) - Number(a.storming) ||
    b.evictionsPerMinute - a.evictionsPerMinute ||
    b.loginsPerMinute - a.loginsPerMinute ||
    b.liveSessions - a.liveSessions ||
    a.account.localeCompare(b.account)
  );
}

async function accountViews(
  services: Services,
  settings: PolicySettings,
  at: number,
): Promise<AccountView[]> {
  const rates = new Map((await services.detector.rates(at)).map((rate) => [rate.account, rate]));
  const live = await liveSessionCounts(services);
  const names = [...new Set([...rates.keys(), ...live.keys()])];
  const rows = names.map((account): AccountActivity => {
    const rate = rates.get(account);
    return {
      account,
      liveSessions: live.get(account) ?? 0,
      loginsPerMinute: rate?.loginsPerMinute ?? 0,
      evictionsPerMinute: rate?.evictionsPerMinute ?? 0,
      storming: rate?.storming ?? false,
    };
  });
  const shown = rows.sort(busiestFirst).slice(0, MAX_ACCOUNT_ROWS);
  const memberships = groupsByUsername(
    services.db,
    shown.map((row) => row.account),
  );
  return shown.map((row) => {
    const user = { username: row.account, groups: memberships.get(row.account) ?? [] };
    return { ...row, exemption: findExemption(settings, user), rule: resolveRule(settings, user) };
  });
}

/**
 * Builds the dashboard's data from the ring of per-second counters, the storm detector's rates,
 * the live sessions in the database, the current policy and the service accounts. Samples the queue lengths too, so
 * the queue chart moves while someone watches.
 *
 * @example
 * const stats = await dashboardStats(services, 300);
 * stats.alerts[0]?.suggestion; // 'SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc'
 */
export async function dashboardStats(services: Services, seconds: number): Promise<DashboardStats> {
  const at = services.now();
  const settings = services.policy.current();
  const { live } = services.metrics;
  live.sampleQueues(services.queue.lengths(at));
  const accounts = await accountViews(services, settings, at);
  const alerts = accounts
    .filter((row) => row.storming)
    .map((row) => ({
      account: row.account,
      loginsPerMinute: row.loginsPerMinute,
      evictionsPerMinute: row.evictionsPerMinute,
      thresholdPerMinute: services.stormAlertEvictionsPerMinute,
      suggestion: suggestExemption(row.account),
      exemption: row.exemption,
      fix: { exemptUsernames: [...new Set([...settings.exemptUsernames, row.account])] },
    }));
  return {
    at,
    series: await services.liveSeries(seconds, at),
    accounts,
    alerts,
    policy: { settings, source: services.policy.source() },
    serviceAccounts: serviceAccounts(services.db),
  };
}
