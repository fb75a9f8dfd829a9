import { type ParseArgsConfig, parseArgs } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

import { hashPassword } from './auth/password.ts';
import { openDatabase } from './db/client.ts';
import { EnvError, type LmsConfig, readEnv } from './env.ts';
import { runUntilSignal } from './main.ts';
import { SEED_DEFAULTS, seed } from './seed.ts';
import { ensureGroup, upsertUser } from './users.ts';

/** A mistake in the command line: printed with the command's help, exit code 2. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

const ENV_HELP = `Environment: PORT (8000), HOST (127.0.0.1), DATABASE_PATH (./data/lms.db),
  PASSWORD_HASH_ITERATIONS (1000000), LOG_LEVEL (info), XQUEUE_LOCK_SECONDS (300),
  SESSION_TTL_SECONDS (1209600), STORM_ALERT_EVICTIONS_PER_MINUTE (30), MAX_BODY_BYTES (1048576),
  PREVENT_CONCURRENT_LOGINS (true), SINGLE_LOGIN_EXEMPT_USERNAMES, SINGLE_LOGIN_EXEMPT_GROUPS,
  SINGLE_LOGIN_MAX_SESSIONS, SINGLE_LOGIN_ON_LIMIT, SINGLE_LOGIN_SCOPE, SINGLE_LOGIN_RULES,
  SINGLE_LOGIN_DRY_RUN.`;

const HELP: Record<string, string> = {
  main: `Usage: pnpm lms <command> [options]

Commands:
  serve                 migrate the database and serve HTTP until SIGTERM/SIGINT
  migrate               apply the committed migrations
  seed                  create queues, problems, the xqueue service account, staff and students
  user add NAME         create or update a user
  group add NAME        create a group

Run "pnpm lms <command> --help" for a command's options.
${ENV_HELP}`,
  serve: `Usage: pnpm lms serve\n\nMigrates the database, then listens on HOST:PORT.\n${ENV_HELP}`,
  migrate: 'Usage: pnpm lms migrate\n\nApplies the committed migrations to DATABASE_PATH.',
  seed: `Usage: pnpm lms seed [options]   (idempotent)

  --queues a,b              queues to create (default ${SEED_DEFAULTS.queues.join(',')}); 3 problems each: <queue>-p1..p3
  --students N              students student1..N (default ${SEED_DEFAULTS.students})
  --service-username NAME   xqueue service account, in group xqueue (default ${SEED_DEFAULTS.serviceUsername})
  --service-password P      (default ${SEED_DEFAULTS.servicePassword})
  --staff-username NAME     (default ${SEED_DEFAULTS.staffUsername})
  --staff-password P        (default ${SEED_DEFAULTS.staffPassword})
  --student-password P      (default ${SEED_DEFAULTS.studentPassword})`,
  user: `Usage: pnpm lms user add NAME --password P [--group G]... [--staff]

Creates the user, or updates the password and staff flag and adds the groups.`,
  group: 'Usage: pnpm lms group add NAME',
};

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

function parse(
  args: string[],
  options: ParseArgsOptionsConfig = {},
): { values: Values; positionals: string[] } {
  try {
    const all: ParseArgsOptionsConfig = { help: { type: 'boolean', short: 'h' }, ...options };
    return parseArgs({ args, options: all, allowPositionals: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function positiveInteger(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 10_000) {
    throw new UsageError(`${name} must be an integer 0..10000 (got ${raw})`);
  }
  return value;
}

async function seedCommand(args: string[], config: LmsConfig) {
  const { values } = parse(args, {
    queues: { type: 'string' },
    students: { type: 'string' },
    'service-username': { type: 'string' },
    'service-password': { type: 'string' },
    'staff-username': { type: 'string' },
    'staff-password': { type: 'string' },
    'student-password': { type: 'string' },
  });
  if (values.help) return console.log(HELP.seed);
  const queues =
    typeof values.queues === 'string'
      ? values.queues
          .split(',')
          .map((queue) => queue.trim())
          .filter(Boolean)
      : undefined;
  if (queues && queues.length === 0) throw new UsageError('--queues needs at least one name');
  const text = (key: string, fallback: string) =>
    typeof values[key] === 'string' ? (values[key] as string) : fallback;
  const database = openDatabase({ path: config.databasePath });
  try {
    const summary = await seed(
      database.db,
      {
        queues: queues ?? SEED_DEFAULTS.queues,
        students: positiveInteger(
          '--students',
          values.students as string | undefined,
          SEED_DEFAULTS.students,
        ),
        serviceUsername: text('service-username', SEED_DEFAULTS.serviceUsername),
        servicePassword: text('service-password', SEED_DEFAULTS.servicePassword),
        staffUsername: text('staff-username', SEED_DEFAULTS.staffUsername),
        staffPassword: text('staff-password', SEED_DEFAULTS.staffPassword),
        studentPassword: text('student-password', SEED_DEFAULTS.studentPassword),
      },
      { iterations: config.passwordHashIterations, now: Date.now() },
    );
    console.log(`Seeded ${config.databasePath}
  queues:          ${summary.queues.join(', ')}
  problems:        ${summary.problems.join(', ')}
  service account: ${summary.serviceAccount} (group xqueue)
  staff:           ${summary.staff}
  students:        ${summary.students.join(', ') || '(none)'}`);
  } finally {
    database.close();
  }
}

async function userCommand(args: string[], config: LmsConfig) {
  const { values, positionals } = parse(args, {
    password: { type: 'string' },
    group: { type: 'string', multiple: true },
    staff: { type: 'boolean' },
  });
  if (values.help) return console.log(HELP.user);
  const [action, username, ...extra] = positionals;
  if (action !== 'add' || !username || extra.length > 0) {
    throw new UsageError('expected: user add NAME');
  }
  if (typeof values.password !== 'string' || values.password === '') {
    throw new UsageError('--password is required');
  }
  const groups = (values.group as string[] | undefined) ?? [];
  const passwordHash = await hashPassword(values.password, config.passwordHashIterations);
  const database = openDatabase({ path: config.databasePath });
  try {
    upsertUser(database.db, {
      username,
      passwordHash,
      groups,
      isStaff: values.staff === true,
      now: Date.now(),
    });
    console.log(
      `User ${username} saved${groups.length ? ` (groups: ${groups.join(', ')})` : ''}${values.staff ? ' [staff]' : ''}`,
    );
  } finally {
    database.close();
  }
}

function groupCommand(args: string[], config: LmsConfig) {
  const { values, positionals } = parse(args);
  if (values.help) return console.log(HELP.group);
  const [action, name, ...extra] = positionals;
  if (action !== 'add' || !name || extra.length > 0) {
    throw new UsageError('expected: group add NAME');
  }
  const database = openDatabase({ path: config.databasePath });
  try {
    ensureGroup(database.db, name);
    console.log(`Group ${name} exists`);
  } finally {
    database.close();
  }
}

async function run(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    return console.log(HELP.main);
  }
  if (!(command in HELP) || command === 'main') throw new UsageError(`unknown command: ${command}`);
  if (args.includes('--help') || args.includes('-h')) return console.log(HELP[command]);
  const config = readEnv();
  switch (command) {
    case 'serve':
      parse(args);
      return runUntilSignal(config);
    case 'migrate':
      parse(args);
      openDatabase({ path: config.databasePath }).close();
      return console.log(`Migrated ${config.databasePath}`);
    case 'seed':
      return seedCommand(args, config);
    case 'user':
      return userCommand(args, config);
    case 'group':
      return groupCommand(args, config);
  }
}

try {
  await run(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError || error instanceof EnvError) {
    console.error(`error: ${error.message}`);
    if (error instanceof UsageError) console.error('\nRun "pnpm lms --help" for usage.');
    process.exitCode = 2;
  } else {
    throw error;
  }
}
