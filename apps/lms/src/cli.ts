import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

import { hashPassword } from './auth/password.ts';
import { shortId } from './auth/tokens.ts';
import { usernameProblem } from './auth/username.ts';
import { isClusterWorker } from './cluster.ts';
import { openDatabase } from './db/client.ts';
import { EnvError, type LmsConfig, parseEnv } from './env.ts';
import { runUntilSignal } from './main.ts';
import {
  isLabPassword,
  LAB_PASSWORDS,
  labPasswordAccounts,
  SEED_DEFAULTS,
  type SeedSummary,
  seed,
} from './seed.ts';
import { type SessionsEnded, saveAccount, serverSessions } from './sessions/accounts.ts';
import {
  type OpenedSessionStore,
  openServerSessionStore,
  SessionStoreUnreachableError,
} from './sessions/factory.ts';
import type { SessionDetails, SessionStore } from './sessions/store.ts';
import { ensureGroup, findCredentials } from './users.ts';

/** A mistake in the command line: printed with the command's help, exit code 2. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

const ENV_HELP = `Environment: PORT (8000), HOST (127.0.0.1), DATABASE_PATH (./data/lms.db),
  PASSWORD_HASH_ITERATIONS (1000000), LOG_LEVEL (info), XQUEUE_LOCK_SECONDS (300),
  XQUEUE_MAX_FAILURES (0), SESSION_TTL_SECONDS (1209600), STORM_ALERT_EVICTIONS_PER_MINUTE (30),
  MAX_BODY_BYTES (1048576), LOGIN_THROTTLE_FAILURES (10), LOGIN_THROTTLE_WINDOW_SECONDS (300),
  TRUST_PROXY (false), CSRF_TRUSTED_ORIGINS, SQLITE_SYNCHRONOUS (full), METRICS_TOKEN,
  SESSION_STORE (sqlite), SESSION_REDIS_URL, REDIS_URL (redis://127.0.0.1:6379),
  SESSION_REDIS_PREFIX (lms:), LMS_WORKERS (1),
  PREVENT_CONCURRENT_LOGINS (true), SINGLE_LOGIN_EXEMPT_USERNAMES, SINGLE_LOGIN_EXEMPT_GROUPS,
  SINGLE_LOGIN_MAX_SESSIONS, SINGLE_LOGIN_ON_LIMIT, SINGLE_LOGIN_SCOPE, SINGLE_LOGIN_RULES,
  SINGLE_LOGIN_DRY_RUN, SINGLE_LOGIN_ENFORCEMENT (atomic).`;

const HELP: Record<string, string> = {
  main: `Usage: pnpm lms <command> [options]

Commands:
  serve                 migrate the database and serve HTTP until SIGTERM/SIGINT
  migrate               apply the committed migrations
  seed                  create queues, problems, the xqueue service account, staff and students
  user add NAME         create or update a user (a new password ends the user's sessions)
  group add NAME        create a group
  sessions list USER    list a user's live sessions
  sessions end USER ID  end one session of a user (ID: its short id); --all ends every one

Run "pnpm lms <command> --help" for a command's options.
${ENV_HELP}`,
  serve: `Usage: pnpm lms serve

Migrates the database, then listens on HOST:PORT. When HOST is not a loopback address it first
warns (WARNING: on stderr) about every active account that still has a lab default password.
${ENV_HELP}`,
  migrate: 'Usage: pnpm lms migrate\n\nApplies the committed migrations to DATABASE_PATH.',
  seed: `Usage: pnpm lms seed [options]   (idempotent)

Creates what is missing. An account that exists keeps its password (a restart never undoes an
operator's change) unless --reset-passwords is given.

  --queues a,b              queues to create (default ${SEED_DEFAULTS.queues.join(',')}); 3 problems each: <queue>-p1..p3
  --students N              students student1..N (default ${SEED_DEFAULTS.students})
  --service-username NAME   xqueue service account, in group xqueue (default ${SEED_DEFAULTS.serviceUsername})
  --service-password P      (default ${SEED_DEFAULTS.servicePassword}, or the --service-password-file's)
  --staff-username NAME     (default ${SEED_DEFAULTS.staffUsername})
  --staff-password P        (default ${SEED_DEFAULTS.staffPassword})
  --student-password P      one password for every student (default ${SEED_DEFAULTS.studentPassword})
  --random-passwords        generate the passwords not given instead of the lab defaults, and
                            print them once; implied when HOST is not a loopback address
  --service-password-file F read the service password from F when not given; write it there
                            (mode 0600) when set, for the watchers to read
  --passwords-from DIR      read the passwords not given above from DIR/service, DIR/staff and
                            DIR/student (each optional), so that none is on a command line
  --reset-passwords         also set the passwords of accounts that exist; their sessions end`,
  user: `Usage: pnpm lms user add NAME --password P [--group G]... [--staff | --no-staff]

Creates the user, or updates the password and adds the groups. NAME follows Django's username
rule (1-150 letters, digits and @ . + - _). --staff makes the user staff, --no-staff removes
it; without either a new user is not staff and an existing one keeps its flag. Setting the
password of an existing user ends all of that user's sessions (their next request is told
session_end.reason "password-change"), as Django does when a password changes: in the store the
LMS uses, whatever SESSION_STORE this shell has; when that is a Redis this shell cannot reach,
each session ends on its next request (each keeps a hash of the password it logged in with).`,
  group: 'Usage: pnpm lms group add NAME',
  sessions: `Usage: pnpm lms sessions list USER
       pnpm lms sessions end USER ID
       pnpm lms sessions end USER --all

list: one line per live session of USER, oldest first: its short id (8 hex digits, as the logs
  name it), created, last seen (refreshed at most once a minute), the client instance, the
  address, the user agent (those three as JSON: null when unknown) and whether it counts toward
  the session limit (tracked).
end: ends the session whose short id is ID, or with --all every live session of USER (a stolen
  cookie, a departing account), and prints how many ended. Each one's next request gets 401/403
  with session_end.reason "staff"; the record names "(cli)" as who ended it. USER can log in
  again: change the password too (pnpm lms user add USER --password P).

Both act on the session store the LMS uses, as its last start recorded it in the database,
whatever SESSION_STORE this shell has (a Redis with a password needs SESSION_STORE=redis and
SESSION_REDIS_URL here). When that Redis cannot be reached: an error, exit 1.`,
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

/** Where a command writes and what it reads: the process's own by default. */
export interface CliIo {
  env: Record<string, string | undefined>;
  cwd: string;
  out: (text: string) => void;
  err: (text: string) => void;
}

