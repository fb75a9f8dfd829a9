import { isClusterWorker } from '../cluster/worker.ts';
import { openDatabase } from '../db/client.ts';
import type { LmsConfig } from '../env.ts';
import { runUntilSignal } from '../main.ts';
import { LAB_PASSWORDS, labPasswordAccounts } from '../seed.ts';
import { bindCommand, isLoopback, type LmsCliIo, say } from './command.ts';

/** The environment the LMS reads, for the help of `pnpm lms` and of `serve`. */
export const ENV_HELP = `Environment: PORT (8000), HOST (127.0.0.1), DATABASE_PATH (./data/lms.db),
  PASSWORD_HASH_ITERATIONS (1000000), LOG_LEVEL (info), XQUEUE_LOCK_SECONDS (300),
  XQUEUE_MAX_FAILURES (0), SESSION_TTL_SECONDS (1209600), STORM_ALERT_EVICTIONS_PER_MINUTE (30),
  MAX_BODY_BYTES (1048576), LOGIN_THROTTLE_FAILURES (10), LOGIN_THROTTLE_WINDOW_SECONDS (300),
  TRUST_PROXY (false), CSRF_TRUSTED_ORIGINS, SQLITE_SYNCHRONOUS (full), METRICS_TOKEN,
  SESSION_STORE (sqlite), SESSION_REDIS_URL, REDIS_URL (redis://127.0.0.1:6379),
  SESSION_REDIS_PREFIX (lms:), LMS_WORKERS (1),
  PREVENT_CONCURRENT_LOGINS (true), SINGLE_LOGIN_EXEMPT_USERNAMES, SINGLE_LOGIN_EXEMPT_GROUPS,
  SINGLE_LOGIN_MAX_SESSIONS, SINGLE_LOGIN_ON_LIMIT, SINGLE_LOGIN_SCOPE, SINGLE_LOGIN_RULES,
  SINGLE_LOGIN_DRY_RUN, SINGLE_LOGIN_ENFORCEMENT (atomic).
Each variable, its default and what it means: docs/configuration.md.`;

/** Usernames a warning names at most; the rest are counted. */
const NAMED_ACCOUNTS = 10;

/**
 * Before `serve` listens off loopback: a loud warning when an account still has a lab default
 * password, which anyone who can reach the server may then use (the seed uses them only while
 * HOST is loopback; a database seeded that way may be served elsewhere later).
 */
async function warnLabPasswords(config: LmsConfig, io: LmsCliIo): Promise<void> {
  if (isLoopback(config.host)) return;
  const database = openDatabase({ path: config.databasePath });
  let found: Awaited<ReturnType<typeof labPasswordAccounts>>;
  try {
    found = await labPasswordAccounts(database.db);
  } finally {
    database.close();
  }
  const { usernames, unchecked } = found;
  if (usernames.length > 0) {
    const named = usernames.slice(0, NAMED_ACCOUNTS).join(', ');
    const more =
      usernames.length > NAMED_ACCOUNTS ? ` and ${usernames.length - NAMED_ACCOUNTS} more` : '';
    say(
      io.err,
      `WARNING: HOST=${config.host} is not a loopback address, and ${usernames.length} account${usernames.length === 1 ? '' : 's'} still ` +
        `${usernames.length === 1 ? 'has' : 'have'} a lab default password (the seed's published ${LAB_PASSWORDS.join(', ')}): ${named}${more}. ` +
        'Anyone who can reach this server can log in as them. Set new passwords: pnpm lms seed ' +
        '--reset-passwords --random-passwords, or pnpm lms user add NAME --password P.',
    );
  }
  if (unchecked > 0) {
    say(
      io.err,
      `WARNING: HOST=${config.host} is not a loopback address, and ${unchecked} more accounts have passwords from before ` +
        'the LMS recorded whether they are lab defaults; the next starts check them, 20 at a time.',
    );
  }
}

/** `pnpm lms serve`: the LMS until SIGTERM or SIGINT. */
export const serveCommand = (io: LmsCliIo) =>
  bindCommand(io, {
    summary: 'migrate the database and serve HTTP until SIGTERM/SIGINT',
    help: `Usage: pnpm lms serve

Migrates the database, then listens on HOST:PORT. When HOST is not a loopback address it first
warns (WARNING: on stderr) about every active account that still has a lab default password.
${ENV_HELP}`,
    flags: {},
    async run(_, config) {
      // Once per LMS: the workers of LMS_WORKERS run this command again.
      if (!isClusterWorker()) await warnLabPasswords(config, io);
      await runUntilSignal(config);
    },
  });

/** `pnpm lms migrate`. */
export const migrateCommand = (io: LmsCliIo) =>
  bindCommand(io, {
    summary: 'apply the committed migrations',
    help: 'Usage: pnpm lms migrate\n\nApplies the committed migrations to DATABASE_PATH.',
    flags: {},
    run(_, config) {
      openDatabase({ path: config.databasePath }).close();
      say(io.out, `Migrated ${config.databasePath}`);
    },
  });