function processIo(): CliIo {
  return {
    env: process.env,
    cwd: process.cwd(),
    out: (text) => console.log(text),
    err: (text) => console.error(text),
  };
}

/** Whether HOST only listens on this machine (127.0.0.0/8, ::1, localhost). */
function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice('::ffff:'.length) : bare;
  return isIPv4(v4) && v4.startsWith('127.');
}

/** 144 random bits, URL-safe: a password nobody published. */
function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/** The secret in FILE (one trailing newline dropped), or null when the file is missing or empty. */
async function readSecret(path: string): Promise<string | null> {
  try {
    const text = (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
    return text === '' ? null : text;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Writes a secret readable only by this user, atomically (a reader never sees half of it). */
async function writeSecret(path: string, secret: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  await rm(temporary, { force: true });
  await writeFile(temporary, secret, { mode: 0o600 });
  await rename(temporary, path);
}

/** `student1`, or `student6..student50`: the students a generated password was set for. */
function studentRange(students: readonly string[]): string {
  return students.length > 1 ? `${students[0]}..${students.at(-1)}` : (students[0] ?? '');
}

/** The passwords one seed run uses, and which of them it made up. */
interface SeedPasswords {
  service: string;
  staff: string;
  student: string;
  generated: Set<'service' | 'staff' | 'student'>;
}

async function seedPasswords(
  values: Values,
  random: boolean,
  serviceFile: string | null,
): Promise<SeedPasswords> {
  const generated = new Set<'service' | 'staff' | 'student'>();
  const pick = (role: 'service' | 'staff' | 'student', fallback: string) => {
    const given = values[`${role}-password`];
    if (typeof given === 'string') return given;
    if (!random) return fallback;
    generated.add(role);
    return generatePassword();
  };
  const fromFile = serviceFile && typeof values['service-password'] !== 'string';
  const stored = fromFile ? await readSecret(serviceFile) : null;
  return {
    service: stored ?? pick('service', SEED_DEFAULTS.servicePassword),
    staff: pick('staff', SEED_DEFAULTS.staffPassword),
    student: pick('student', SEED_DEFAULTS.studentPassword),
    generated,
  };
}

/** Fills each `--ROLE-password` not given from DIR/ROLE: no password on a command line. */
async function passwordsFrom(dir: string, values: Values): Promise<void> {
  if (
    !(await stat(dir).then(
      (info) => info.isDirectory(),
      () => false,
    ))
  )
    throw new UsageError(`--passwords-from: ${dir} is not a directory`);
  for (const role of ['service', 'staff', 'student']) {
    const key = `${role}-password`;
    const secret = values[key] === undefined ? await readSecret(join(dir, role)) : null;
    if (secret !== null) values[key] = secret;
  }
}

/** Keeps the service password file in step with the account; warns when it cannot. */
async function shareServicePassword(
  file: string,
  password: string,
  summary: SeedSummary,
  io: CliIo,
): Promise<void> {
  const account = summary.serviceAccount;
  const stored = await readSecret(file);
  if (summary.passwordsSet.includes(account)) {
    if (stored !== password) await writeSecret(file, password);
    io.out(`Service password written to ${file} (for the watchers)`);
  } else if (stored === null) {
    io.err(
      `warning: ${account} exists and keeps its password, which ${file} does not hold (it is missing): ` +
        'watchers reading it cannot log in. Run seed with --reset-passwords to set a new one.',
    );
  } else if (stored !== password) {
    io.err(
      `warning: ${account} exists and keeps its password; --service-password was not applied and ` +
        `${file} keeps the old one. Run seed with --reset-passwords to change it.`,
    );
  }
}

function printSeedSummary(
  summary: SeedSummary,
  passwords: SeedPasswords,
  databasePath: string,
  serviceFile: string | null,
  io: CliIo,
): void {
  const ended = endedText(summary.sessionsEnded);
  io.out(`Seeded ${databasePath}
  queues:          ${summary.queues.join(', ')}
  problems:        ${summary.problems.join(', ')}
  service account: ${summary.serviceAccount} (group xqueue)
  staff:           ${summary.staff}
  students:        ${summary.students.join(', ') || '(none)'}
  passwords:       ${summary.passwordsSet.length} set, ${summary.passwordsKept.length} kept (an account that exists keeps its password unless --reset-passwords)${ended}`);
  // A generated password is shown when it was set, i.e. once: the next run keeps the account's.
  const isSet = (username: string) => summary.passwordsSet.includes(username);
  const shown: string[] = [];
  const show = (label: string, password: string) => shown.push(`  ${label.padEnd(16)} ${password}`);
  if (passwords.generated.has('service') && !serviceFile && isSet(summary.serviceAccount)) {
    show(summary.serviceAccount, passwords.service);
  }
  if (passwords.generated.has('staff') && isSet(summary.staff)) {
    show(summary.staff, passwords.staff);
  }
  const studentsSet = summary.students.filter(isSet);
  if (passwords.generated.has('student') && studentsSet.length > 0) {
    show(studentRange(studentsSet), passwords.student);
  }
  if (shown.length > 0) {
    io.out(`Generated passwords, shown this once (stored nowhere else):\n${shown.join('\n')}`);
  }
}

/** What a password change did to the sessions, for the line that reports it. */
function endedText(sessions: SessionsEnded): string {
  if ('unreachable' in sessions) {
    const { url, reason } = sessions.unreachable;
    return `; its sessions end on their next request (password-change): the session Redis at ${url} cannot be reached (${reason})`;
  }
  const { ended } = sessions;
  return ended ? `; ${ended} session${ended === 1 ? '' : 's'} ended (password-change)` : '';
}

async function seedCommand(args: string[], config: LmsConfig, io: CliIo) {
  const { values } = parse(args, {
    queues: { type: 'string' },
    students: { type: 'string' },
    'service-username': { type: 'string' },
    'service-password': { type: 'string' },
    'staff-username': { type: 'string' },
    'staff-password': { type: 'string' },
    'student-password': { type: 'string' },
    'random-passwords': { type: 'boolean' },
    'service-password-file': { type: 'string' },
    'reset-passwords': { type: 'boolean' },
    'passwords-from': { type: 'string' },
  });
  if (values.help) return io.out(HELP.seed!);
  if (typeof values['passwords-from'] === 'string') {
    await passwordsFrom(values['passwords-from'], values);
  }
  const queues =
    typeof values.queues === 'string'
      ? values.queues
          .split(',')
          .map((queue) => queue.trim())
          .filter(Boolean)
      : undefined;
  if (queues && queues.length === 0) throw new UsageError('--queues needs at least one name');
  for (const flag of [
    'service-username',
    'service-password',
    'staff-username',
    'staff-password',
    'student-password',
    'service-password-file',
  ]) {
    if (values[flag] === '') throw new UsageError(`--${flag} must not be empty`);
  }
  const text = (key: string, fallback: string) =>
    typeof values[key] === 'string' ? (values[key] as string) : fallback;
  for (const flag of ['service-username', 'staff-username']) {
    if (typeof values[flag] === 'string') checkUsername(`--${flag}`, values[flag] as string);
  }
  const serviceFile = text('service-password-file', '') || null;
  // The lab defaults are published: only a server that nobody else can reach may use them.
  const loopback = isLoopback(config.host);
  if (!loopback && values['random-passwords'] !== true) {
    io.out(`HOST=${config.host} is not loopback: passwords not given are generated`);
  }
  const passwords = await seedPasswords(
    values,
    values['random-passwords'] === true || !loopback,
    serviceFile,
  );
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
        servicePassword: passwords.service,
        staffUsername: text('staff-username', SEED_DEFAULTS.staffUsername),
        staffPassword: passwords.staff,
        studentPassword: passwords.student,
        resetPasswords: values['reset-passwords'] === true,
      },
      {
        iterations: config.passwordHashIterations,
        now: Date.now(),
        sessions: serverSessions(database.db, config.sessionStore),
      },
    );
    printSeedSummary(summary, passwords, config.databasePath, serviceFile, io);
    if (serviceFile) await shareServicePassword(serviceFile, passwords.service, summary, io);
  } finally {
    database.close();
  }
}

/** What `user add` did to the staff flag, as its line says it. */
function staffText(isStaff: boolean | undefined): string {
  if (isStaff === undefined) return '';
  return isStaff ? ' [staff]' : ' [not staff]';
}

/** A username Django would refuse is a mistake in the command line (see usernameProblem). */
function checkUsername(where: string, username: string): void {
  const problem = usernameProblem(username);
  if (problem) throw new UsageError(`${where}: username ${JSON.stringify(username)} ${problem}`);
}

async function userCommand(args: string[], config: LmsConfig, io: CliIo) {
  const { values, positionals } = parse(args, {
    password: { type: 'string' },
    group: { type: 'string', multiple: true },
    staff: { type: 'boolean' },
    'no-staff': { type: 'boolean' },
  });
  if (values.help) return io.out(HELP.user!);
  const [action, username, ...extra] = positionals;
  if (action !== 'add' || !username || extra.length > 0) {
    throw new UsageError('expected: user add NAME');
  }
  checkUsername('user add', username);
  if (values.staff === true && values['no-staff'] === true) {
    throw new UsageError('user add: give one of --staff and --no-staff, not both');
  }
  // Neither: the flag stays as it is (a new user is not staff).
  const isStaff = values.staff === true ? true : values['no-staff'] === true ? false : undefined;
  if (typeof values.password !== 'string' || values.password === '') {
    throw new UsageError('--password is required');
  }
  const groups = (values.group as string[] | undefined) ?? [];
  const passwordHash = await hashPassword(values.password, config.passwordHashIterations);
  const database = openDatabase({ path: config.databasePath });
  try {
    const saved = await saveAccount(database.db, serverSessions(database.db, config.sessionStore), {
      username,
      passwordHash,
      labPassword: isLabPassword(values.password),
      groups,
      ...(isStaff !== undefined && { isStaff }),
      now: Date.now(),
    });
    const ended = endedText(saved.sessions);
    io.out(
      `User ${username} saved${groups.length ? ` (groups: ${groups.join(', ')})` : ''}${staffText(isStaff)}${ended}`,
    );
  } finally {
    database.close();
  }
}

function groupCommand(args: string[], config: LmsConfig, io: CliIo) {
  const { values, positionals } = parse(args);
  if (values.help) return io.out(HELP.group!);
  const [action, name, ...extra] = positionals;
  if (action !== 'add' || !name || extra.length > 0) {
    throw new UsageError('expected: group add NAME');
  }
  const database = openDatabase({ path: config.databasePath });
  try {
    ensureGroup(database.db, name);
    io.out(`Group ${name} exists`);
  } finally {
    database.close();
  }
}

/**
 * Who ended a session from the command line, in `session_ends.ended_by`: parentheses cannot
 * occur in a Django username, so it never names an account.
 */
const CLI_ACTOR = '(cli)';

/** One line of `sessions list`: free text (instance, address, user agent) as JSON. */
function sessionLine(session: SessionDetails): string {
  return [
    shortId(session.id),
    `created=${new Date(session.createdAt).toISOString()}`,
    `last_seen=${new Date(session.lastSeenAt).toISOString()}`,
    `instance=${JSON.stringify(session.instanceId)}`,
    `address=${JSON.stringify(session.address)}`,
    `user_agent=${JSON.stringify(session.userAgent)}`,
    `tracked=${session.tracked ? 'yes' : 'no'}`,
  ].join(' ');
}

async function endOneSession(
  store: SessionStore,
  user: { id: string; username: string },
  short: string,
): Promise<string> {
  const match = await store.findShort(user.id, short);
  if (match.kind === 'ambiguous') {
    throw new UsageError(`sessions end: ${short} names more than one session; use --all`);
  }
  const ended =
    match.kind === 'found' &&
    (await store.endOne(user.id, match.sessionId, 'staff', { endedBy: CLI_ACTOR }));
  if (!ended) {
    throw new UsageError(`sessions end: ${user.username} has no live session ${short}`);
  }
  return `Ended session ${short} of ${user.username}`;
}

async function sessionsCommand(args: string[], config: LmsConfig, io: CliIo) {
  const { values, positionals } = parse(args, { all: { type: 'boolean' } });
  if (values.help) return io.out(HELP.sessions!);
  const [action, username, id, ...extra] = positionals;
  const all = values.all === true;
  const valid =
    username !== undefined &&
    extra.length === 0 &&
    ((action === 'list' && id === undefined && !all) ||
      // end: a short id or --all, not both.
      (action === 'end' && (id === undefined) === all));
  if (!valid) {
    throw new UsageError(
      'expected: sessions list USER, sessions end USER ID or sessions end USER --all',
    );
  }
  const database = openDatabase({ path: config.databasePath });
  let sessions: OpenedSessionStore | null = null;
  try {
    const user = findCredentials(database.db, username);
    if (!user) {
      throw new UsageError(`sessions ${action}: no user named ${JSON.stringify(username)}`);
    }
    // The store the LMS uses (recorded at its start), not the one this shell names; rejects
    // when that is a Redis this shell cannot reach, rather than report no sessions.
    sessions = await openServerSessionStore(config, database.db);
    const { store } = sessions;
    if (action === 'list') {
      const live = await store.details(user.id);
      if (live.length === 0) return io.out(`${username} has no live sessions`);
      for (const session of live) io.out(sessionLine(session));
      return;
    }
    if (id !== undefined) return io.out(await endOneSession(store, user, id));
    const ended = await store.endAll(user.id, 'staff', { endedBy: CLI_ACTOR });
    io.out(`Ended ${ended} session${ended === 1 ? '' : 's'} of ${username}`);
  } finally {
    sessions?.close();
    database.close();
  }
}

/** Usernames a warning names at most; the rest are counted. */
const NAMED_ACCOUNTS = 10;

/**
 * Before `serve` listens off loopback: a loud warning when an account still has a lab default
 * password, which anyone who can reach the server may then use (the seed uses them only while
 * HOST is loopback; a database seeded that way may be served elsewhere later).
 */
async function warnLabPasswords(config: LmsConfig, io: CliIo): Promise<void> {
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
    io.err(
      `WARNING: HOST=${config.host} is not a loopback address, and ${usernames.length} account${usernames.length === 1 ? '' : 's'} still ` +
        `${usernames.length === 1 ? 'has' : 'have'} a lab default password (the seed's published ${LAB_PASSWORDS.join(', ')}): ${named}${more}. ` +
        'Anyone who can reach this server can log in as them. Set new passwords: pnpm lms seed ' +
        '--reset-passwords --random-passwords, or pnpm lms user add NAME --password P.',
    );
  }
  if (unchecked > 0) {
    io.err(
      `WARNING: HOST=${config.host} is not a loopback address, and ${unchecked} more accounts have passwords from before ` +
        'the LMS recorded whether they are lab defaults; the next starts check them, 20 at a time.',
    );
  }
}

async function run(argv: string[], io: CliIo): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    return io.out(HELP.main!);
  }
  if (!(command in HELP) || command === 'main') throw new UsageError(`unknown command: ${command}`);
  if (args.includes('--help') || args.includes('-h')) return io.out(HELP[command]!);
  const config = parseEnv(io.env, io.cwd);
  switch (command) {
    case 'serve':
      parse(args);
      // Once per LMS: the workers of LMS_WORKERS run this command again.
      if (!isClusterWorker()) await warnLabPasswords(config, io);
      return runUntilSignal(config);
    case 'migrate':
      parse(args);
      openDatabase({ path: config.databasePath }).close();
      return io.out(`Migrated ${config.databasePath}`);
    case 'seed':
      return seedCommand(args, config, io);
    case 'user':
      return userCommand(args, config, io);
    case 'group':
      return groupCommand(args, config, io);
    case 'sessions':
      return sessionsCommand(args, config, io);
  }
}

/**
 * Runs one `pnpm lms` command and returns its exit code: 0; 2 for a mistake in the command
 * line or the environment (printed with a hint); 1 when the session store the LMS uses cannot
 * be reached (printed); anything else is thrown. Tests call it in
 * process with their own environment and output.
 *
 * @example
 * const code = await runCli(['sessions', 'end', 'student4', '--all']); // "Ended 2 sessions of student4"
 */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    await run(argv, io);
    return 0;
  } catch (error) {
    if (error instanceof SessionStoreUnreachableError) {
      io.err(`error: ${error.message}`);
      return 1;
    }
    if (!(error instanceof UsageError || error instanceof EnvError)) throw error;
    io.err(`error: ${error.message}`);
    if (error instanceof UsageError) io.err('\nRun "pnpm lms --help" for usage.');
    return 2;
  }
}

// Run as a program (`node --import tsx src/cli.ts`, `tsx src/cli.ts`), not when imported.
const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  const code = await runCli(process.argv.slice(2));
  if (code !== 0) process.exitCode = code;
}
